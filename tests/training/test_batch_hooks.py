"""Per-step hooks and the per-step history (issue 12, item 6): ``on_train_batch_begin``
and ``on_train_batch_end(batch, logs)`` are called at every step with the running mean
loss and accuracy of the epoch so far (as Keras 3), and ``history.batch_history`` keeps
each step's own loss and accuracy, read back once per epoch on a device."""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn import backend
from tinycnn.training import Callback
from tinycnn.training import loop as loop_module

L = tinycnn.layers


def compiled(seed=0):
    model = tinycnn.Sequential(
        [L.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)), L.Flatten(), L.Dense(3)],
        seed=seed,
    )
    model.compile(optimizer=tinycnn.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


def make_data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, n)


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("begin", batch, dict(logs)))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("end", batch, dict(logs)))


@pytest.fixture
def step_results(monkeypatch):
    """(loss, accuracy, batch size) of every train_step, as floats."""
    results, original = [], loop_module.train_step

    def spy(model, x, y, **kwargs):
        loss, correct = original(model, x, y, **kwargs)
        results.append((float(loss), float(correct) / len(y), len(y)))
        return loss, correct

    monkeypatch.setattr(loop_module, "train_step", spy)
    return results


def running_means(steps):
    seen = sum(n for _, _, n in steps)
    return {
        "loss": sum(loss * n for loss, _, n in steps) / seen,
        "accuracy": sum(acc * n for _, acc, n in steps) / seen,
    }


def test_batch_hooks_are_called_around_every_step_with_running_means(step_results):
    x, y = make_data(20)  # batches of 8, 8 and 4
    recorder = Recorder()
    compiled().fit(x, y, epochs=2, batch_size=8, callbacks=[recorder], verbose=0, seed=0)
    kinds = [(kind, batch) for kind, batch, _ in recorder.calls]
    assert kinds == [(k, b) for b in (0, 1, 2) for k in ("begin", "end")] * 2
    for epoch in range(2):
        steps = step_results[3 * epoch : 3 * epoch + 3]
        calls = recorder.calls[6 * epoch : 6 * epoch + 6]
        assert calls[0][2] == {}  # nothing seen yet in this epoch
        for b in range(3):
            end_logs = calls[2 * b + 1][2]
            assert end_logs.keys() == {"loss", "accuracy"}
            for key, value in running_means(steps[: b + 1]).items():
                assert end_logs[key] == pytest.approx(value, rel=1e-12)
            if b < 2:  # the next step begins with the running means so far
                assert calls[2 * b + 2][2] == end_logs


def test_history_keeps_every_step_loss_and_accuracy(step_results):
    x, y = make_data(20)
    history = compiled().fit(x, y, epochs=3, batch_size=8, verbose=0, seed=0)
    assert history.batch_history.keys() == {"loss", "accuracy"}
    assert history.batch_history["loss"] == pytest.approx([s[0] for s in step_results], rel=1e-6)
    assert history.batch_history["accuracy"] == [s[1] for s in step_results]
    assert all(type(v) is float for v in history.batch_history["loss"])
    for epoch in range(3):  # the epoch's loss is the steps' mean, weighted by batch size
        means = running_means(step_results[3 * epoch : 3 * epoch + 3])
        assert history.history["loss"][epoch] == pytest.approx(means["loss"], rel=1e-6)


def test_a_callback_with_only_a_begin_hook_is_called():
    class Begin(Callback):
        batches = []

        def on_train_batch_begin(self, batch, logs=None):
            self.batches.append(batch)

    x, y = make_data(20)
    compiled().fit(x, y, epochs=1, batch_size=8, callbacks=[Begin()], verbose=0, seed=0)
    assert Begin.batches == [0, 1, 2]


# ---- on a device: the step values stay there until the epoch's end ---------------------------------
def test_on_a_device_the_steps_are_read_back_once_per_epoch(tagged, monkeypatch):
    x, y = make_data(20)
    history = compiled().fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)

    copies, to_numpy = [], backend.to_numpy

    def spy(array):
        copies.append(np.shape(array))
        return to_numpy(array)

    monkeypatch.setattr(backend, "to_numpy", spy)
    model = compiled().to("tagged")
    x, y = backend.to_backend(x, "tagged"), backend.to_backend(y, "tagged")
    copies.clear()
    device_history = model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    assert device_history.batch_history == history.batch_history
    # per epoch, one copy of the 3 losses and one of the 3 counts of correct answers
    assert copies.count((3,)) == 4
    assert [s for s in copies if s == ()] == []  # never one step's value alone
