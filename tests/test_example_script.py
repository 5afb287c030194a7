"""Run examples/fashion_mnist.py in-process on the real data (600 training images,
one epoch) and check what it prints, saves and draws (--plot).

Skipped when the Fashion-MNIST files are absent: point ``TINYCNN_DATA`` at the
folder with the four IDX files, or put them in ``../shared/data/fashion-mnist``
next to the repository.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re

import pytest
from real_data import DATA, REPO_ROOT, requires_real_data

import tinycnn
from tinycnn.datasets import fashion_mnist as fm

SCRIPT = REPO_ROOT / "examples" / "fashion_mnist.py"
PLOTS = importlib.util.find_spec("matplotlib") is not None  # the extra "plot"


pytestmark = [
    pytest.mark.slow,
    requires_real_data,
]

ARGS = ["--limit", "600", "--epochs", "1", "--json", "--verbose", "0", "--data-dir", str(DATA)]
JSON_KEYS = {
    "backend",
    "epochs",
    "batch_size",
    "train_images",
    "test_accuracy",
    "test_loss",
    "epoch_seconds",
    "history",
}


def load_example():
    spec = importlib.util.spec_from_file_location("fashion_mnist_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Runs the script once for the whole module: (returned summary, stdout, saved path);
    with --plot when matplotlib is installed (the pictures land beside the model)."""
    saved = tmp_path_factory.mktemp("example") / "model.npz"
    plot = ["--plot", str(saved.parent / "plots")] if PLOTS else []
    out = io.StringIO()
    with tinycnn.use_backend("numpy"), contextlib.redirect_stdout(out):
        summary = load_example().main([*ARGS, "--save", str(saved), *plot])
    return summary, out.getvalue(), saved


def test_prints_the_model_summary(run):
    _, out, _ = run
    assert 'Model: "sequential"' in out
    assert "Layer (type)" in out and "Output Shape" in out and "Param #" in out
    assert "conv2d (Conv2D)" in out and "dense_1 (Dense)" in out
    assert "Total params: 862,410" in out


def test_prints_the_test_accuracy_and_per_class_table(run):
    summary, out, _ = run
    match = re.search(r"Test accuracy: (\d+\.\d\d)%\s+test loss: (\d+\.\d{4})", out)
    assert match, out
    assert float(match.group(1)) == pytest.approx(100 * summary["test_accuracy"], abs=0.006)
    assert float(match.group(2)) == pytest.approx(summary["test_loss"], abs=6e-5)
    assert "Per-class accuracy on the test set:" in out
    assert re.search(r"^class\s+correct / total\s+accuracy$", out, re.MULTILINE)
    for name in fm.CLASS_NAMES:  # the test set has 1,000 images of each class
        assert re.search(rf"^{re.escape(name)}\s+\d+ / 1000\s+\d+\.\d\d%$", out, re.MULTILINE), name


def test_prints_the_confusion_matrix(run):
    _, out, _ = run
    assert "Confusion matrix (rows: true class, columns: predicted class):" in out
    lines = out.splitlines()
    header = next(k for k, line in enumerate(lines) if line.startswith("true \\ pred"))
    for name in fm.CLASS_NAMES:
        assert name[:7] in lines[header]
    rows = lines[header + 1 : header + 11]
    for name, row in zip(fm.CLASS_NAMES, rows, strict=True):
        assert row.startswith(name)
        counts = [int(v) for v in row[len(name) :].split()]
        assert len(counts) == 10 and sum(counts) == 1000, row  # 1,000 test images per class


def test_the_last_line_is_the_json_summary(run):
    summary, out, _ = run
    last = out.strip().splitlines()[-1]
    data = json.loads(last)
    assert JSON_KEYS <= set(data)
    assert data == json.loads(json.dumps(summary))
    assert data["backend"] == "numpy"
    assert data["epochs"] == 1
    assert data["batch_size"] == 64
    assert data["train_images"] == 540 and data["validation_images"] == 60  # 10% held out
    assert 0.0 <= data["test_accuracy"] <= 1.0 and data["test_loss"] > 0.0
    assert len(data["epoch_seconds"]) == 1 and data["epoch_seconds"][0] > 0.0
    assert set(data["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 1 for v in data["history"].values())
    assert data["interrupted"] is False
    # 600 images for one epoch is little, but well above chance (10%)
    assert data["test_accuracy"] > 0.4, data["test_accuracy"]


def test_save_writes_a_loadable_model(run):
    summary, out, saved = run
    assert f"Saved the model to {saved}" in out
    model = tinycnn.load_model(saved)
    assert model.count_params() == 862_410
    assert type(model.optimizer).__name__ == "Adam"
    assert model.optimizer.iterations == 9  # ceil(540 / 64) steps
    # the file holds the very model the script evaluated: same numbers, bit for bit
    (_, _), (x_test, y_test) = fm.load_data(DATA)
    x_test = tinycnn.preprocessing.prepare_images(x_test)
    loss, accuracy = model.evaluate(x_test, y_test.astype("int64"), batch_size=1000)
    assert (loss, accuracy) == (summary["test_loss"], summary["test_accuracy"])


@pytest.mark.skipif(not PLOTS, reason='--plot needs matplotlib: pip install "tinycnn[plot]"')
def test_plot_writes_the_three_pictures(run):
    from matplotlib.image import imread

    _, out, saved = run
    folder = saved.parent / "plots"
    names = ["history.png", "confusion_matrix.png", "mistakes.png"]
    assert f"Wrote {', '.join(names)} to {folder}" in out
    for name in names:
        picture = imread(folder / name)  # a real PNG, of a real size
        assert picture.ndim == 3 and min(picture.shape[:2]) > 200, name
        assert picture.std() > 0.05, name  # not a blank page
