"""Keras weight files: tinycnn.load_keras_weights and tinycnn.save_keras_weights.

Without TensorFlow, h5py writes Keras's two layouts by hand (Keras 3 ``.weights.h5``,
Keras 2 ``.h5``, as the module's docstring draws them). Where Keras is installed, one
subprocess (TensorFlow stays out of the test process) saves a Keras seed network's
random weights in Keras's formats and loads tinycnn's files into Keras.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinycnn
from tinycnn import keras_weights
from tinycnn.layers import (
    BatchNormalization,
    Conv2D,
    Dense,
    Flatten,
    Layer,
    MaxPooling2D,
    ReLU,
)
from tinycnn.models import fashion_mnist_cnn

h5py = pytest.importorskip("h5py", reason='pip install "tinycnn[keras]"')
KerasWeightsError = keras_weights.KerasWeightsError

TOOLS = Path(__file__).resolve().parents[1] / "tools"  # compare_keras.py: the Keras networks
SEED_SHAPES = [(3, 3, 1, 64), (64,), (3, 3, 64, 64), (64,), (1600, 512), (512,), (512, 10), (10,)]


def images(n=16, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28, 1), dtype=np.float32)


def assert_same_weights(a, b):
    assert len(a.get_weights()) == len(b.get_weights())
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


def h5_entries(path) -> dict:
    """Every group and array of an HDF5 file: ``{path: shape or "group"}``."""
    entries = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: entries.__setitem__(
                name, obj.shape if isinstance(obj, h5py.Dataset) else "group"
            )
        )
    return entries


# ---- round trips and the layouts, without TensorFlow ---------------------------------------
@pytest.mark.parametrize("name", ["w.weights.h5", "w.h5", "w.hdf5"])
def test_save_then_load_gives_the_same_weights_and_predictions(tmp_path, name):
    source, target = fashion_mnist_cnn(seed=0), fashion_mnist_cnn(seed=1)
    tinycnn.save_keras_weights(source, tmp_path / name)
    tinycnn.load_keras_weights(target, tmp_path / name)
    assert_same_weights(source, target)
    np.testing.assert_array_equal(source.predict(images()), target.predict(images()))


def test_the_keras3_file_has_keras3s_layout(tmp_path):
    # the layout Keras 3.15 writes for the seed network (model.save_weights, inspected with h5py)
    model = fashion_mnist_cnn(seed=0)
    tinycnn.save_keras_weights(model, tmp_path / "w.weights.h5")
    kinds = [
        "conv2d",
        "max_pooling2d",
        "conv2d_1",
        "max_pooling2d_1",
        "flatten",
        "dense",
        "dense_1",
    ]
    expected = {"vars": "group", "layers": "group"}
    for kind in kinds:
        expected |= {f"layers/{kind}": "group", f"layers/{kind}/vars": "group"}
    for i, kind in enumerate(["conv2d", "conv2d_1", "dense", "dense_1"]):
        expected |= {f"layers/{kind}/vars/0": SEED_SHAPES[2 * i]}
        expected |= {f"layers/{kind}/vars/1": SEED_SHAPES[2 * i + 1]}
    assert h5_entries(tmp_path / "w.weights.h5") == expected
    with h5py.File(tmp_path / "w.weights.h5", "r") as f:
        assert f["vars"].attrs["name"] == "sequential"
        assert f["layers/dense_1/vars"].attrs["name"] == "dense_1"
        np.testing.assert_array_equal(
            f["layers/dense/vars/0"][()], model.layers[5].params["kernel"]
        )


def test_keras3_groups_are_named_by_kind_and_place_not_by_the_layers_names(tmp_path):
    # as Keras 3 writes them: the layer's own name only in the attribute of its vars
    named = tinycnn.Sequential(
        [Flatten(input_shape=(3,), name="pixels"), Dense(4, name="hidden"), Dense(5, name="out")],
        seed=0,
    )
    tinycnn.save_keras_weights(named, tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "r") as f:
        assert sorted(f["layers"]) == ["dense", "dense_1", "flatten"]
        assert [f[f"layers/{g}/vars"].attrs["name"] for g in ["flatten", "dense", "dense_1"]] == [
            "pixels",
            "hidden",
            "out",
        ]
    other = many_dense(seed=1, n=2)  # default names: dense, dense_1
    tinycnn.load_keras_weights(other, tmp_path / "w.weights.h5")
    assert_same_weights(named, other)


def test_the_keras2_file_has_keras2s_layout(tmp_path):
    model = fashion_mnist_cnn(seed=0)
    tinycnn.save_keras_weights(model, tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5", "r") as f:
        assert [n.decode() for n in f.attrs["layer_names"]] == [
            layer.name for layer in model.layers
        ]
        assert f.attrs["backend"] == "tensorflow" and f.attrs["keras_version"] == "2.15.0"
        assert [n.decode() for n in f["conv2d_1"].attrs["weight_names"]] == [
            "conv2d_1/kernel:0",
            "conv2d_1/bias:0",
        ]
        assert f["conv2d_1/conv2d_1/kernel:0"].shape == (3, 3, 64, 64)
        assert len(f["flatten"].attrs["weight_names"]) == 0


def write_keras2_by_hand(path, model, names, container=None, chunks=1):
    """Keras 2's save_weights_to_hdf5_group: ``layer_names`` in layer order (cut into
    ``layer_names0``, ``1``, ... when too long), one group per layer created in name
    order, ``weight_names`` ``<layer>/kernel:0``, the arrays at those paths."""
    with h5py.File(path, "w") as f:
        group = f.create_group(container) if container else f
        encoded = np.array([n.encode() for n in names])
        if chunks == 1:
            group.attrs["layer_names"] = encoded
        for i, piece in enumerate(np.array_split(encoded, chunks) if chunks > 1 else []):
            group.attrs[f"layer_names{i}"] = piece
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = b"2.15.0"
        for name, layer in sorted(zip(names, model.layers, strict=True)):
            g = group.create_group(name)
            weight_names = [f"{name}/{key}:0".encode() for key in layer.params]
            g.attrs["weight_names"] = np.array(weight_names) if weight_names else np.array([])
            for weight_name, value in zip(weight_names, layer.get_weights(), strict=True):
                g.create_dataset(weight_name.decode(), data=value)


# a second model in a Keras 2 session: its layers are numbered on from the first model's
SESSION_NAMES = [
    "conv2d_2",
    "max_pooling2d_2",
    "conv2d_3",
    "max_pooling2d_3",
    "flatten_1",
    "dense_2",
    "dense_3",
]


@pytest.mark.parametrize(
    "container, chunks",
    [(None, 1), ("model_weights", 1), (None, 3)],
    ids=["weights", "model", "chunked"],
)
def test_a_keras2_file_written_by_hand_loads_by_order(tmp_path, container, chunks):
    source, target = fashion_mnist_cnn(seed=0), fashion_mnist_cnn(seed=1)
    write_keras2_by_hand(tmp_path / "k2.h5", source, SESSION_NAMES, container, chunks)
    tinycnn.load_keras_weights(target, tmp_path / "k2.h5")
    assert_same_weights(source, target)


def many_dense(seed, n=12):
    """Twelve Dense layers of different sizes: ``dense_10`` sorts before ``dense_2``."""
    return tinycnn.Sequential(
        [Flatten(input_shape=(3,))] + [Dense(4 + k) for k in range(n)], seed=seed
    )


@pytest.mark.parametrize("root", ["layers", "_layer_checkpoint_dependencies"])
def test_a_keras3_file_written_by_hand_loads_by_kind_and_place(tmp_path, root):
    """Keras 3's groups are ``dense``, ``dense_1``, ... whatever the layers' session names
    (in ``vars``' attribute); groups made in alphabetical order, an optimizer's beside."""
    source, target = many_dense(seed=0), many_dense(seed=1)
    names = keras_weights.keras3_group_names(source.layers)
    assert names[:3] == ["flatten", "dense", "dense_1"] and names[-1] == "dense_11"
    write_keras3_by_hand(tmp_path / "k3.weights.h5", source, root)
    tinycnn.load_keras_weights(target, tmp_path / "k3.weights.h5")
    assert_same_weights(source, target)


def write_keras3_by_hand(path, model, root="layers"):
    """Keras 3's save_weights: a group per layer named after its kind and place, made in
    alphabetical order, ``vars/0``, ``1``, ... in get_weights order; an optimizer's beside."""
    names = keras_weights.keras3_group_names(model.layers)
    with h5py.File(path, "w") as f:
        f.create_group("vars").attrs["name"] = "sequential_7"
        f.create_group("optimizer/vars").create_dataset("0", data=np.zeros(3))
        for name, layer in sorted(zip(names, model.layers, strict=True)):
            group = f.create_group(f"{root}/{name}/vars")
            group.attrs["name"] = f"{name}_session_name"
            for i, value in enumerate(layer.get_weights()):
                group.create_dataset(str(i), data=value)


def normal(shape, rng, dtype):
    return rng.standard_normal(shape).astype(dtype)


class ManyBiases(Layer):
    """A layer of your own with twelve weights of shapes (1,) ... (12,): its Keras 3 vars
    run to ``vars/11``, which come after ``vars/9``, not between ``1`` and ``2``."""

    def build(self, input_shape):
        for i in range(12):
            self.add_weight(f"b{i}", (i + 1,), initializer=normal)

    def forward(self, x, training=False):
        return x + self.params["b2"]

    def backward(self, dy):
        for key, value in self.params.items():
            self.grads[key] = dy.sum(axis=0) if key == "b2" else value * 0
        return dy


@pytest.mark.parametrize("name", ["w.weights.h5", "w.h5"])
def test_a_layer_with_more_than_ten_weights_keeps_their_order(tmp_path, name):
    source, target = (
        tinycnn.Sequential([Flatten(input_shape=(3,)), ManyBiases(), Dense(2)], seed=seed)
        for seed in (0, 1)
    )
    tinycnn.save_keras_weights(source, tmp_path / name)
    tinycnn.load_keras_weights(target, tmp_path / name)
    assert [w.shape for w in target.layers[1].get_weights()] == [(i + 1,) for i in range(12)]
    assert_same_weights(source, target)


def test_float64_weights_load_into_a_float32_model(tmp_path):
    source = fashion_mnist_cnn(seed=0)
    write_keras2_by_hand(tmp_path / "k2.h5", source, SESSION_NAMES)
    with h5py.File(tmp_path / "k2.h5", "a") as f:  # the same values, stored as float64
        data = f["dense_3/dense_3/kernel:0"][()].astype(np.float64)
        del f["dense_3/dense_3/kernel:0"]
        f["dense_3/dense_3/kernel:0"] = data
    target = fashion_mnist_cnn(seed=1)
    tinycnn.load_keras_weights(target, tmp_path / "k2.h5")
    assert_same_weights(source, target)
    assert target.layers[-1].params["kernel"].dtype == np.float32


# ---- BatchNormalization: gamma, beta, moving_mean, moving_variance --------------------------
BN_NAMES = [  # Keras 3's group names of bn_network's layers
    "conv2d",
    "batch_normalization",
    "re_lu",
    "max_pooling2d",
    "conv2d_1",
    "batch_normalization_1",
    "re_lu_1",
    "flatten",
    "dense",
    "batch_normalization_2",
    "re_lu_2",
    "dense_1",
]


def bn_network(seed):
    """Conv2D -> BatchNormalization -> ReLU twice, then Dense -> BatchNormalization ->
    ReLU -> Dense: BN on (N, H, W, C) and on (N, D); the same network as BN_KERAS below."""
    return tinycnn.Sequential(
        [
            Conv2D(8, (3, 3), input_shape=(12, 12, 1)),
            BatchNormalization(momentum=0.9),
            ReLU(),
            MaxPooling2D(2),
            Conv2D(8, (3, 3)),
            BatchNormalization(momentum=0.9),
            ReLU(),
            Flatten(),
            Dense(16),
            BatchNormalization(momentum=0.9),
            ReLU(),
            Dense(5),
        ],
        seed=seed,
    )


def with_moving_statistics(model, seed):
    """``model`` with every weight moved away from its start (gamma 1, beta 0, moving mean
    0, moving variance 1: values a swap of two of them could not show)."""
    rng = np.random.default_rng(seed)
    weights = []
    for layer in model.layers:
        for key, value in layer.params.items():
            if key == "moving_variance":
                weights.append(rng.uniform(0.3, 3.0, value.shape).astype(value.dtype))
            else:
                weights.append((value + rng.normal(0, 0.3, value.shape)).astype(value.dtype))
    model.set_weights(weights)
    return model


def bn_images(n=16, seed=0):
    return np.random.default_rng(seed).random((n, 12, 12, 1), dtype=np.float32)


def bn_layers(model):
    return [layer for layer in model.layers if isinstance(layer, BatchNormalization)]


def assert_same_bn_statistics(source, target):
    """Each key landed in its own place (a swap of gamma and the moving variance, or of
    two layers, would break this even with the same multiset of arrays)."""
    for a, b in zip(bn_layers(source), bn_layers(target), strict=True):
        assert list(b.params) == ["gamma", "beta", "moving_mean", "moving_variance"]
        for key in b.params:
            np.testing.assert_array_equal(a.params[key], b.params[key])


@pytest.mark.parametrize("name", ["bn.weights.h5", "bn.h5"])
def test_batch_normalization_round_trip_keeps_the_moving_statistics(tmp_path, name):
    source, target = with_moving_statistics(bn_network(seed=0), 1), bn_network(seed=2)
    tinycnn.save_keras_weights(source, tmp_path / name)
    tinycnn.load_keras_weights(target, tmp_path / name)
    assert_same_bn_statistics(source, target)
    assert_same_weights(source, target)
    # inference uses the moving statistics: the same predictions
    np.testing.assert_array_equal(source.predict(bn_images()), target.predict(bn_images()))


def test_batch_normalization_keras3_layout(tmp_path):
    # what Keras 3.15 writes for Conv2D -> BatchNormalization -> ReLU (inspected with h5py)
    model = with_moving_statistics(bn_network(seed=0), 1)
    tinycnn.save_keras_weights(model, tmp_path / "bn.weights.h5")
    entries = h5_entries(tmp_path / "bn.weights.h5")
    assert sorted(k.split("/")[1] for k in entries if k.count("/") == 1) == sorted(BN_NAMES)
    with h5py.File(tmp_path / "bn.weights.h5", "r") as f:
        for layer, group in zip(bn_layers(model), BN_NAMES[1::4], strict=True):
            variables = f[f"layers/{group}/vars"]
            assert sorted(variables) == ["0", "1", "2", "3"]
            for index, key in enumerate(["gamma", "beta", "moving_mean", "moving_variance"]):
                np.testing.assert_array_equal(variables[str(index)][()], layer.params[key])
        assert sorted(f["layers/re_lu/vars"]) == []


def test_batch_normalization_keras2_layout(tmp_path):
    model = with_moving_statistics(bn_network(seed=0), 1)
    tinycnn.save_keras_weights(model, tmp_path / "bn.h5")
    name = bn_layers(model)[0].name
    with h5py.File(tmp_path / "bn.h5", "r") as f:
        assert [n.decode() for n in f[name].attrs["weight_names"]] == [
            f"{name}/{key}:0" for key in ["gamma", "beta", "moving_mean", "moving_variance"]
        ]
        np.testing.assert_array_equal(
            f[f"{name}/{name}/moving_variance:0"][()], bn_layers(model)[0].params["moving_variance"]
        )


# a Keras 2 session's names, whose alphabetical order is not the layers' (batch_normalization_4
# sorts before the convolutions): the file's layer_names order decides
BN_SESSION_NAMES = [f"{name}_s" if "_" in name else f"{name}_4" for name in BN_NAMES]
BN_SESSION_NAMES = [name.replace("conv2d", "zconv2d") for name in BN_SESSION_NAMES]


@pytest.mark.parametrize(
    "layout", ["layers", "_layer_checkpoint_dependencies", "keras2", "keras2 model_weights"]
)
def test_batch_normalization_files_written_by_hand(tmp_path, layout):
    """Keras 3 makes the groups in alphabetical order (batch_normalization* before conv2d),
    Keras 2 names the layers per session: each layer still gets its own four arrays."""
    source, target = with_moving_statistics(bn_network(seed=0), 1), bn_network(seed=2)
    assert keras_weights.keras3_group_names(source.layers) == BN_NAMES
    path = tmp_path / ("k2.h5" if layout.startswith("keras2") else "k3.weights.h5")
    if layout.startswith("keras2"):
        container = layout.partition(" ")[2] or None
        write_keras2_by_hand(path, source, BN_SESSION_NAMES, container)
    else:
        write_keras3_by_hand(path, source, layout)
    tinycnn.load_keras_weights(target, path)
    assert_same_bn_statistics(source, target)
    assert_same_weights(source, target)


@pytest.mark.parametrize("name", ["bn.weights.h5", "bn.h5"])
def test_a_moving_variance_of_another_shape_is_refused(tmp_path, name):
    model = with_moving_statistics(bn_network(seed=0), 1)
    tinycnn.save_keras_weights(model, tmp_path / name)
    bn = bn_layers(model)[0].name
    label = "layers/batch_normalization" if name.endswith(".weights.h5") else bn
    where = "layers/batch_normalization/vars/3" if label != bn else f"{bn}/{bn}/moving_variance:0"
    with h5py.File(tmp_path / name, "a") as f:
        del f[where]
        f[where] = np.ones(5, dtype=np.float32)
    refused(
        bn_network(seed=1),
        tmp_path / name,
        rf"layer with weights 2 does not fit: the file's {label} has 4 arrays \(8,\), \(8,\), "
        rf"\(8,\), \(5,\); the model's {bn} \(BatchNormalization\) needs gamma \(8,\), "
        r"beta \(8,\), moving_mean \(8,\), moving_variance \(8,\)\. Nothing was loaded\.",
    )


# ---- errors: clear, and nothing half-loaded --------------------------------------------------
def refused(model, path, match, error=KerasWeightsError):
    """load_keras_weights raises ``error`` matching ``match`` and leaves ``model`` as it was."""
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(error, match=match):
        tinycnn.load_keras_weights(model, path)
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("name", ["w.weights.h5", "w.h5"])
def test_a_wrong_shape_names_both_layers_and_loads_nothing(tmp_path, name):
    # the convolutions fit, the last Dense does not: not even they are loaded
    tinycnn.save_keras_weights(fashion_mnist_cnn(seed=0, num_classes=5), tmp_path / name)
    label = "layers/dense_1" if name.endswith(".weights.h5") else "dense_1"
    refused(
        fashion_mnist_cnn(seed=1),
        tmp_path / name,
        rf"layer with weights 4 does not fit: the file's {label} has 2 arrays \(512, 5\), "
        r"\(5,\); the model's dense_1 \(Dense\) needs kernel \(512, 10\), bias \(10,\)",
    )


def test_a_keras2_file_with_another_layer_count_is_refused(tmp_path):
    model = fashion_mnist_cnn(seed=0)
    write_keras2_by_hand(tmp_path / "k2.h5", model, SESSION_NAMES)
    refused(
        many_dense(seed=0, n=3),
        tmp_path / "k2.h5",
        r"the file has 4 layers with weights \(conv2d_2, conv2d_3, dense_2, dense_3\), "
        r"the model has 3 \(dense \(Dense\), dense_1 \(Dense\), dense_2 \(Dense\)\)",
    )


def test_a_keras3_file_with_other_layers_is_refused(tmp_path):
    tinycnn.save_keras_weights(many_dense(seed=0, n=3), tmp_path / "w.weights.h5")
    refused(
        fashion_mnist_cnn(seed=0),
        tmp_path / "w.weights.h5",
        r"The file has 3: dense, dense_1, dense_2; the model has 4: .*"
        r"Not in the file: conv2d, conv2d_1\. Nothing in the model for: dense_2\.",
    )


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.bool_])
def test_integer_weights_are_refused(tmp_path, dtype):
    # a file of labels or counts, not weights: refused, not converted to float
    source = fashion_mnist_cnn(seed=0)
    write_keras2_by_hand(tmp_path / "k2.h5", source, SESSION_NAMES)
    with h5py.File(tmp_path / "k2.h5", "a") as f:
        del f["dense_2/dense_2/bias:0"]
        f["dense_2/dense_2/bias:0"] = np.ones(512, dtype=dtype)
    refused(
        fashion_mnist_cnn(seed=1),
        tmp_path / "k2.h5",
        rf"the file's dense_2 holds {np.dtype(dtype)} values; expected floating point",
    )


def test_a_file_that_is_not_hdf5_is_refused(tmp_path):
    (tmp_path / "notes.h5").write_text("not weights\n")
    refused(fashion_mnist_cnn(seed=0), tmp_path / "notes.h5", "not a readable HDF5 file")


@pytest.mark.parametrize("name", ["w.weights.h5", "w.h5"])
def test_a_truncated_file_is_refused(tmp_path, name):
    tinycnn.save_keras_weights(fashion_mnist_cnn(seed=0), tmp_path / name)
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    refused(fashion_mnist_cnn(seed=1), tmp_path / name, "not a readable HDF5 file.*truncated")


def test_an_hdf5_file_that_is_not_keras_weights_is_refused(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.zeros(3)
    refused(fashion_mnist_cnn(seed=0), tmp_path / "other.h5", "no group 'layers'.*'layer_names'")


def test_a_missing_file_and_a_wrong_ending(tmp_path):
    refused(fashion_mnist_cnn(seed=0), tmp_path / "none.h5", "no such file", FileNotFoundError)
    with pytest.raises(ValueError, match=r"end the file name with \.weights\.h5"):
        tinycnn.save_keras_weights(fashion_mnist_cnn(seed=0), tmp_path / "w.npz")
    assert not (tmp_path / "w.npz").exists()


def test_without_h5py_the_first_call_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(keras_weights, "h5py", None)
    for call in (tinycnn.load_keras_weights, tinycnn.save_keras_weights):
        with pytest.raises(ImportError, match=r'pip install "tinycnn\[keras\]"'):
            call(fashion_mnist_cnn(seed=0), tmp_path / "w.weights.h5")


def test_import_tinycnn_does_not_import_h5py():
    code = "import sys, tinycnn; assert 'h5py' not in sys.modules; tinycnn.load_keras_weights"
    code += "; assert 'h5py' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---- against Keras, where it is installed ----------------------------------------------------
KERAS_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras

    folder, tools = sys.argv[1], sys.argv[2]
    sys.path.insert(0, tools)
    from compare_keras import keras_seed_network  # the seed's network, docs/from_keras.md

    def save_all(model, stem, x):  # Keras's predictions on x, its three files of the weights
        np.save(f"{folder}/{stem}_predictions.npy", model.predict(x, verbose=0))
        model.save_weights(f"{folder}/{stem}.weights.h5")
        model.save(f"{folder}/{stem}_model.h5")  # Keras 2's whole-model file: model_weights
        model.save(f"{folder}/{stem}_model.keras")

    def read_tinycnn_files(build, stem, x):  # what Keras reads from tinycnn's two files
        for name in [f"{stem}.weights.h5", f"{stem}.h5"]:
            other = build()
            other.load_weights(f"{folder}/{name}")
            np.savez(f"{folder}/{name}.npz", *other.get_weights())
            np.save(f"{folder}/{name}.predictions.npy", other.predict(x, verbose=0))

    x = np.load(f"{folder}/x.npy")
    keras.utils.set_random_seed(0)
    model = keras_seed_network()
    rng = np.random.default_rng(1)  # biases start at 0: give them values too
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in model.get_weights()])
    save_all(model, "keras", x)
    read_tinycnn_files(keras_seed_network, "tinycnn", x)

    def bn_network():  # the test's bn_network, layer for layer
        layers = keras.layers
        return keras.Sequential([
            keras.Input((12, 12, 1)),
            layers.Conv2D(8, (3, 3)), layers.BatchNormalization(momentum=0.9), layers.ReLU(),
            layers.MaxPooling2D(2),
            layers.Conv2D(8, (3, 3)), layers.BatchNormalization(momentum=0.9), layers.ReLU(),
            layers.Flatten(),
            layers.Dense(16), layers.BatchNormalization(momentum=0.9), layers.ReLU(),
            layers.Dense(5),
        ])

    # a few training steps: gamma, beta and the moving statistics leave their start values
    bn_x = np.load(f"{folder}/bn_x.npy")
    bn = bn_network()
    bn.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    bn.fit(bn_x, np.arange(len(bn_x)) % 5, batch_size=32, epochs=2, shuffle=False, verbose=0)
    save_all(bn, "keras_bn", bn_x)  # predict: inference mode, the moving statistics
    read_tinycnn_files(bn_network, "tinycnn_bn", bn_x)
    """
)


@pytest.fixture(scope="module")
def keras_folder(tmp_path_factory):
    """One Keras run (a subprocess: TensorFlow's import is slow and its threads stay out of
    this process): Keras's files of a seed network with random weights, its predictions on
    ``x``, and what Keras reads from tinycnn's files."""
    if importlib.util.find_spec("keras") is None:
        pytest.skip("needs Keras (pip install 'tinycnn[bench]')")
    folder = tmp_path_factory.mktemp("keras")
    np.save(folder / "x.npy", images(256))
    np.save(folder / "bn_x.npy", bn_images(128))
    model = fashion_mnist_cnn(seed=3)
    tinycnn.save_keras_weights(model, folder / "tinycnn.weights.h5")
    tinycnn.save_keras_weights(model, folder / "tinycnn.h5")
    bn_model = with_moving_statistics(bn_network(seed=3), 4)
    tinycnn.save_keras_weights(bn_model, folder / "tinycnn_bn.weights.h5")
    tinycnn.save_keras_weights(bn_model, folder / "tinycnn_bn.h5")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    run = subprocess.run(
        [sys.executable, "-c", KERAS_SCRIPT, str(folder), str(TOOLS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return folder, model, bn_model


@pytest.mark.parametrize("name", ["keras.weights.h5", "keras_model.h5", "keras_model.keras"])
def test_keras_weights_load_into_tinycnn_with_the_same_predictions(keras_folder, name):
    folder = keras_folder[0]
    model = fashion_mnist_cnn(seed=0)
    tinycnn.load_keras_weights(model, folder / name)
    ours = tinycnn.softmax(model.predict(np.load(folder / "x.npy")))
    theirs = np.load(folder / "keras_predictions.npy")
    assert np.abs(ours - theirs).max() < 1e-5  # about 1e-7 measured: float32 rounding
    np.testing.assert_array_equal(ours.argmax(axis=1), theirs.argmax(axis=1))
    assert len(set(theirs.argmax(axis=1))) > 1  # the check compares several classes


@pytest.mark.parametrize("name", ["tinycnn.weights.h5", "tinycnn.h5"])
def test_tinycnn_weights_load_into_keras(keras_folder, name):
    folder, model, _ = keras_folder
    with np.load(folder / f"{name}.npz") as saved:
        keras_weights_read = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    assert [w.shape for w in keras_weights_read] == SEED_SHAPES
    for ours, theirs in zip(model.get_weights(), keras_weights_read, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    ours = tinycnn.softmax(model.predict(np.load(folder / "x.npy")))
    theirs = np.load(folder / f"{name}.predictions.npy")
    assert np.abs(ours - theirs).max() < 1e-5


def test_tinycnn_writes_the_layout_keras_writes(keras_folder):
    folder = keras_folder[0]
    assert h5_entries(folder / "tinycnn.weights.h5") == h5_entries(folder / "keras.weights.h5")


@pytest.mark.parametrize(
    "name", ["keras_bn.weights.h5", "keras_bn_model.h5", "keras_bn_model.keras"]
)
def test_keras_batch_normalization_weights_give_the_same_inference(keras_folder, name):
    """A Keras BN network trained for a few steps (its moving statistics moved): tinycnn's
    predict, which normalises with them, gives Keras's logits."""
    folder = keras_folder[0]
    model = bn_network(seed=0)
    tinycnn.load_keras_weights(model, folder / name)
    for layer in bn_layers(model):  # trained: far from the start values
        assert np.abs(layer.params["moving_mean"]).max() > 0.05
        assert np.abs(layer.params["moving_variance"] - 1).max() > 0.05
        assert np.abs(layer.params["gamma"] - 1).max() > 1e-3
    ours = model.predict(np.load(folder / "bn_x.npy"))
    theirs = np.load(folder / "keras_bn_predictions.npy")
    assert np.abs(ours - theirs).max() < 1e-5  # 3.7e-7 measured, logits up to 0.56


@pytest.mark.parametrize("name", ["tinycnn_bn.weights.h5", "tinycnn_bn.h5"])
def test_tinycnn_batch_normalization_weights_load_into_keras(keras_folder, name):
    folder, _, model = keras_folder
    with np.load(folder / f"{name}.npz") as saved:
        keras_weights_read = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    for ours, theirs in zip(model.get_weights(), keras_weights_read, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    ours = model.predict(np.load(folder / "bn_x.npy"))
    theirs = np.load(folder / f"{name}.predictions.npy")
    assert np.abs(ours - theirs).max() < 1e-5  # 3.7e-7 measured, logits up to 0.56


def test_tinycnn_writes_the_batch_normalization_layout_keras_writes(keras_folder):
    folder = keras_folder[0]
    ours, theirs = (
        h5_entries(folder / "tinycnn_bn.weights.h5"),
        h5_entries(folder / "keras_bn.weights.h5"),
    )
    assert [k for k in theirs if k.startswith("optimizer")]  # Keras saved its optimizer too
    assert ours == {k: v for k, v in theirs.items() if not k.startswith("optimizer")}
