"""Tests for tinycnn.saving: the round trip, loading without pickle, corrupt files,
atomic writes under a crash, shape checks, and resuming training from a file."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import warnings
import zipfile

import numpy as np
import pytest

import tinycnn
from tinycnn import atomic_file, saving
from tinycnn.optimizers import SGD, Adam
from tinycnn.saving import ModelFileError

L = tinycnn.layers


def tiny_model(seed=0, filters=4, units=3):
    return tinycnn.Sequential(
        [
            L.Conv2D(filters, 3, activation="relu", input_shape=(8, 8, 1)),
            L.Flatten(),
            L.Dense(units),
        ],
        seed=seed,
    )


def make_data(n=24, seed=0, shape=(8, 8, 1), classes=3):
    rng = np.random.default_rng(seed)
    return (
        rng.random((n, *shape), dtype=np.float32),
        rng.integers(0, classes, n).astype(np.int64),
    )


def trained(optimizer=None, seed=0):
    model = tiny_model(seed)
    model.compile(optimizer=optimizer or Adam(0.01), loss="sparse_categorical_crossentropy")
    x, y = make_data()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    return model


def read_all(path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def rewrite(path, **changes) -> None:
    """Save again the arrays of ``path``, some replaced (keys as in the file)."""
    np.savez(path, **dict(read_all(path), **changes))


def assert_weights_equal(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        assert u.dtype == v.dtype
        np.testing.assert_array_equal(u, v)


@pytest.fixture
def saved(tmp_path):
    """A trained, compiled model and the path it was saved to."""
    model = trained()
    path = tmp_path / "model.npz"
    model.save(path)
    return model, path


# ---- round trip -------------------------------------------------------------------------------
def test_round_trip_architecture_weights_and_predictions(saved):
    model, path = saved
    loaded = tinycnn.load_model(path)
    assert loaded.get_config() == model.get_config()
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    assert [a.name for a in loaded.layers] == [b.name for b in model.layers]
    assert loaded.input_shape == (8, 8, 1)
    assert_weights_equal(loaded.get_weights(), model.get_weights())
    x, y = make_data(10, seed=5)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_round_trip_adam_state(saved):
    model, path = saved
    model_opt = model.optimizer
    loaded = tinycnn.load_model(path).optimizer
    assert type(loaded) is Adam
    assert loaded.get_config() == model_opt.get_config()
    assert loaded.iterations == model_opt.iterations == 6
    assert (
        set(loaded.state)
        == set(model_opt.state)
        == {
            "conv2d/kernel",
            "conv2d/bias",
            "dense/kernel",
            "dense/bias",
        }
    )
    for key, slot in model_opt.state.items():
        assert set(loaded.state[key]) == {"m", "v"}
        for name in ("m", "v"):
            assert np.any(slot[name] != 0), (key, name)  # real state, not zeros
            np.testing.assert_array_equal(loaded.state[key][name], slot[name])


def test_round_trip_keeps_a_changed_learning_rate_and_sgd_momentum(tmp_path):
    model = trained(optimizer=SGD(0.05, momentum=0.9, nesterov=True))
    model.optimizer.learning_rate = 0.0125  # as a schedule would leave it
    model.save(tmp_path / "sgd.npz")
    loaded = tinycnn.load_model(tmp_path / "sgd.npz")
    opt = loaded.optimizer
    assert type(opt) is SGD
    assert (opt.learning_rate, opt.momentum, opt.nesterov) == (0.0125, 0.9, True)
    assert opt.iterations == model.optimizer.iterations
    for key, slot in model.optimizer.state.items():
        np.testing.assert_array_equal(opt.state[key]["velocity"], slot["velocity"])


def test_load_without_compile_and_an_uncompiled_model(tmp_path, saved):
    _, path = saved
    assert tinycnn.load_model(path, compile=False).optimizer is None
    plain = tiny_model(3)
    plain.save(tmp_path / "plain.npz")
    loaded = tinycnn.load_model(tmp_path / "plain.npz")
    assert loaded.optimizer is None and loaded.loss is None
    assert_weights_equal(loaded.get_weights(), plain.get_weights())


def test_round_trip_float64(tmp_path):
    with tinycnn.use_floatx("float64"):
        model = tiny_model(1)
        model.build((8, 8, 1))
    model.save(tmp_path / "f64.npz")
    loaded = tinycnn.load_model(tmp_path / "f64.npz")
    assert {w.dtype for w in loaded.get_weights()} == {np.dtype("float64")}
    assert_weights_equal(loaded.get_weights(), model.get_weights())


def test_the_file_holds_only_plain_arrays(saved):
    _, path = saved
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}  # would raise on any object array
    assert str(arrays["__format__"]) == "tinycnn-model-1"
    assert all(a.dtype != object for a in arrays.values())
    assert int(arrays["optimizer/iterations"]) == 6


def test_saving_an_unbuilt_model_raises(tmp_path):
    model = tinycnn.Sequential([L.Flatten(), L.Dense(3)])
    with pytest.raises(RuntimeError, match="not built"):
        model.save(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_load_weights_into_the_same_architecture(saved):
    model, path = saved
    other = tiny_model(seed=9)
    other.load_weights(path)
    assert_weights_equal(other.get_weights(), model.get_weights())
    assert other.optimizer is None  # only the weights


# ---- refusing pickles, corrupt and foreign files -------------------------------------------------------
TRIPPED: list = []


def _trap():
    TRIPPED.append("unpickled")
    return "gotcha"


class Trap:
    """Unpickling this object calls _trap: proof that a loader ran pickle."""

    def __reduce__(self):
        return (_trap, ())


def test_a_file_with_pickled_objects_is_refused_without_running_them(saved, tmp_path):
    model, path = saved
    arrays = read_all(path)
    trap = np.array([Trap()], dtype=object)
    np.savez(path, **dict(arrays, **{"weights/dense/bias": trap}))  # allow_pickle=True to save
    with np.load(path, allow_pickle=True) as data:  # the trap is live ...
        data["weights/dense/bias"]
    assert TRIPPED == ["unpickled"]
    TRIPPED.clear()
    with pytest.raises(ModelFileError, match="pickled objects"):
        tinycnn.load_model(path)
    with pytest.raises(ModelFileError, match="pickled objects"):
        tiny_model().load_weights(path)
    # in a member the format does not name, it is refused without even reading the header
    np.savez(tmp_path / "extra.npz", **dict(arrays, evil=trap))
    for load in (tinycnn.load_model, tiny_model().load_weights):
        with pytest.raises(ModelFileError, match="unexpected member 'evil'"):
            load(tmp_path / "extra.npz")
    assert TRIPPED == []  # ... but tinycnn never sprang it


def test_model_file_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)


def test_an_npz_that_is_not_a_model_is_refused(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, x=np.arange(3), y=np.ones((2, 2)))
    with pytest.raises(ModelFileError, match="not a tinycnn model file"):
        tinycnn.load_model(path)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_a_truncated_file_is_refused(saved, keep):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        tinycnn.load_model(path)


def test_a_file_with_damaged_bytes_is_refused(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="corrupt"):
        tinycnn.load_model(path)


def test_a_file_of_random_bytes_is_refused(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ModelFileError):
        tinycnn.load_model(path)


def test_a_text_file_is_not_reported_as_pickled_objects(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("these are not the weights you are looking for\n")
    with pytest.raises(ModelFileError) as info:
        tinycnn.load_model(path)
    assert "pickled" not in str(info.value)


def test_a_plain_npy_file_is_refused_as_not_a_model(tmp_path):
    path = tmp_path / "model.npz"
    with open(path, "wb") as f:
        np.save(f, np.arange(10.0))
    with pytest.raises(ModelFileError):
        tinycnn.load_model(path)


def test_missing_entries_are_named(saved, tmp_path):
    _, path = saved
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    no_arch = {k: v for k, v in arrays.items() if k != "__architecture__"}
    np.savez(tmp_path / "a.npz", **no_arch)
    with pytest.raises(ModelFileError, match="__architecture__"):
        tinycnn.load_model(tmp_path / "a.npz")
    no_kernel = {k: v for k, v in arrays.items() if k != "weights/dense/kernel"}
    np.savez(tmp_path / "b.npz", **no_kernel)
    with pytest.raises(ModelFileError, match="'dense' kernel"):
        tinycnn.load_model(tmp_path / "b.npz")
    bad_json = dict(arrays, __architecture__=np.array("{not json"))
    np.savez(tmp_path / "c.npz", **bad_json)
    with pytest.raises(ModelFileError, match="__architecture__"):
        tinycnn.load_model(tmp_path / "c.npz")


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        tinycnn.load_model(tmp_path / "nothing.npz")
    with pytest.raises(FileNotFoundError):
        tiny_model().load_weights(tmp_path / "nothing.npz")
    with pytest.raises(FileNotFoundError):
        tinycnn.load_model(tmp_path)  # a folder is no file


# ---- load_weights shape checks ----------------------------------------------------------------------
def test_load_weights_with_other_shapes_names_the_layer_and_both_shapes(saved):
    _, path = saved
    wider = tiny_model(filters=5)
    with pytest.raises(ValueError, match="conv2d") as info:
        wider.load_weights(path)
    message = str(info.value)
    assert "(3, 3, 1, 5)" in message and "(3, 3, 1, 4)" in message


def test_load_weights_into_a_model_with_other_layers(saved):
    _, path = saved
    deeper = tinycnn.Sequential(
        [
            L.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
            L.Flatten(),
            L.Dense(3),
            L.Dense(3),
        ]
    )
    with pytest.raises(ModelFileError, match="'dense_1'"):
        deeper.load_weights(path)


def test_a_failed_load_weights_leaves_the_model_unchanged(saved):
    _, path = saved
    other = tiny_model(seed=7, units=4)  # same conv2d, different dense
    before = [w.copy() for w in other.get_weights()]
    with pytest.raises(ValueError, match="dense"):
        other.load_weights(path)
    assert_weights_equal(other.get_weights(), before)


# ---- atomic writes -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "crash", [KeyboardInterrupt(), OSError(28, "No space left on device")], ids=repr
)
def test_a_crash_while_saving_leaves_the_previous_file(saved, monkeypatch, crash):
    model, path = saved
    before = path.read_bytes()
    x, y = make_data(8, seed=1)
    model.fit(x, y, batch_size=8, verbose=0)  # the model now differs from the file

    def crashing_savez(file, *args, **kwds):
        file.write(b"PK\x03\x04 half a zip file")
        raise crash

    monkeypatch.setattr(saving.numpy, "savez", crashing_savez)
    with pytest.raises(type(crash)):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["model.npz"]  # no temporary file left
    assert zipfile.is_zipfile(path)
    tinycnn.load_model(path)


def test_a_crash_while_saving_a_new_file_leaves_nothing(tmp_path, monkeypatch):
    model = trained()

    def crashing_savez(file, *args, **kwds):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(saving.numpy, "savez", crashing_savez)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "sub" / "new.npz")
    assert list((tmp_path / "sub").iterdir()) == []


def test_saving_over_a_file_replaces_it(saved):
    model, path = saved
    x, y = make_data(8, seed=1)
    model.fit(x, y, batch_size=8, verbose=0)
    model.save(path)
    assert sorted(os.listdir(path.parent)) == ["model.npz"]
    assert_weights_equal(tinycnn.load_model(path).get_weights(), model.get_weights())


# ---- resuming training from a file ---------------------------------------------------------------------
def test_resuming_from_a_file_matches_an_uninterrupted_run(tmp_path, make_small_model):
    """2 epochs in one go == 1 epoch, save, load, 1 more epoch (NumPy: bit for bit)."""
    x, y = make_data(256, seed=3, shape=(14, 14, 2), classes=4)
    seed = 11

    straight = make_small_model(seed=0)
    straight.compile(optimizer=Adam(0.003), loss="sparse_categorical_crossentropy")
    straight.fit(x, y, epochs=2, batch_size=32, seed=seed, verbose=0)

    first = make_small_model(seed=0)
    first.compile(optimizer=Adam(0.003), loss="sparse_categorical_crossentropy")
    first.fit(x, y, epochs=1, batch_size=32, seed=seed, verbose=0)
    first.save(tmp_path / "epoch1.npz")
    resumed = tinycnn.load_model(tmp_path / "epoch1.npz")
    history = resumed.fit(x, y, epochs=2, initial_epoch=1, batch_size=32, seed=seed, verbose=0)

    assert history.epoch == [1]
    assert resumed.optimizer.iterations == straight.optimizer.iterations == 16
    assert not np.array_equal(straight.get_weights()[0], first.get_weights()[0])
    for a, b in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


# ---- crafted and damaged files: every failure a ModelFileError, nothing allocated first ---------------
def architecture(path) -> dict:
    return json.loads(str(read_all(path)["__architecture__"]))


def test_an_architecture_larger_than_its_weights_is_refused_before_anything_is_built(
    saved, monkeypatch
):
    """Dense(units=10**7) used to allocate (144, 10**7) weights before comparing shapes."""
    _, path = saved
    config = architecture(path)
    config["layers"][2]["config"]["units"] = 10**7
    rewrite(path, __architecture__=np.array(json.dumps(config)))

    def no_build(self, *args, **kwargs):
        raise AssertionError("a layer was built before the file was checked")

    monkeypatch.setattr(tinycnn.layers.Layer, "build", no_build)
    with pytest.raises(
        ModelFileError,
        match=r"layer 'dense' kernel has shape \(144, 10000000\) in the architecture "
        r"but \(144, 3\) in the file",
    ):
        tinycnn.load_model(path)


def test_param_shapes_are_the_shapes_build_creates():
    cases = [
        (L.Conv2D(5, 3), (9, 9, 2)),
        (L.Conv2D(5, (3, 2), strides=2, padding="same", use_bias=False), (9, 9, 2)),
        (L.Dense(7), (11,)),
        (L.Dense(7, use_bias=False), (11,)),
        (L.MaxPooling2D(2), (8, 8, 3)),
        (L.Flatten(), (4, 4, 2)),
        (L.Dropout(0.5), (6,)),
        (L.ReLU(), (6,)),
    ]
    for layer, input_shape in cases:
        predicted = layer.param_shapes(input_shape)
        layer.build(input_shape, rng=0)
        assert predicted == {k: tuple(v.shape) for k, v in layer.params.items()}, layer


def test_a_layer_with_weights_must_say_their_shapes():
    class Scale(L.Layer):  # a custom layer that creates a weight but not param_shapes
        def _create_params(self, input_shape, rng):
            self.params["gamma"] = np.ones(input_shape, np.float32)

    with pytest.raises(NotImplementedError, match="Scale creates parameters.*param_shapes"):
        Scale().param_shapes((3,))


DAMAGED_COMPILE = [
    {"optimizer": {"beta_1": "x"}},  # was KeyError: 'name'
    {"optimizer": {"name": "Adam", "beta_1": "x"}, "loss": "sparse_categorical_crossentropy"},
    {"optimizer": {"name": "Adam", "beta_1": 2.0}, "loss": "sparse_categorical_crossentropy"},
    {"optimizer": {"name": "Adam", "momentum": 0.9}, "loss": "sparse_categorical_crossentropy"},
    {"optimizer": {"name": "RMSprop"}, "loss": "sparse_categorical_crossentropy"},
    {"optimizer": {"name": "Adam"}, "loss": "mean_squared_error"},
    {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
    [1, 2],
    None,
]


@pytest.mark.parametrize("config", DAMAGED_COMPILE, ids=repr)
def test_a_damaged_compile_entry(saved, config):
    _, path = saved
    rewrite(path, __compile__=np.array(json.dumps(config)))
    with pytest.raises(ModelFileError, match="__compile__ entry is damaged"):
        tinycnn.load_model(path)
    assert tinycnn.load_model(path, compile=False).optimizer is None  # the rest still loads


def conv_config(**changes):
    config = {"filters": 4, "kernel_size": [3, 3], "strides": 1, "padding": "valid"}
    return {"class_name": "Conv2D", "config": {**config, "activation": "relu", **changes}}


DAMAGED_ARCHITECTURES = {
    "a list": "[1, 2]",
    "a string": '"sequential"',
    "null": "null",
    "layers a string": '{"layers": "abc", "input_shape": [8, 8, 1]}',
    "a layer a number": '{"layers": [3], "input_shape": [8, 8, 1]}',
    "config a list": '{"layers": [{"class_name": "Dense", "config": [1]}], "input_shape": [4]}',
    "class_name a list": '{"layers": [{"class_name": [1], "config": {}}], "input_shape": [4]}',
    "unknown class": '{"layers": [{"class_name": "Conv3D", "config": {}}], "input_shape": [4]}',
    "unknown argument": json.dumps(
        {"layers": [{"class_name": "Dense", "config": {"units": 3, "colour": "red"}}]}
    ),
    "padding a number": json.dumps({"layers": [conv_config(padding=3)], "input_shape": [8, 8, 1]}),
    "name a number": json.dumps({"layers": [conv_config(name=5)], "input_shape": [8, 8, 1]}),
    "model name a list": json.dumps({"name": [1], "layers": [], "input_shape": [4]}),
    "two layers one name": json.dumps(
        {"layers": [conv_config(name="c"), conv_config(name="c")], "input_shape": [8, 8, 1]}
    ),
    "input_shape a string": json.dumps({"layers": [conv_config()], "input_shape": "8x8"}),
    "input_shape zero": json.dumps({"layers": [conv_config()], "input_shape": [0, 8, 1]}),
    "input_shape fractional": json.dumps({"layers": [conv_config()], "input_shape": [8.5, 8, 1]}),
    "input_shape booleans": json.dumps({"layers": [conv_config()], "input_shape": [True, 8, 1]}),
    "kernel larger than input": json.dumps({"layers": [conv_config()], "input_shape": [2, 2, 1]}),
    "dense on images": json.dumps(
        {"layers": [{"class_name": "Dense", "config": {"units": 3}}], "input_shape": [8, 8, 1]}
    ),
    "conv on vectors": json.dumps({"layers": [conv_config()], "input_shape": [64]}),
    "deeply nested": "[" * 100_000 + "]" * 100_000,
    "a huge integer": '{"layers": [], "input_shape": [' + "9" * 5000 + "]}",
    "not JSON": "{not json",
}


@pytest.mark.parametrize("text", DAMAGED_ARCHITECTURES.values(), ids=DAMAGED_ARCHITECTURES)
def test_a_damaged_architecture_entry(saved, text):
    _, path = saved
    rewrite(path, __architecture__=np.array(text))
    with pytest.raises(ModelFileError, match="architecture") as info:
        tinycnn.load_model(path)
    assert len(str(info.value)) < 700  # a readable message, even for a huge entry


def test_a_file_of_another_format_version_says_which(saved):
    _, path = saved
    rewrite(path, __format__=np.array("tinycnn-model-2"))
    with pytest.raises(
        ModelFileError, match="format 'tinycnn-model-2', but this version of tinycnn reads "
        "'tinycnn-model-1'"
    ):  # fmt: skip
        tinycnn.load_model(path)
    rewrite(path, __format__=np.arange(3))
    with pytest.raises(ModelFileError, match="not a tinycnn model file"):
        tinycnn.load_model(path)


def test_weights_holding_nan_or_infinity_load_with_a_warning(saved):
    model, path = saved
    kernel, bias = model.get_weights()[2:]
    kernel[0, 0], bias[1] = np.nan, -np.inf
    rewrite(path, **{"weights/dense/kernel": kernel, "weights/dense/bias": bias})
    with pytest.warns(RuntimeWarning) as record:
        loaded = tinycnn.load_model(path)
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    assert "layer 'dense' bias holds 1 NaN or infinite value(s) of 3" in messages[0]
    assert "layer 'dense' kernel holds 1 NaN or infinite value(s) of 432" in messages[1]
    np.testing.assert_array_equal(loaded.get_weights()[2], kernel)  # loaded as they are
    with pytest.warns(RuntimeWarning) as record:
        tiny_model().load_weights(path)
    assert sorted(str(w.message) for w in record) == messages


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weights/conv2d/kernel": np.float16, "weights/conv2d/bias": np.float16,
          "weights/dense/kernel": np.float16, "weights/dense/bias": np.float16}, "float16"),
        ({"weights/dense/bias": np.int32}, "int32"),
        ({"weights/dense/bias": np.float64}, r"mix dtypes \['float32', 'float64'\]"),
        ({"weights/dense/bias": ">f4"}, ">f4"),
    ],
    ids=["float16", "int32", "mixed", "big-endian"],
)  # fmt: skip
def test_weights_of_a_dtype_tinycnn_does_not_compute_in_are_refused(saved, change, message):
    _, path = saved
    arrays = read_all(path)
    rewrite(path, **{k: arrays[k].astype(dtype) for k, dtype in change.items()})
    with pytest.raises(ModelFileError, match=message):
        tinycnn.load_model(path)
    if "mix" not in message:
        with pytest.raises(ModelFileError, match=message):
            tiny_model().load_weights(path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"junk": np.zeros(3)}, "unexpected member 'junk'"),
        ({"weights/dense_9/kernel": np.zeros((3, 3), np.float32)}, "'weights/dense_9/kernel'"),
        ({"optimizer/dense_9/kernel/m": np.zeros(1, np.float32)}, "'optimizer/dense_9/kernel/m'"),
        ({"optimizer/dense/kernel/velocity": np.zeros((144, 3), np.float32)}, "velocity"),
    ],
    ids=["junk", "weights of no layer", "state of no layer", "a slot Adam does not keep"],
)
def test_members_the_format_does_not_name_are_refused(saved, extra, message):
    _, path = saved
    rewrite(path, **extra)
    with pytest.raises(ModelFileError, match=message):
        tinycnn.load_model(path)


def test_duplicate_other_and_too_many_members_are_refused(saved, tmp_path, monkeypatch):
    _, path = saved
    twice = tmp_path / "twice.npz"
    twice.write_bytes(path.read_bytes())
    with zipfile.ZipFile(twice, "a") as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        with z.open("weights/dense/kernel.npy", "w") as f:
            np.save(f, np.zeros((144, 3), np.float32))
    with pytest.raises(ModelFileError, match="'weights/dense/kernel' appears twice"):
        tinycnn.load_model(twice)
    with pytest.raises(ModelFileError, match="appears twice"):
        tiny_model().load_weights(twice)

    text = tmp_path / "text.npz"
    text.write_bytes(path.read_bytes())
    with zipfile.ZipFile(text, "a") as z:
        z.writestr("README.txt", "hello")
    with pytest.raises(ModelFileError, match="unexpected member 'README.txt'"):
        tinycnn.load_model(text)

    assert len(read_all(path)) == 17
    monkeypatch.setattr(saving, "MAX_MEMBERS", 16)
    with pytest.raises(ModelFileError, match="lists 17 members.*at most 16"):
        tinycnn.load_model(path)


def set_declared_size(path, member: str, size: int) -> None:
    """Overwrite the uncompressed size the zip's central directory gives ``member``."""
    data = bytearray(path.read_bytes())
    at = 0
    while True:
        at = data.index(b"PK\x01\x02", at)
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_length] == member.encode():
            struct.pack_into("<I", data, at + 24, size)
            break
        at += 4
    path.write_bytes(bytes(data))


def test_a_member_whose_declared_size_is_impossible_is_refused(saved, tmp_path):
    _, path = saved
    packed = tmp_path / "packed.npz"
    np.savez_compressed(packed, **read_all(path))  # deflated members
    tinycnn.load_model(packed)
    info = zipfile.ZipFile(packed).getinfo("weights/dense/kernel.npy")
    set_declared_size(packed, "weights/dense/kernel.npy", 1033 * info.compress_size + 2000)
    with pytest.raises(ModelFileError, match="claims to unpack .* which is impossible"):
        tinycnn.load_model(packed)

    set_declared_size(path, "weights/dense/bias.npy", 2**31)  # stored: no compression at all
    with pytest.raises(ModelFileError, match="'weights/dense/bias' claims to unpack"):
        tinycnn.load_model(path)


def test_a_member_shorter_than_its_header_says_is_refused_before_reading(saved, tmp_path):
    _, path = saved
    short = tmp_path / "short.npz"
    with zipfile.ZipFile(short, "w") as z:
        for key, value in read_all(path).items():
            data = io.BytesIO()
            np.save(data, value)
            if key == "weights/dense/kernel":
                data.truncate(len(data.getvalue()) - 100)  # the header is right, the data short
            z.writestr(f"{key}.npy", data.getvalue())
    with pytest.raises(ModelFileError, match=r"declares \d+ bytes, but its header says shape"):
        tinycnn.load_model(short)


# ---- optimizer state: every array checked against its parameter -----------------------------------------
def test_optimizer_state_of_the_wrong_shape_in_a_file_names_layer_slot_and_shapes(saved):
    _, path = saved
    rewrite(path, **{"optimizer/dense/kernel/m": np.zeros(1, np.float32)})
    with pytest.raises(ModelFileError) as info:
        tinycnn.load_model(path)
    message = str(info.value)
    assert "'m' of layer 'dense' kernel" in message
    assert "(1,)" in message and "(144, 3)" in message
    tinycnn.load_model(path, compile=False)  # the weights alone still load


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"optimizer/dense/kernel/m": np.zeros((144, 3), np.float64)}, "float64"),
        ({"optimizer/iterations": np.array(2.5)}, "iterations should be one integer"),
        ({"optimizer/iterations": np.array([1, 2])}, "iterations should be one integer"),
        ({"optimizer/iterations": np.array(-3)}, "iterations is negative"),
    ],
    ids=["dtype", "fractional count", "count array", "negative count"],
)
def test_optimizer_state_of_the_wrong_kind_in_a_file(saved, change, message):
    _, path = saved
    rewrite(path, **change)
    with pytest.raises(ValueError, match=message):
        tinycnn.load_model(path)


def test_half_of_adams_state_in_a_file_is_refused(saved, tmp_path):
    _, path = saved
    arrays = read_all(path)
    del arrays["optimizer/dense/kernel/v"]
    np.savez(tmp_path / "half.npz", **arrays)
    with pytest.raises(ModelFileError, match=r"layer 'dense' kernel has \['m'\]; Adam keeps"):
        tinycnn.load_model(tmp_path / "half.npz")


def test_set_state_on_a_bound_optimizer_checks_at_once_and_changes_nothing(saved):
    model, _ = saved
    opt = model.optimizer
    before = {
        k: (np.array(v, copy=True) if k != "iterations" else v) for k, v in opt.get_state().items()
    }
    bad = [
        ({"dense/kernel/m": np.zeros(1, np.float32), "dense/kernel/v": np.zeros(1, np.float32)},
         r"dense/kernel/m has shape \(1,\) \(float32\), but the parameter dense/kernel has "
         r"shape \(144, 3\)"),
        ({"dense_9/kernel/m": np.zeros((144, 3), np.float32)}, "no such parameter"),
        ({"dense/kernel/m": np.zeros((144, 3), np.float32)}, r"holds \['m'\]; Adam keeps"),
        ({"dense/bias/m": np.zeros(3, np.float64), "dense/bias/v": np.zeros(3, np.float64)},
         r"\(float64\), but the parameter dense/bias has shape \(3,\) \(float32\)"),
        ({"dense/kernel": np.zeros(3)}, "not 'layer/parameter/slot'"),
    ]  # fmt: skip
    for state, message in bad:
        with pytest.raises(ValueError, match=message):
            opt.set_state({"iterations": 99, **state})
        assert opt.iterations == before["iterations"]  # unchanged
        assert set(opt.get_state()) == set(before)
    with pytest.raises(TypeError, match="'iterations' must be an integer"):
        opt.set_state({"iterations": 1.5})


def test_set_state_copies_the_arrays(saved):
    model, _ = saved
    state = {k: (np.array(v, copy=True) if k != "iterations" else v)
             for k, v in model.optimizer.get_state().items()}  # fmt: skip
    kept = {k: v.copy() for k, v in state.items() if k != "iterations"}
    model.optimizer.set_state(state)
    x, y = make_data(8, seed=1)
    model.train_on_batch(x, y)
    for key, value in kept.items():
        np.testing.assert_array_equal(state[key], value)  # the optimizer used its own copy


def test_an_unbound_optimizer_checks_its_state_when_bound_or_at_its_first_step():
    model = tiny_model()
    bad = {"iterations": 3, "dense/kernel/m": np.zeros(1, np.float32),
           "dense/kernel/v": np.zeros(1, np.float32)}  # fmt: skip
    opt = Adam()
    opt.set_state(bad)  # nothing to check against yet
    model.build((8, 8, 1))
    with pytest.raises(ValueError, match=r"dense/kernel/m has shape \(1,\)"):
        model.compile(optimizer=opt)  # bound to a built model: checked
    opt = Adam()
    opt.set_state(bad)
    model = tiny_model()
    x, y = make_data(8)
    model.build((8, 8, 1))
    model.forward(x, training=True)
    with pytest.raises(ValueError, match=r"dense/kernel/m has shape \(1,\)"):
        opt.step(model.layers)  # never bound: checked at the first step
    assert opt.iterations == 3


# ---- the atomic writer ------------------------------------------------------------------------------------
def test_two_threads_saving_one_path(tmp_path):
    """Both used the same temporary name: FileNotFoundError, or a file with a bad CRC."""
    model = trained()
    path = tmp_path / "model.npz"
    errors = []

    def work():
        for _ in range(25):
            try:
                model.save(path)
                tinycnn.load_model(path)  # whoever saved last, the file is whole
            except Exception as err:  # noqa: BLE001 - collected for the assertion
                errors.append(repr(err))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    assert_weights_equal(tinycnn.load_model(path).get_weights(), model.get_weights())


def test_the_file_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    tiny_model().save(tmp_path / "model.npz")
    renamed = [inode for what, inode in events if what == "replace"]
    assert len(renamed) == 1
    position = events.index(("replace", renamed[0]))
    assert ("fsync", renamed[0]) in events[:position]  # the very file, before its rename


def test_stale_temporary_files_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    path = tmp_path / "model.npz"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    live = subprocess.Popen(
        [sys.executable, "-c", "import os, sys, time; from pathlib import Path; "
         "Path(sys.argv[1], f'.model.npz.{os.getpid()}.abcd1234.tmp').write_bytes(b'PK'); "
         "print('ready', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert live.stdout.readline() == "ready\n"
        stale = [f".model.npz.{dead_pid}.0123abcd.tmp", f".model.npz.{dead_pid}.tmp"]
        for name in stale:
            (tmp_path / name).write_bytes(bytes(1000))
        others = [
            f".model.npz.{live.pid}.abcd1234.tmp",  # a live writer in another process
            f".model.npz.{os.getpid()}.feedbeef.tmp",  # another thread of this one
            f".other.npz.{dead_pid}.0123abcd.tmp",  # another file's
            "notes.txt",
        ]
        (tmp_path / others[1]).write_bytes(b"")
        (tmp_path / others[2]).write_bytes(b"")
        (tmp_path / others[3]).write_bytes(b"")
        tiny_model().save(path)
        assert sorted(os.listdir(tmp_path)) == sorted(["model.npz", *others])
    finally:
        live.kill()
        live.communicate()


def test_writer_pid_reads_only_temporary_names_of_the_target():
    assert atomic_file.writer_pid(".m.npz.42.a1b2c3d4.tmp", "m.npz") == 42
    assert atomic_file.writer_pid(".m.npz.42.tmp", "m.npz") == 42  # older tinycnn
    for name in [".m.npz.tmp", ".m.npz.x42.tmp", ".m.npz.0.ab.tmp", "m.npz.42.ab.tmp",
                 ".m.npz.42.ab.txt", ".n.npz.42.ab.tmp", ".m.npz.99999999999.ab.tmp"]:  # fmt: skip
        assert atomic_file.writer_pid(name, "m.npz") is None, name


def test_sigterm_raises_only_while_writing_and_only_in_place_of_the_default(tmp_path, monkeypatch):
    seen = []
    real_savez = np.savez

    def savez(file, **arrays):
        seen.append(signal.getsignal(signal.SIGTERM))
        real_savez(file, **arrays)

    monkeypatch.setattr(saving.numpy, "savez", savez)
    model = tiny_model()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    model.save(tmp_path / "a.npz")
    assert callable(seen[-1])  # during the write: the temporary handler ...
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # ... then the default again

    def own(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, own)
    try:
        model.save(tmp_path / "b.npz")
        assert seen[-1] is own and signal.getsignal(signal.SIGTERM) is own  # left alone
    finally:
        signal.signal(signal.SIGTERM, previous)

    worker = threading.Thread(target=model.save, args=(tmp_path / "c.npz",))
    worker.start()
    worker.join()
    assert seen[-1] is signal.SIG_DFL  # not from another thread
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "b.npz", "c.npz"]


def test_a_damaged_training_entry_is_a_model_file_error(saved, tmp_path):
    _, path = saved
    arrays = read_all(path)
    assert json.loads(str(arrays["__training__"]))["fit_seed"] >= 0
    for bad in ('{"fit_seed": -1}', '{"fit_seed": "x"}', "[1]", '{"fit_seed": true}'):
        arrays["__training__"] = np.array(bad)
        damaged = tmp_path / "damaged.npz"
        np.savez(damaged, **arrays)
        with pytest.raises(ModelFileError, match="the __training__ entry is damaged"):
            tinycnn.load_model(damaged)


def test_a_weight_of_the_right_size_but_another_shape_is_refused(saved, tmp_path):
    _, path = saved
    kernel = read_all(path)["weights/dense/kernel"]  # (144, 3)
    transposed = tmp_path / "transposed.npz"
    transposed.write_bytes(path.read_bytes())
    rewrite(transposed, **{"weights/dense/kernel": np.ascontiguousarray(kernel.T)})
    with pytest.raises(ModelFileError, match=r"\(3, 144\).*\(144, 3\)|\(144, 3\).*\(3, 144\)"):
        tinycnn.load_model(transposed)
    with pytest.raises(ModelFileError, match=r"\(3, 144\)"):
        tiny_model().load_weights(transposed)
