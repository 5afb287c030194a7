"""What a student finds without reading the source (issue 12, item 8): the datasets and
metrics after ``import tinycnn``, no warning at import in a Jupyter without ipywidgets,
``save_weights`` beside ``load_weights``, a confusion matrix of uint8 labels of many
classes, and a gradient-check report that says which entries it has."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import tinycnn
from tinycnn import saving
from tinycnn.layers import Conv2D, Dense, Flatten
from tinycnn.metrics import confusion_matrix
from tinycnn.saving import ModelFileError

# A Jupyter kernel, as tqdm.autonotebook recognises one, without ipywidgets installed.
FAKE_JUPYTER = """
import sys, types
sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")
ipython = types.ModuleType("IPython")
ZMQInteractiveShell = type("ZMQInteractiveShell", (), {})
ipython.get_ipython = lambda: ZMQInteractiveShell()
sys.modules["IPython"] = ipython
sys.modules["ipywidgets"] = None  # import ipywidgets -> ImportError
"""


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "always"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )


def test_the_fake_jupyter_is_one_where_tqdm_auto_warns():
    # the control: without it the next test could pass for the wrong reason
    result = run_python(FAKE_JUPYTER + "import tqdm.auto")
    assert "IProgress not found" in result.stderr


def test_import_tinycnn_in_jupyter_without_ipywidgets_warns_nothing():
    code = FAKE_JUPYTER + (
        "import numpy as np, tinycnn\n"
        "print('imported', flush=True)\n"
        "m = tinycnn.Sequential([tinycnn.layers.Flatten(input_shape=(2, 2, 1)),"
        " tinycnn.layers.Dense(2)], seed=0)\n"
        "m.compile()\n"
        "m.fit(np.zeros((4, 2, 2, 1), 'float32'), np.array([0, 1, 0, 1]), verbose=1)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("imported")
    assert "Warning" not in result.stderr, result.stderr
    assert "Epoch 1/1" in result.stderr  # fit still draws its (text) progress bar


def test_datasets_and_metrics_are_reachable_after_import_tinycnn():
    result = run_python(
        "import tinycnn\n"
        "print(tinycnn.datasets.fashion_mnist.load_data.__name__,"
        " tinycnn.metrics.confusion_matrix.__name__)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["load_data", "confusion_matrix"]


# ---- save_weights ------------------------------------------------------------------------
def small_model(seed):
    return tinycnn.Sequential(
        [Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1)), Flatten(), Dense(3)], seed=seed
    )


def test_save_weights_then_load_weights_round_trip(tmp_path, monkeypatch):
    writes = []
    monkeypatch.setattr(saving, "atomic_write", lambda p, w: writes.append(p) or w(open(p, "wb")))
    source, target = small_model(0), small_model(1)
    source.save_weights(tmp_path / "w.npz")
    assert writes == [tmp_path / "w.npz"]  # through the one atomic writer
    with zipfile.ZipFile(tmp_path / "w.npz") as z:  # the weights alone
        assert sorted(z.namelist()) == [
            "__format__.npy", "weights/conv2d/bias.npy", "weights/conv2d/kernel.npy",
            "weights/dense/bias.npy", "weights/dense/kernel.npy",
        ]  # fmt: skip
    target.load_weights(tmp_path / "w.npz")
    for a, b in zip(source.get_weights(), target.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_weights_file_is_checked_and_is_not_a_model(tmp_path):
    small_model(0).save_weights(tmp_path / "w.npz")
    other = tinycnn.Sequential(
        [Conv2D(3, 3, input_shape=(6, 6, 1)), Flatten(), Dense(3)], seed=0
    )  # 3 filters, not 2
    before = other.get_weights()
    with pytest.raises(ModelFileError, match="its kernel has shape"):
        other.load_weights(tmp_path / "w.npz")
    assert all(np.array_equal(a, b) for a, b in zip(before, other.get_weights(), strict=True))
    with pytest.raises(ModelFileError, match="holds weights only .*model.load_weights"):
        tinycnn.load_model(tmp_path / "w.npz")


# ---- metrics and reports -----------------------------------------------------------------------
@pytest.mark.parametrize("classes", [17, 40, 256])
def test_confusion_matrix_of_uint8_labels_of_many_classes(classes):
    y_true = np.array([classes - 1, 16, 0, classes - 1], dtype=np.uint8)
    y_pred = np.array([classes - 1, 0, 16, 3], dtype=np.uint8)
    cm = confusion_matrix(y_true, y_pred, classes)
    assert cm.sum() == 4
    assert cm[classes - 1, classes - 1] == 1 and cm[16, 0] == 1 and cm[0, 16] == 1
    assert cm[classes - 1, 3] == 1


def test_confusion_matrix_refuses_labels_that_are_not_integers():
    with pytest.raises(TypeError, match="y_pred must hold integer class labels, got float64"):
        confusion_matrix([0, 1], np.array([0.0, 1.0]), 2)


def test_a_missing_report_entry_is_a_key_error_naming_the_entries():
    layer = Dense(2)
    report = tinycnn.gradcheck(layer, np.random.default_rng(0).random((2, 3)), progress=False)
    assert report["kernel"].name == "kernel"
    with pytest.raises(
        KeyError, match=r"no result named 'dense/kernel'.*\['x', 'kernel', 'bias'\]"
    ):
        report["dense/kernel"]
