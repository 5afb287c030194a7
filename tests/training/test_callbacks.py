"""Tests for tinycnn.callbacks: EarlyStopping, ModelCheckpoint,
ReduceLROnPlateau, LearningRateScheduler with cosine_decay.

Most tests drive a callback by hand with made-up logs (exact, instant); a few run
it inside ``fit`` on a tiny network to check the wiring.
"""

from __future__ import annotations

import math
import signal

import numpy as np
import pytest

import tinycnn
from tinycnn.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
    cosine_decay,
)
from tinycnn.optimizers import SGD, Adam

L = tinycnn.layers


def compiled(seed=0, lr=0.01):
    model = tinycnn.Sequential(
        [
            L.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
            L.Flatten(),
            L.Dense(3),
        ],
        seed=seed,
    )
    model.compile(optimizer=Adam(lr), loss="sparse_categorical_crossentropy")
    model.build((8, 8, 1))
    return model


def make_data(n=24, seed=0):
    """Class k has a bright 4x4 square at a position of its own."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 3)
    x = rng.random((n, 8, 8, 1), dtype=np.float32) * np.float32(0.3)
    for k, (r, c) in enumerate([(0, 0), (0, 4), (4, 2)]):
        x[y == k, r : r + 4, c : c + 4, 0] += np.float32(0.7)
    return x, y.astype(np.int64)


def drive(callback, model, values, monitor="val_loss"):
    """Run ``callback`` through epochs whose ``monitor`` takes ``values``; returns the
    epoch after which the model was told to stop (or None)."""
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    stopped = None
    for epoch, value in enumerate(values):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"loss": 1.0, monitor: value})
        if model.stop_training:
            stopped = epoch
            break
    callback.on_train_end()
    return stopped


class Snapshots(Callback):
    """Keeps copies of every epoch's weights and its learning rate, at the end of the epoch.

    (``get_weights()`` returns copies, so the snapshots do not follow training.)
    """

    def __init__(self):
        self.weights, self.lrs = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([w.copy() for w in self.model.get_weights()])
        self.lrs.append(self.model.optimizer.learning_rate)


def assert_weights_equal(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


def weights_equal(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


# ---- EarlyStopping ------------------------------------------------------------------------------
VALUES = [1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99]  # best at epoch 1, then only worse


def test_early_stopping_patience_0_stops_at_the_first_epoch_without_progress():
    cb = EarlyStopping(monitor="val_loss", patience=0)
    assert drive(cb, compiled(), VALUES) == 2
    assert cb.stopped_epoch == 2 and cb.best_epoch == 1 and cb.best == 0.9


def test_early_stopping_never_stops_while_improving():
    assert drive(EarlyStopping(patience=0), compiled(), [5, 4, 3, 2, 1]) is None


def test_early_stopping_waits_at_least_patience_epochs():
    for patience in (1, 2, 3):
        stopped = drive(EarlyStopping(patience=patience), compiled(), VALUES)
        assert stopped is not None and stopped >= 1 + patience, patience


@pytest.mark.parametrize(("patience", "keras_stop"), [(1, 2), (2, 3), (3, 4)])
def test_early_stopping_patience_matches_keras(patience, keras_stop):
    assert drive(EarlyStopping(patience=patience), compiled(), VALUES) == keras_stop


def test_early_stopping_mode_max_for_accuracy_and_min_delta():
    # "auto" picks max for accuracies
    cb = EarlyStopping(monitor="val_accuracy", patience=0)
    assert drive(cb, compiled(), [0.5, 0.6, 0.55], monitor="val_accuracy") == 2
    # a gain smaller than min_delta is no improvement
    cb = EarlyStopping(monitor="val_loss", patience=0, min_delta=0.05)
    assert drive(cb, compiled(), [1.0, 0.97]) == 1


def test_early_stopping_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")


def test_early_stopping_in_fit_ends_training_early():
    x, y = make_data()
    model = compiled()
    # no epoch can lower the loss by 100: stop after the first non-improving epoch
    cb = EarlyStopping(monitor="loss", patience=0, min_delta=100.0)
    history = model.fit(x, y, epochs=10, batch_size=8, callbacks=[cb], verbose=0)
    assert history.epoch == [0, 1]
    assert cb.stopped_epoch == 1
    assert model.optimizer.iterations == 2 * 3


def _fit_with_misleading_validation(restore_best_weights: bool):
    """The validation labels are wrong on purpose, so val_loss rises as the model learns
    the training set: the best epoch by val_loss is early, not the last one."""
    x, y = make_data(30)
    xv, yv = make_data(12, seed=1)
    model = compiled(lr=0.02)
    snaps = Snapshots()
    cb = EarlyStopping(monitor="val_loss", patience=50, restore_best_weights=restore_best_weights)
    history = model.fit(
        x,
        y,
        epochs=6,
        batch_size=10,
        validation_data=(xv, (yv + 1) % 3),
        callbacks=[snaps, cb],
        seed=0,
        verbose=0,
    )
    return model, history, snaps, cb


def test_early_stopping_tracks_the_best_epoch_in_fit():
    _, history, _, cb = _fit_with_misleading_validation(True)
    val_loss = history.history["val_loss"]
    best = int(np.argmin(val_loss))
    assert len(val_loss) == 6
    assert best < 5, f"the test needs a best epoch before the last one: {val_loss}"
    assert cb.best_epoch == best and cb.best == val_loss[best]
    assert cb.best_weights is not None


def test_restore_best_weights_restores_the_best_epoch():
    model, history, snaps, _ = _fit_with_misleading_validation(True)
    val_loss = history.history["val_loss"]
    best = int(np.argmin(val_loss))
    assert best < 5, f"the test needs a best epoch before the last one: {val_loss}"
    assert_weights_equal(model.get_weights(), snaps.weights[best])
    assert not weights_equal(model.get_weights(), snaps.weights[-1])
    xv, yv = make_data(12, seed=1)
    assert model.evaluate(xv, (yv + 1) % 3, batch_size=256)[0] == pytest.approx(
        val_loss[best], rel=1e-6
    )


def test_get_weights_is_a_snapshot_that_training_leaves_alone():
    x, y = make_data(12)
    model = compiled()
    snapshot = model.get_weights()
    copies = [w.copy() for w in snapshot]
    model.fit(x, y, batch_size=4, verbose=0)
    assert not weights_equal(model.get_weights(), copies)  # training did change the model
    assert_weights_equal(snapshot, copies)


def test_set_weights_copies_the_arrays():
    x, y = make_data(12)
    model = compiled()
    given = [np.full_like(w, 0.01) for w in model.get_weights()]
    model.set_weights(given)
    model.fit(x, y, batch_size=4, verbose=0)
    for w in given:
        np.testing.assert_array_equal(w, np.full_like(w, 0.01))


def test_without_restore_best_weights_the_last_weights_stay():
    model, _, snaps, cb = _fit_with_misleading_validation(False)
    assert cb.best_weights is None
    assert_weights_equal(model.get_weights(), snaps.weights[-1])


# ---- ModelCheckpoint ------------------------------------------------------------------------------
def test_checkpoint_every_epoch_with_epoch_in_the_path(tmp_path):
    x, y = make_data()
    model = compiled()
    snaps = Snapshots()
    cb = ModelCheckpoint(tmp_path / "model-{epoch:02d}.npz", monitor="loss")
    model.fit(x, y, epochs=3, batch_size=8, callbacks=[snaps, cb], verbose=0, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model-01.npz",
        "model-02.npz",
        "model-03.npz",
    ]
    for epoch in range(3):
        saved = tinycnn.load_model(tmp_path / f"model-{epoch + 1:02d}.npz")
        assert_weights_equal(saved.get_weights(), snaps.weights[epoch])


def test_checkpoint_path_may_name_logged_values(tmp_path):
    model = compiled()
    cb = ModelCheckpoint(str(tmp_path / "m-{epoch}-{val_loss:.2f}.npz"))
    drive(cb, model, [0.5, 0.25])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-1-0.50.npz", "m-2-0.25.npz"]


def test_checkpoint_save_best_only_writes_only_on_improvement(tmp_path):
    model = compiled()
    cb = ModelCheckpoint(tmp_path / "ckpt-{epoch}.npz", monitor="val_loss", save_best_only=True)
    drive(cb, model, [1.0, 1.2, 0.8, 0.8, 0.5, 0.9])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-1.npz",
        "ckpt-3.npz",
        "ckpt-5.npz",
    ]


def test_checkpoint_save_best_only_keeps_the_best_weights_in_one_file(tmp_path):
    model = compiled()
    path = tmp_path / "best.npz"
    cb = ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)  # auto: max
    cb.set_model(model)
    cb.on_train_begin()
    accuracies = [0.5, 0.7, 0.6, 0.65]
    weights_at = []
    for epoch, acc in enumerate(accuracies):
        # give the model different weights each epoch, as training would
        model.set_weights([np.full_like(w, epoch + 1) for w in model.get_weights()])
        weights_at.append(model.get_weights())
        cb.on_epoch_end(epoch, {"val_accuracy": acc})
    assert [p.name for p in tmp_path.iterdir()] == ["best.npz"]
    assert_weights_equal(tinycnn.load_model(path).get_weights(), weights_at[1])


# ---- ReduceLROnPlateau -------------------------------------------------------------------------------
def test_reduce_lr_halves_after_patience_epochs_without_progress():
    model = compiled(lr=0.01)
    cb = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)
    cb.set_model(model)
    lrs = []
    for epoch, value in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.6]):
        cb.on_epoch_end(epoch, {"val_loss": value})
        lrs.append(model.optimizer.learning_rate)
    assert lrs == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025, 0.0025])


def test_reduce_lr_respects_min_lr_and_min_delta():
    model = compiled(lr=0.01)
    cb = ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=1, min_lr=0.0005)
    cb.set_model(model)
    for epoch, value in enumerate([1.0, 0.99995, 0.99990, 0.99985]):  # gains < min_delta 1e-4
        cb.on_epoch_end(epoch, {"val_loss": value})
    assert model.optimizer.learning_rate == pytest.approx(0.0005)


def test_reduce_lr_prints_when_verbose(capsys):
    model = compiled(lr=0.01)
    cb = ReduceLROnPlateau(monitor="val_loss", patience=1, verbose=1)
    cb.set_model(model)
    cb.on_epoch_end(0, {"val_loss": 1.0})
    cb.on_epoch_end(1, {"val_loss": 1.0})
    assert capsys.readouterr().out.strip() == "Epoch 2: reducing learning rate to 0.005."


def test_reduce_lr_in_fit():
    x, y = make_data()
    model = compiled(lr=0.01)
    snaps = Snapshots()
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=100.0)
    model.fit(x, y, epochs=3, batch_size=8, callbacks=[cb, snaps], verbose=0)
    assert snaps.lrs == pytest.approx([0.01, 0.005, 0.0025])


@pytest.mark.parametrize("factor", [0.0, 1.0, 2.0])
def test_reduce_lr_bad_factor(factor):
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=factor)


# ---- LearningRateScheduler and cosine_decay ------------------------------------------------------------
def test_cosine_decay_values():
    schedule = cosine_decay(0.01, epochs=4)
    assert schedule(0, None) == pytest.approx(0.01)
    assert schedule(1, None) == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert schedule(2, None) == pytest.approx(0.005)  # the middle: half way down
    # the last epoch still learns a little; the final rate would come after it
    assert schedule(3, None) == pytest.approx(0.01 * 0.5 * (1 + math.cos(3 * math.pi / 4)))
    assert schedule(3, None) > 0
    assert schedule(9, None) == pytest.approx(0.0, abs=1e-15)  # past the end: stays there


def test_cosine_decay_with_a_final_fraction():
    schedule = cosine_decay(0.01, epochs=4, final_fraction=0.1)
    assert schedule(0, None) == pytest.approx(0.01)
    assert schedule(2, None) == pytest.approx(0.0055)
    assert schedule(4, None) == pytest.approx(0.001)


def test_cosine_decay_for_one_epoch_keeps_the_initial_rate():
    assert cosine_decay(0.003, epochs=1)(0, None) == pytest.approx(0.003)


def test_learning_rate_scheduler_sets_the_rate_at_each_epoch_start():
    x, y = make_data()
    model = compiled(lr=0.01)
    snaps = Snapshots()
    schedule = cosine_decay(0.01, epochs=5, final_fraction=0.1)
    cb = LearningRateScheduler(schedule)
    model.fit(x, y, epochs=5, batch_size=8, callbacks=[cb, snaps], verbose=0)
    assert snaps.lrs == pytest.approx([schedule(e, None) for e in range(5)])
    assert snaps.lrs[0] == pytest.approx(0.01)
    assert snaps.lrs[-1] == pytest.approx(0.001 + 0.009 * 0.5 * (1 + math.cos(0.8 * math.pi)))


def test_learning_rate_scheduler_gets_the_current_rate():
    model = compiled(lr=0.01)
    model.optimizer = SGD(0.1)
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return lr / 2

    cb = LearningRateScheduler(schedule)
    cb.set_model(model)
    for epoch in range(3):
        cb.on_epoch_begin(epoch)
    assert seen == [(0, 0.1), (1, 0.05), (2, 0.025)]
    assert model.optimizer.learning_rate == pytest.approx(0.0125)


# ---- monitoring a value that is not logged --------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: EarlyStopping(monitor="val_loss"),
        lambda tmp: ModelCheckpoint(tmp / "m.npz", monitor="val_loss", save_best_only=True),
        lambda tmp: ReduceLROnPlateau(monitor="val_loss"),
        lambda tmp: EarlyStopping(monitor="val_acc"),
    ],
    ids=["EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau", "misspelt"],
)
def test_monitoring_a_missing_key_raises_a_clear_error(make, tmp_path):
    x, y = make_data(12)
    before = signal.getsignal(signal.SIGINT)
    cb = make(tmp_path)
    with pytest.raises(ValueError, match="is not logged") as info:
        compiled().fit(x, y, epochs=2, batch_size=4, callbacks=[cb], verbose=0)
    message = str(info.value)
    assert repr(cb.monitor) in message
    assert "'loss'" in message and "'accuracy'" in message  # lists what is available
    assert "validation" in message
    assert signal.getsignal(signal.SIGINT) is before
    assert not (tmp_path / "m.npz").exists()


# ---- NaN is never an improvement -------------------------------------------------------------------------
NAN = float("nan")


def test_early_stopping_takes_nan_as_no_improvement():
    cb = EarlyStopping(monitor="val_loss", patience=1)
    assert drive(cb, compiled(), [1.0, NAN, 0.5]) == 1
    assert cb.best == 1.0 and cb.best_epoch == 0
    cb = EarlyStopping(monitor="val_accuracy", patience=2)  # mode max
    assert drive(cb, compiled(), [NAN, 0.5, NAN, NAN], monitor="val_accuracy") == 3
    assert cb.best == 0.5


def test_checkpoint_save_best_only_never_takes_nan_as_the_best(tmp_path):
    cb = ModelCheckpoint(tmp_path / "ckpt-{epoch}.npz", monitor="val_loss", save_best_only=True)
    drive(cb, compiled(), [NAN, 1.0, NAN, 0.5, NAN])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-2.npz", "ckpt-4.npz"]
    assert cb.best == 0.5


def test_reduce_lr_takes_nan_as_no_improvement():
    model = compiled(lr=0.01)
    cb = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1)
    drive(cb, model, [1.0, NAN])
    assert model.optimizer.learning_rate == pytest.approx(0.005)
    assert cb.best == 1.0


# ---- TerminateOnNaN -------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", [NAN, float("inf"), -float("inf")])
def test_terminate_on_nan_stops_on_a_non_finite_batch_loss(loss, capsys):
    model = compiled()
    model.stop_training = False
    cb = TerminateOnNaN()
    cb.set_model(model)
    cb.on_train_batch_end(0, {"loss": 2.5})
    cb.on_train_batch_end(1, {})
    assert model.stop_training is False and cb.stopped_batch is None
    cb.on_train_batch_end(2, {"loss": loss})
    assert model.stop_training is True and cb.stopped_batch == 2
    assert capsys.readouterr().out == "Batch 2: Invalid loss, terminating training\n"


def test_terminate_on_nan_is_a_keras_name():
    assert tinycnn.callbacks.TerminateOnNaN is TerminateOnNaN


# ---- each fit starts afresh ---------------------------------------------------------------------------------
def test_reduce_lr_forgets_the_previous_fit_as_keras_does():
    """best and wait used to carry over: a second fit's first epoch, worse than the first
    fit's best, counted as a plateau and cut the learning rate at once."""
    model = compiled(lr=0.01)
    cb = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1)
    drive(cb, model, [0.5, 0.4])
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    drive(cb, model, [0.9])  # a new fit (say on new data): its first value is its best
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    assert cb.best == 0.9 and cb.wait == 0


# ---- ModelCheckpoint's path is checked at once -----------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    ["ck_{date}.npz", "ck_{}.npz", "ck_{epoch:q}.npz", "ck_{loss:d}.npz", "ck_{epoch.x}.npz"],
)
def test_checkpoint_rejects_a_path_it_cannot_fill_in_when_made(path, tmp_path):
    with pytest.raises(ValueError, match=r"ModelCheckpoint: cannot fill in the path") as info:
        ModelCheckpoint(tmp_path / path)
    message = str(info.value)
    assert "{epoch}, {loss}, {accuracy}, {val_loss}, {val_accuracy}" in message


def test_checkpoint_accepts_every_logged_name(tmp_path):
    ModelCheckpoint(tmp_path / "{epoch:03d}-{loss:.3f}-{accuracy:.2%}-{val_loss}-{val_accuracy}")


def test_checkpoint_naming_val_loss_without_validation_data_fails_clearly(tmp_path):
    x, y = make_data(12)
    cb = ModelCheckpoint(tmp_path / "m-{val_loss:.2f}.npz", monitor="loss")
    with pytest.raises(ValueError, match=r"cannot fill in the path .*'val_loss'.*validation data"):
        compiled().fit(x, y, epochs=1, batch_size=4, callbacks=[cb], verbose=0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [NAN, float("inf"), -0.1])
def test_learning_rate_scheduler_rejects_a_bad_rate(bad):
    model = compiled(lr=0.01)
    cb = LearningRateScheduler(lambda epoch, lr: bad if epoch == 1 else lr)
    cb.set_model(model)
    cb.on_epoch_begin(0)
    with pytest.raises(
        ValueError, match=r"LearningRateScheduler: the schedule gave .* for epoch 1"
    ):
        cb.on_epoch_begin(1)
    assert model.optimizer.learning_rate == 0.01


def test_early_stopping_starts_afresh_in_each_fit():
    """A callback reused for a second fit must not compare with the first fit's best loss
    (Keras resets it in on_train_begin): the fresh model's loss improves every epoch."""
    x, y = make_data()
    stop = EarlyStopping(monitor="loss", patience=0)
    trained = compiled(lr=0.05)
    trained.fit(x, y, epochs=8, batch_size=8, seed=0, callbacks=[stop], verbose=0)
    first_best = stop.best
    fresh = compiled(seed=1, lr=0.01)
    history = fresh.fit(x, y, epochs=3, batch_size=8, seed=0, callbacks=[stop], verbose=0)
    losses = history.history["loss"]
    assert losses[0] > first_best  # the old best would have stopped it after one epoch
    assert len(losses) == 3 and losses[0] > losses[1] > losses[2]
