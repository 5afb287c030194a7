"""Tests for tinycnn.training.loop: compile, fit, evaluate, predict, Ctrl-C.

Everything runs on a tiny network (Conv2D(4, 3x3) -> Flatten -> Dense) and a few
dozen synthetic 8x8 images whose class is where a bright square sits, so the
whole file takes a few seconds.
"""

from __future__ import annotations

import os
import signal
import warnings

import numpy as np
import pytest

import tinycnn
from tinycnn import backend
from tinycnn.callbacks import TerminateOnNaN
from tinycnn.losses import SoftmaxCrossEntropy
from tinycnn.optimizers import SGD, Adam
from tinycnn.training import Callback, EarlyStopping, History
from tinycnn.training import loop as loop_module
from tinycnn.training import rollback as rollback_module

L = tinycnn.layers
SQUARES = [(0, 0), (0, 4), (4, 2)]  # top-left corner of the bright 4x4 square of each class


def tiny_model(seed=0, classes=3):
    return tinycnn.Sequential(
        [
            L.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
            L.Flatten(),
            L.Dense(classes),
        ],
        seed=seed,
    )


def compiled(seed=0, optimizer=None, classes=3):
    model = tiny_model(seed, classes)
    model.compile(optimizer=optimizer or Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


def make_data(n=48, seed=0):
    """Noise in [0, 0.3) plus a bright square whose position gives the class (0, 1, 2)."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 3)
    x = rng.random((n, 8, 8, 1), dtype=np.float32) * np.float32(0.3)
    for k, (r, c) in enumerate(SQUARES):
        x[y == k, r : r + 4, c : c + 4, 0] += np.float32(0.7)
    return x, y.astype(np.int64)


def weights_equal(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


def without_timing(history: dict) -> dict:
    return {k: v for k, v in history.items() if k != "epoch_seconds"}


@pytest.fixture
def batch_spy(monkeypatch):
    """Records the labels of every training batch, in order (wraps loop.train_step)."""
    batches = []
    original = loop_module.train_step

    def spy(model, x, y, **kwargs):
        batches.append(backend.to_numpy(y).copy())
        return original(model, x, y, **kwargs)

    monkeypatch.setattr(loop_module, "train_step", spy)
    return batches


# ---- compile ------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "cls"), [("adam", Adam), ("sgd", SGD), ("Adam", Adam)])
def test_compile_with_names(name, cls):
    model = tiny_model()
    model.compile(optimizer=name, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert type(model.optimizer) is cls
    assert isinstance(model.loss, SoftmaxCrossEntropy)


def test_compile_with_objects_keeps_them():
    model = tiny_model()
    opt, loss = SGD(0.1, momentum=0.9), SoftmaxCrossEntropy()
    model.compile(optimizer=opt, loss=loss)
    assert model.optimizer is opt and model.loss is loss
    x, y = make_data(12)
    model.fit(x, y, batch_size=4, verbose=0, seed=0)
    assert opt.iterations == 3


def test_compile_defaults_are_adam_and_crossentropy():
    model = tiny_model()
    model.compile()
    assert type(model.optimizer) is Adam and model.optimizer.learning_rate == 1e-3
    assert isinstance(model.loss, SoftmaxCrossEntropy)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"optimizer": "rmsprop"}, ValueError, "Unknown optimizer"),
        ({"loss": "mse"}, ValueError, "Unknown loss"),
        ({"metrics": ["mae"]}, ValueError, "accuracy"),
        ({"optimizer": 3}, TypeError, "optimizer"),
    ],
)
def test_compile_rejects_unknown_things(kwargs, error, match):
    with pytest.raises(error, match=match):
        tiny_model().compile(**kwargs)


# ---- fit: history, validation, batches ---------------------------------------------------------
def test_fit_returns_history_with_one_value_per_epoch():
    x, y = make_data(30)
    xv, yv = make_data(9, seed=1)
    history = compiled().fit(x, y, epochs=3, batch_size=8, validation_data=(xv, yv), verbose=0)
    assert isinstance(history, History)
    assert history.epoch == [0, 1, 2]
    # metrics only, so that plotting every key plots metrics; the epoch times beside them
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for values in (*history.history.values(), history.epoch_seconds):
        assert len(values) == 3
        assert all(isinstance(v, float) and np.isfinite(v) for v in values)
    assert all(v > 0 for v in history.epoch_seconds)
    for key in ("accuracy", "val_accuracy"):
        assert all(0.0 <= v <= 1.0 for v in history.history[key])
    assert history.params == {"epochs": 3, "steps": 4, "batch_size": 8, "samples": 30}
    assert history.interrupted is False


def test_fit_without_validation_logs_no_val_keys():
    x, y = make_data(12)
    history = compiled().fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}


def test_validation_data_metrics_equal_evaluate_after_the_last_epoch():
    x, y = make_data(24)
    xv, yv = make_data(10, seed=3)
    model = compiled()
    history = model.fit(x, y, epochs=2, batch_size=8, validation_data=(xv, yv), verbose=0)
    loss, acc = model.evaluate(xv, yv)
    assert history.history["val_loss"][-1] == pytest.approx(loss, rel=1e-5)
    assert history.history["val_accuracy"][-1] == acc


def test_validation_split_holds_out_the_last_fraction(batch_spy):
    x, y = make_data(50)
    model = compiled()
    history = model.fit(
        x, y, epochs=1, batch_size=8, validation_split=0.2, shuffle=False, verbose=0
    )
    # trained on exactly the first 40 samples, in order ...
    np.testing.assert_array_equal(np.concatenate(batch_spy), y[:40])
    assert history.params["samples"] == 40
    # ... and validated on the last 10
    loss_last, acc_last = model.evaluate(x[-10:], y[-10:])
    loss_first, _ = model.evaluate(x[:10], y[:10])
    assert history.history["val_loss"][0] == pytest.approx(loss_last, rel=1e-5)
    assert history.history["val_accuracy"][0] == acc_last
    assert history.history["val_loss"][0] != pytest.approx(loss_first, rel=1e-5)


def test_validation_split_is_taken_before_shuffling(batch_spy):
    x, y = make_data(50)
    compiled().fit(x, y, epochs=2, batch_size=8, validation_split=0.2, seed=3, verbose=0)
    seen = np.concatenate(batch_spy)
    assert len(seen) == 80  # 40 training samples per epoch
    np.testing.assert_array_equal(np.sort(seen[:40]), np.sort(y[:40]))
    np.testing.assert_array_equal(np.sort(seen[40:]), np.sort(y[:40]))


def test_validation_data_takes_precedence_over_validation_split(batch_spy):
    x, y = make_data(20)
    xv, yv = make_data(6, seed=1)
    history = compiled().fit(
        x, y, batch_size=10, validation_data=(xv, yv), validation_split=0.5, verbose=0
    )
    assert history.params["samples"] == 20
    assert sum(len(b) for b in batch_spy) == 20


def test_batches_include_a_last_partial_batch(batch_spy):
    x, y = make_data(50)
    model = compiled()
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)
    assert [len(b) for b in batch_spy] == [16, 16, 16, 2] * 2
    assert history.params["steps"] == 4
    assert model.optimizer.iterations == 8


def test_batch_size_larger_than_the_data_is_one_step(batch_spy):
    x, y = make_data(10)
    model = compiled()
    model.fit(x, y, epochs=1, batch_size=1000, verbose=0)
    assert [len(b) for b in batch_spy] == [10]
    assert model.optimizer.iterations == 1


def test_the_loss_of_an_epoch_weights_each_batch_by_its_size(monkeypatch):
    x, y = make_data(10)
    model = compiled()
    losses = []
    original = loop_module.train_step

    def spy(model, xb, yb, **kwargs):
        loss, correct = original(model, xb, yb, **kwargs)
        losses.append((float(loss), len(yb)))
        return loss, correct

    monkeypatch.setattr(loop_module, "train_step", spy)
    history = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    expected = sum(loss * n for loss, n in losses) / 10
    assert [n for _, n in losses] == [4, 4, 2]
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-6)


def test_shuffle_false_keeps_the_order(batch_spy):
    x, y = make_data(20)
    compiled().fit(x, y, epochs=2, batch_size=6, shuffle=False, verbose=0)
    np.testing.assert_array_equal(np.concatenate(batch_spy), np.concatenate([y, y]))


def test_shuffle_gives_a_new_permutation_each_epoch(batch_spy):
    x, y = make_data(30)
    compiled().fit(x, y, epochs=2, batch_size=30, shuffle=True, seed=0, verbose=0)
    first, second = batch_spy
    np.testing.assert_array_equal(np.sort(first), np.sort(y))  # each sample once
    np.testing.assert_array_equal(np.sort(second), np.sort(y))
    assert not np.array_equal(first, y)
    assert not np.array_equal(first, second)


def test_shuffle_order_is_fixed_by_the_seed():
    a = loop_module.epoch_order(100, 7, 3, True)
    np.testing.assert_array_equal(a, loop_module.epoch_order(100, 7, 3, True))
    assert not np.array_equal(a, loop_module.epoch_order(100, 8, 3, True))
    assert not np.array_equal(a, loop_module.epoch_order(100, 7, 4, True))
    np.testing.assert_array_equal(np.sort(a), np.arange(100))


def test_initial_epoch_numbers_the_epochs():
    x, y = make_data(12)
    history = compiled().fit(x, y, epochs=3, initial_epoch=1, batch_size=6, verbose=0)
    assert history.epoch == [1, 2]


# ---- verbose ----------------------------------------------------------------------------------
def test_verbose_0_prints_nothing(capsys):
    x, y = make_data(12)
    model = compiled()
    model.fit(x, y, epochs=2, batch_size=4, validation_split=0.25, verbose=0)
    model.evaluate(x, y)
    model.predict(x)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_2_prints_one_line_per_epoch(capsys):
    x, y = make_data(12)
    compiled().fit(x, y, epochs=2, batch_size=4, validation_split=0.25, verbose=2)
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 2
    for k, line in enumerate(lines, start=1):
        assert line.startswith(f"Epoch {k}/2 - ")
        for key in ("loss: ", "accuracy: ", "val_loss: ", "val_accuracy: "):
            assert key in line
        assert "epoch_seconds" not in line


def test_verbose_1_draws_a_progress_bar_per_epoch(capsys):
    x, y = make_data(12)
    compiled().fit(x, y, epochs=2, batch_size=4, verbose=1)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Epoch 1/2" in text and "Epoch 2/2" in text
    assert "3/3" in text  # steps done / steps
    assert "loss: " in text and "accuracy: " in text


def test_evaluate_verbose_prints_the_result(capsys):
    x, y = make_data(12)
    loss, acc = compiled().evaluate(x, y, verbose=1)
    assert capsys.readouterr().out.strip() == f"loss: {loss:.4f} - accuracy: {acc:.4f}"


# ---- evaluate and predict ---------------------------------------------------------------------------
def reference_loss_accuracy(logits, y):
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(y)), y].mean(), (logits.argmax(axis=1) == y).mean()


def test_evaluate_returns_mean_loss_and_accuracy():
    x, y = make_data(23)
    model = compiled()
    result = model.evaluate(x, y, batch_size=5)
    assert isinstance(result, list) and len(result) == 2
    loss, acc = reference_loss_accuracy(model.predict(x, batch_size=23), y)
    assert result[0] == pytest.approx(loss, rel=1e-5)
    assert result[1] == pytest.approx(acc, abs=1e-12)


def test_evaluate_return_dict():
    x, y = make_data(12)
    model = compiled()
    as_list = model.evaluate(x, y)
    as_dict = model.evaluate(x, y, return_dict=True)
    assert as_dict == {"loss": as_list[0], "accuracy": as_list[1]}


def test_evaluate_accepts_uint8_labels():
    x, y = make_data(12)
    model = compiled()
    assert model.evaluate(x, y.astype(np.uint8)) == model.evaluate(x, y)


@pytest.mark.parametrize("batch_size", [1, 7, 20, 64])
def test_predict_batched_equals_one_full_batch(batch_size):
    x, _ = make_data(20)
    model = tiny_model(classes=10)  # predict needs no compile
    out = model.predict(x, batch_size=batch_size)
    assert isinstance(out, np.ndarray) and out.shape == (20, 10) and out.dtype == np.float32
    full = backend.to_numpy(model.forward(x, training=False))
    np.testing.assert_allclose(out, full, rtol=1e-5, atol=1e-6)


def test_predict_on_no_samples_keeps_the_class_axis():
    x, _ = make_data(3)
    assert tiny_model(classes=10).predict(x[:0]).shape == (0, 10)


def _fill_caches(model, x):
    model.forward(x, training=True)
    assert any(layer.cache is not None for layer in model.layers)


@pytest.mark.parametrize("method", ["predict", "evaluate", "fit"])
def test_predict_evaluate_and_fit_clear_the_caches(method):
    x, y = make_data(12)
    model = compiled()
    _fill_caches(model, x)
    if method == "predict":
        model.predict(x, batch_size=5)
    elif method == "evaluate":
        model.evaluate(x, y, batch_size=5)
    else:
        model.fit(x, y, batch_size=5, validation_split=0.25, verbose=0)
    assert all(layer.cache is None for layer in model.layers)


def test_train_on_batch_returns_floats_and_takes_one_step():
    x, y = make_data(8)
    model = compiled()
    loss, acc = model.train_on_batch(x, y)
    assert isinstance(loss, float) and isinstance(acc, float)
    assert 0.0 <= acc <= 1.0 and acc * 8 == round(acc * 8)
    assert model.optimizer.iterations == 1


# ---- learning and determinism --------------------------------------------------------------------------
def test_fit_learns_a_learnable_problem():
    x, y = make_data(60)
    model = compiled(optimizer=Adam(0.01))
    initial_loss, _ = model.evaluate(x, y)
    history = model.fit(x, y, epochs=12, batch_size=10, seed=0, verbose=0)
    final_loss, final_acc = model.evaluate(x, y)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses
    assert final_loss < 0.5 * initial_loss, (initial_loss, final_loss)
    assert final_acc >= 0.9, final_acc
    xt, yt = make_data(30, seed=9)  # fresh samples of the same problem
    assert model.evaluate(xt, yt)[1] >= 0.9


def _train(model_seed, fit_seed, x, y):
    model = compiled(seed=model_seed)
    history = model.fit(
        x, y, epochs=3, batch_size=8, validation_split=0.25, seed=fit_seed, verbose=0
    )
    return model.get_weights(), without_timing(history.history)


def test_same_seed_gives_bitwise_identical_runs():
    x, y = make_data(40)
    w1, h1 = _train(0, 5, x, y)
    w2, h2 = _train(0, 5, x, y)
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_array_equal(a, b)
    assert h1 == h2


def test_different_seeds_give_different_runs():
    x, y = make_data(40)
    w1, h1 = _train(0, 5, x, y)
    w2, h2 = _train(0, 6, x, y)  # same initial weights, other batch order
    w3, _ = _train(1, 5, x, y)  # other initial weights
    assert not weights_equal(w1, w2)
    assert h1["loss"] != h2["loss"]
    assert not weights_equal(w1, w3)


# ---- errors -----------------------------------------------------------------------------------------
def test_fit_and_evaluate_before_compile_raise():
    x, y = make_data(6)
    model = tiny_model()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y, verbose=0)
    with pytest.raises(RuntimeError, match="compile"):
        model.evaluate(x, y)
    with pytest.raises(RuntimeError, match="compile"):
        model.train_on_batch(x, y)


def _bad_inputs():
    x, y = make_data(12)
    nan_x = x.copy()
    nan_x[3, 2, 2, 0] = np.nan
    inf_x = x.copy()
    inf_x[0, 0, 0, 0] = np.inf
    return {
        "uint8 images": ((x * 255).astype(np.uint8), y, {}, TypeError, "prepare_images"),
        "int images": (x.astype(np.int64), y, {}, TypeError, "floats"),
        "list images": (list(x), y, {}, TypeError, r"array of images"),
        "float labels": (x, y.astype(np.float32), {}, TypeError, r"fit: expected integer class"),
        "one-hot labels": (x, np.eye(3, dtype=np.int64)[y], {}, ValueError, "samples"),
        "label too large": (
            x,
            np.where(y == 0, 3, y),
            {},
            ValueError,
            r"fit: y must lie in \[0, 2\]",
        ),
        "negative label": (x, np.where(y == 0, -1, y), {}, ValueError, r"\[0, 2\]"),
        "too few labels": (x, y[:-1], {}, ValueError, "12 samples"),
        "NaN image": (nan_x, y, {}, ValueError, "NaN"),
        "inf image": (inf_x, y, {}, ValueError, "infinite"),
        "wrong sample shape": (
            np.zeros((12, 9, 9, 1), np.float32),
            y,
            {},
            ValueError,
            r"expects samples of shape \(8, 8, 1\).*got a batch of shape \(\d+, 9, 9, 1\)",
        ),
        "no channel axis": (x[..., 0], y, {}, ValueError, r"\(8, 8, 1\)"),
        "batch_size 0": (x, y, {"batch_size": 0}, ValueError, "batch_size"),
        "batch_size -4": (x, y, {"batch_size": -4}, ValueError, "batch_size"),
        "validation_split 1": (x, y, {"validation_split": 1.0}, ValueError, "validation_split"),
        "validation_split -0.1": (
            x,
            y,
            {"validation_split": -0.1},
            ValueError,
            "validation_split",
        ),
        "bad validation labels": (
            x,
            y,
            {"validation_data": (x[:3], np.array([0, 1, 7]))},
            ValueError,
            "validation_data",
        ),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_fit_rejects_bad_input_before_any_step(case):
    x, y, kwargs, error, match = _bad_inputs()[case]
    model = compiled()
    before = model.get_weights()
    with pytest.raises(error, match=match):
        model.fit(x, y, verbose=0, **kwargs)
    assert model.optimizer.iterations == 0
    assert weights_equal(model.get_weights(), before)


@pytest.mark.parametrize("method", ["evaluate", "predict"])
def test_evaluate_and_predict_reject_uint8_and_nan(method):
    x, y = make_data(6)
    model = compiled()
    args = (lambda xs: (xs, y)) if method == "evaluate" else (lambda xs: (xs,))
    with pytest.raises(TypeError, match="prepare_images"):
        getattr(model, method)(*args((x * 255).astype(np.uint8)))
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        getattr(model, method)(*args(x))


@pytest.mark.parametrize("batch_size", [2.5, "4", None])
def test_fit_rejects_non_integer_batch_size_clearly(batch_size):
    x, y = make_data(12)
    with pytest.raises((TypeError, ValueError), match="batch_size"):
        compiled().fit(x, y, batch_size=batch_size, verbose=0)


def test_validation_split_that_leaves_no_training_data_raises():
    x, y = make_data(10)
    with pytest.raises(ValueError, match="validation_split"):
        compiled().fit(x, y, validation_split=0.95, verbose=0)


def test_malformed_validation_data_raises_clearly():
    x, y = make_data(10)
    with pytest.raises((TypeError, ValueError), match="validation_data"):
        compiled().fit(x, y, validation_data=(x[:2],), verbose=0)


# ---- Ctrl-C -----------------------------------------------------------------------------------------
class InterruptAt(Callback):
    """Sends this process SIGINT (as Ctrl-C does) ``times`` times when ``epoch`` begins."""

    def __init__(self, epoch: int, times: int = 1):
        self.epoch, self.times = epoch, times

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)
                signal.getsignal(signal.SIGINT)  # a call: lets Python run the handler now


def test_ctrl_c_finishes_the_step_and_returns():
    x, y = make_data(24)
    model = compiled()
    before = signal.getsignal(signal.SIGINT)
    history = model.fit(
        x,
        y,
        epochs=4,
        batch_size=8,
        validation_split=0.25,
        callbacks=[InterruptAt(1)],
        verbose=0,
        seed=0,
    )
    assert history.interrupted is True
    assert history.epoch == [0]  # epoch 1 was cut short: it is not logged
    assert len(history.history["loss"]) == 1
    assert history.params["steps"] == 3  # 18 training samples, batches of 8
    assert model.optimizer.iterations == 3 + 1  # all of epoch 0, then one whole step
    assert signal.getsignal(signal.SIGINT) is before
    out = model.predict(x)
    assert out.shape == (24, 3) and np.isfinite(out).all()
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert all(layer.cache is None for layer in model.layers)


def test_second_ctrl_c_interrupts_at_once_and_restores_the_handler():
    x, y = make_data(24)
    model = compiled()
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=3, batch_size=8, callbacks=[InterruptAt(1, times=2)], verbose=0)
    assert signal.getsignal(signal.SIGINT) is before


def test_the_sigint_handler_is_restored_after_an_error():
    class Boom(Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise ArithmeticError("boom")

    x, y = make_data(12)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(ArithmeticError):
        compiled().fit(x, y, callbacks=[Boom()], verbose=0)
    assert signal.getsignal(signal.SIGINT) is before


def test_fit_leaves_an_ignored_sigint_ignored():
    """A job started with ``&`` from a script ignores SIGINT (Ctrl-C is meant for the
    foreground): fit must not install its handler and so make the job stoppable."""
    seen = []

    class Watch(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(signal.getsignal(signal.SIGINT))

    x, y = make_data(12)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        history = compiled().fit(x, y, epochs=2, batch_size=6, callbacks=[Watch()], verbose=0)
        assert seen == [signal.SIG_IGN, signal.SIG_IGN]
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert history.epoch == [0, 1] and history.stopped_reason is None


# ---- divergence: a NaN or infinite loss ---------------------------------------------------------------
def diverging(seed=0):
    """A network that SGD(300, momentum 0.9) drives to a NaN loss in its third epoch on
    make_data(48) (the old loop went on, with NumPy overflow warnings, to NaN weights)."""
    model = tinycnn.Sequential(
        [
            L.Conv2D(16, 3, activation="relu", input_shape=(8, 8, 1)),
            L.Flatten(),
            L.Dense(256, activation="relu"),
            L.Dense(256, activation="relu"),
            L.Dense(3),
        ],
        seed=seed,
    )
    model.compile(optimizer=SGD(300.0, momentum=0.9), loss="sparse_categorical_crossentropy")
    return model


@pytest.fixture
def step_log(monkeypatch):
    """Records, for every train_step call, the weights before it and the loss it computed."""
    log = []
    original = loop_module.train_step

    def spy(model, x, y, **kwargs):
        before = model.get_weights()
        loss, correct = original(model, x, y, **kwargs)
        log.append((before, float(loss)))
        return loss, correct

    monkeypatch.setattr(loop_module, "train_step", spy)
    return log


def fit_diverging(**kwargs):
    x, y = make_data(48)
    model = diverging()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, epochs=4, batch_size=8, verbose=0, seed=0, **kwargs)
    return model, history, caught


def test_divergence_stops_at_the_first_non_finite_loss_with_the_weights_before_it(step_log):
    model, history, caught = fit_diverging()
    first_bad = next(k for k, (_, loss) in enumerate(step_log) if not np.isfinite(loss))
    assert first_bad == len(step_log) - 1  # no step after it
    assert history.stopped_reason == "non-finite loss"
    assert (history.stopped_epoch, history.stopped_step) == divmod(first_bad, 6)  # 6 steps/epoch
    assert history.stopped_epoch >= 1  # it trained a while first: the check is not trivial
    assert history.epoch == list(range(history.stopped_epoch))  # that epoch is not reported
    assert weights_equal(model.get_weights(), step_log[first_bad][0])
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert model.optimizer.iterations == first_bad  # the bad step was not applied
    # one clear warning, and no NumPy overflow warnings
    assert [w.category for w in caught] == [RuntimeWarning], [str(w.message) for w in caught]
    message = str(caught[0].message)
    epoch, step = history.stopped_epoch + 1, history.stopped_step + 1
    assert f"loss became nan at epoch {epoch}, step {step}/6" in message
    assert "Lower the learning rate (it is 300)" in message
    assert "\n" not in message


def test_divergence_is_reported_with_a_progress_bar_too(capsys):
    x, y = make_data(48)
    with pytest.warns(RuntimeWarning, match="training diverged and stopped"):
        history = diverging().fit(x, y, epochs=4, batch_size=8, verbose=1, seed=0)
    assert history.stopped_reason == "non-finite loss"
    assert "loss: nan" in capsys.readouterr().err  # the bar of the epoch that diverged


@pytest.mark.parametrize("check_seconds", [0.0, 1e9], ids=["check-every-step", "check-at-end"])
@pytest.mark.parametrize("lr", [300.0, 0.05], ids=["diverging", "converging"])
def test_the_gpu_path_rolls_back_to_the_same_step_and_state(monkeypatch, check_seconds, lr):
    """On a GPU the loop reads the loss only now and then, and on a non-finite one rolls
    back and replays (rollback.py). Forced here on NumPy: the result must be bit for bit
    that of checking every step, whether the checks are frequent or only at epoch ends."""

    def run():
        x, y = make_data(48)
        model = diverging()
        model.optimizer.learning_rate = lr
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = model.fit(
                x, y, epochs=4, batch_size=8, validation_data=make_data(9, 3), verbose=0, seed=0
            )
        return model, history, [str(w.message) for w in caught]

    model, history, messages = run()
    monkeypatch.setattr(loop_module, "_reads_are_free", lambda x: False)
    monkeypatch.setattr(rollback_module, "CHECK_SECONDS", check_seconds)
    gpu_model, gpu_history, gpu_messages = run()
    assert history.stopped_reason == ("non-finite loss" if lr == 300.0 else None)
    assert (gpu_history.stopped_reason, gpu_history.stopped_epoch, gpu_history.stopped_step) == (
        history.stopped_reason,
        history.stopped_epoch,
        history.stopped_step,
    )
    assert without_timing(gpu_history.history) == without_timing(history.history)
    # the steps rolled back and replayed are recorded once, those not applied never
    assert gpu_history.batch_history == history.batch_history
    stopped = history.stopped_epoch is not None
    steps_applied = 6 * history.stopped_epoch + history.stopped_step if stopped else 6 * 4
    assert len(history.batch_history["loss"]) == steps_applied
    assert np.isfinite(history.batch_history["loss"]).all()
    assert weights_equal(gpu_model.get_weights(), model.get_weights())
    assert gpu_model.optimizer.iterations == model.optimizer.iterations
    state, gpu_state = model.optimizer.get_state(), gpu_model.optimizer.get_state()
    assert state.keys() == gpu_state.keys()
    assert all(np.array_equal(state[k], gpu_state[k]) for k in state)
    assert gpu_messages == messages


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_train_on_batch_does_not_apply_a_non_finite_loss():
    x, y = make_data(8)
    model = compiled()
    before = model.get_weights()
    x[0] = np.float32(3e38)  # finite, but the first convolution overflows
    loss, _ = model.train_on_batch(x, y)
    assert not np.isfinite(loss)
    assert weights_equal(model.get_weights(), before)
    assert model.optimizer.iterations == 0


def test_batch_callbacks_get_the_running_loss_after_every_step():
    class Steps(Callback):
        def __init__(self):
            self.calls = []

        def on_train_batch_end(self, batch, logs=None):
            self.calls.append((batch, dict(logs)))

    x, y = make_data(20)
    steps = Steps()
    history = compiled().fit(x, y, epochs=2, batch_size=8, callbacks=[steps], verbose=0, seed=0)
    assert [batch for batch, _ in steps.calls] == [0, 1, 2, 0, 1, 2]
    for k, epoch_end in ((2, 0), (5, 1)):  # the last step's running values are the epoch's
        assert steps.calls[k][1] == {
            "loss": history.history["loss"][epoch_end],
            "accuracy": history.history["accuracy"][epoch_end],
        }


def test_a_batch_callback_can_stop_training_mid_epoch():
    class StopAt(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    x, y = make_data(24)
    model = compiled()
    history = model.fit(x, y, epochs=3, batch_size=8, callbacks=[StopAt()], verbose=0)
    assert model.optimizer.iterations == 2
    assert history.epoch == [0] and history.stopped_reason == "callback"


def test_terminate_on_nan_in_fit_sees_the_bad_step(capsys):
    stopper = TerminateOnNaN()
    model, history, _ = fit_diverging(callbacks=[stopper])
    assert history.stopped_reason == "non-finite loss"  # fit's own check, which came first
    assert stopper.stopped_batch == history.stopped_step
    assert f"Batch {history.stopped_step}: Invalid loss, terminating training" in (
        capsys.readouterr().out
    )
    assert model.stop_training is True


# ---- bad arguments ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epochs": 2.5}, TypeError, r"fit: epochs must be an int, got 2.5"),
        ({"epochs": "3"}, TypeError, r"fit: epochs must be an int"),
        ({"epochs": -1}, ValueError, r"fit: epochs must be at least 0, got -1"),
        ({"initial_epoch": -1}, ValueError, r"initial_epoch must be at least 0"),
        ({"epochs": 2, "initial_epoch": 3}, ValueError, r"initial_epoch=3 is past epochs=2"),
        ({"callbacks": EarlyStopping()}, TypeError, r"callbacks=\[EarlyStopping\(...\)\]"),
        ({"callbacks": [EarlyStopping(), print]}, TypeError, r"callbacks\[1\] is a "),
        ({"callbacks": "early"}, TypeError, r"callbacks must be a list, got str"),
        ({"seed": -3}, ValueError, r"seed must be an int >= 0 or None, got -3"),
        ({"seed": 1.5}, TypeError, r"seed must be an int"),
    ],
)
def test_fit_rejects_bad_arguments_clearly(kwargs, error, match):
    x, y = make_data(12)
    model = compiled()
    before = model.get_weights()
    with pytest.raises(error, match=match):
        model.fit(x, y, verbose=0, **kwargs)
    assert model.optimizer.iterations == 0 and weights_equal(model.get_weights(), before)


def test_no_samples_is_an_error_not_a_zero_loss():
    """A loss of 0.0 over no samples used to be returned: callbacks took it as the best."""
    x, y = make_data(12)
    model = compiled()
    with pytest.raises(ValueError, match=r"fit: validation_data has no samples"):
        model.fit(x, y, validation_data=(x[:0], y[:0]), verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: x has no samples"):
        model.evaluate(x[:0], y[:0])
    with pytest.raises(ValueError, match=r"fit: x has no samples"):
        model.fit(x[:0], y[:0], verbose=0)
    assert model.optimizer.iterations == 0


def test_epochs_0_trains_nothing():
    x, y = make_data(12)
    model = compiled()
    history = model.fit(x, y, epochs=0, verbose=0)
    assert history.epoch == [] and model.optimizer.iterations == 0


# ---- Dropout: the same masks when resumed -------------------------------------------------------------
def dropout_model(seed=0):
    model = tinycnn.Sequential(
        [
            L.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
            L.Dropout(0.3),
            L.Flatten(),
            L.Dense(8, activation="relu"),
            L.Dropout(0.25, seed=5),
            L.Dense(3),
        ],
        seed=seed,
    )
    model.compile(optimizer=Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


def assert_same_training_state(a, b):
    assert weights_equal(a.get_weights(), b.get_weights())
    state_a, state_b = a.optimizer.get_state(), b.optimizer.get_state()
    assert state_a.keys() == state_b.keys()
    assert all(np.array_equal(state_a[k], state_b[k]) for k in state_a)


def test_resuming_from_a_file_with_dropout_is_bit_for_bit(tmp_path):
    """Masks come from (fit seed, epoch, step, layer): a run resumed from a checkpoint
    draws the uninterrupted run's masks (it used to differ by up to 0.014)."""
    x, y = make_data(40)
    unbroken = dropout_model()
    h_unbroken = unbroken.fit(x, y, epochs=2, batch_size=8, seed=11, verbose=0)

    first = dropout_model()
    h_first = first.fit(x, y, epochs=1, batch_size=8, seed=11, verbose=0)
    first.save(tmp_path / "ck.npz")
    resumed = tinycnn.load_model(tmp_path / "ck.npz")
    h_resumed = resumed.fit(x, y, epochs=2, initial_epoch=1, batch_size=8, seed=11, verbose=0)
    assert_same_training_state(resumed, unbroken)
    assert h_first.history["loss"] + h_resumed.history["loss"] == h_unbroken.history["loss"]


def test_a_checkpoint_keeps_the_fit_seed_so_a_resume_needs_none(tmp_path):
    x, y = make_data(40)
    unbroken = dropout_model()
    unbroken.fit(x, y, epochs=2, batch_size=8, verbose=0)  # a fresh seed, not written down

    first = dropout_model()
    first.fit(x, y, epochs=1, batch_size=8, seed=unbroken.fit_seed, verbose=0)
    first.save(tmp_path / "ck.npz")
    resumed = tinycnn.load_model(tmp_path / "ck.npz")
    assert resumed.fit_seed == unbroken.fit_seed
    resumed.fit(x, y, epochs=2, initial_epoch=1, batch_size=8, verbose=0)  # seed=None
    assert_same_training_state(resumed, unbroken)


def test_resuming_without_a_seed_reuses_the_seed_of_the_previous_fit():
    x, y = make_data(40)
    unbroken = dropout_model()
    unbroken.fit(x, y, epochs=2, batch_size=8, verbose=0)  # a fresh seed
    assert isinstance(unbroken.fit_seed, int)

    parts = dropout_model()
    parts.fit(x, y, epochs=1, batch_size=8, seed=unbroken.fit_seed, verbose=0)
    parts.fit(x, y, epochs=2, initial_epoch=1, batch_size=8, verbose=0)  # seed=None: resumes
    assert parts.fit_seed == unbroken.fit_seed
    assert_same_training_state(parts, unbroken)


def test_dropout_runs_with_the_same_seeds_are_equal_and_other_fit_seeds_differ():
    x, y = make_data(40)
    a, b, c = dropout_model(), dropout_model(), dropout_model()
    for model, fit_seed in ((a, 3), (b, 3), (c, 4)):
        model.fit(x, y, epochs=1, batch_size=8, shuffle=False, seed=fit_seed, verbose=0)
    assert_same_training_state(a, b)
    assert not weights_equal(a.get_weights(), c.get_weights())  # only the masks differ
