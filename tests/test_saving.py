"""Tests for tinycnn.saving: the round trip, loading without pickle, corrupt files,
atomic writes under a crash, shape checks, and resuming training from a file."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

import tinycnn
from tinycnn import saving
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


def test_a_file_with_pickled_objects_is_refused_without_running_them(saved):
    model, path = saved
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["evil"] = np.array([Trap()], dtype=object)
    np.savez(path, **arrays)  # allow_pickle defaults to True when saving
    with np.load(path, allow_pickle=True) as data:  # the trap is live ...
        data["evil"]
    assert TRIPPED == ["unpickled"]
    TRIPPED.clear()
    with pytest.raises(ModelFileError, match="pickled objects"):
        tinycnn.load_model(path)
    with pytest.raises(ModelFileError, match="pickled objects"):
        tiny_model().load_weights(path)
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
