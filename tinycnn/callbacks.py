"""Callbacks: code that runs at the start and end of training, around each epoch and,
if asked for, around each step (``fit`` in training/loop.py calls them).

The same hooks as Keras: ``on_train_begin``, ``on_epoch_begin``, ``on_epoch_end``,
``on_train_batch_begin``, ``on_train_batch_end`` and ``on_train_end``, each given
``logs``, a dict such as
``{"loss": 0.31, "accuracy": 0.89, "val_loss": 0.33, "val_accuracy": 0.88}``.
"""

from __future__ import annotations

import math

from . import backend


class Callback:
    """Base class; ``self.model`` is set by ``fit``."""

    model = None

    def set_model(self, model) -> None:
        """Called by ``fit`` before training: the model being trained."""
        self.model = model

    def on_train_begin(self, logs=None):
        """Once, before the first epoch."""

    def on_epoch_begin(self, epoch: int, logs=None):
        """Before each epoch (``epoch`` counts from 0)."""

    def on_epoch_end(self, epoch: int, logs=None):
        """After each epoch, with its metrics in ``logs`` (``loss``, ``accuracy``, and
        ``val_loss``, ``val_accuracy`` when there is validation data)."""

    def on_train_batch_begin(self, batch: int, logs=None):
        """Before each step (``batch`` counts the steps of the epoch from 0), with the
        running mean loss and accuracy of the epoch's steps so far in ``logs`` (``{}``
        before its first). fit calls it only on callbacks that override it."""

    def on_train_batch_end(self, batch: int, logs=None):
        """After each step, with the running mean loss and accuracy of the epoch so far
        in ``logs``, this step included (as Keras 3). fit calls it only on callbacks
        that override it: reading those values waits for the GPU at every step."""

    def on_train_end(self, logs=None):
        """Once, after the last epoch (also when training stopped early)."""


class History(Callback):
    """What fit returns: every epoch's metrics, every step's, and how long each epoch took.

    Attributes:
        history: one list per metric, one value per epoch, e.g.
            ``history.history["val_accuracy"]``; metrics only, so that
            ``for key, values in history.history.items(): plt.plot(values, label=key)``
            plots every curve.
        batch_history: ``{"loss": [...], "accuracy": [...]}``: the loss and accuracy of
            each training step's batch (not running means), all epochs in one list, for
            a per-step curve. On a GPU they are read back once per epoch, not per step.
        epoch: the epoch numbers (from 0) of the entries of ``history``.
        epoch_seconds: each epoch's training time, validation excluded.
    """

    def __init__(self):
        self.history: dict[str, list] = {}
        self.batch_history: dict[str, list] = {"loss": [], "accuracy": []}
        self.epoch: list[int] = []
        self.epoch_seconds: list[float] = []
        self.params: dict = {}
        self.interrupted = False  # True when Ctrl-C ended fit() early
        # Why fit() ended before its last epoch, if it did: "interrupted" (Ctrl-C),
        # "non-finite loss" (training diverged) or "callback" (model.stop_training).
        self.stopped_reason = None
        self.stopped_epoch = None  # the epoch it ended in (from 0, as in self.epoch)
        self.stopped_step = None  # Ctrl-C and divergence: that epoch's first step not applied

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def epoch_steps(self) -> StepLog:
        """Where fit records one epoch's steps, for :attr:`batch_history`."""
        return StepLog(self.batch_history)


class StepLog:
    """The loss and accuracy of each step of one epoch, kept as the loop computed them
    (on a GPU, 0-d arrays on the device: reading each would wait for the GPU) and
    appended to a History's ``batch_history`` at once, by :meth:`close`."""

    def __init__(self, batch_history: dict):
        self.batch_history = batch_history
        self.losses, self.corrects, self.sizes = [], [], []

    def add(self, loss, correct, n: int) -> None:
        """A step applied: its batch's mean loss, number of correct answers and size."""
        self.losses.append(loss)
        self.corrects.append(correct)
        self.sizes.append(n)

    def rewind(self, step: int) -> None:
        """Forget the steps from ``step`` on (a GPU's rollback replays them)."""
        del self.losses[step:], self.corrects[step:], self.sizes[step:]

    def close(self) -> None:
        """Read the values back (one copy from the device) into ``batch_history``."""
        if not self.losses:
            return
        xp = backend.get_array_module(self.losses[0])
        losses = backend.to_numpy(xp.stack(self.losses)).astype(float)
        corrects = backend.to_numpy(xp.stack(self.corrects)).astype(float)
        self.batch_history["loss"] += losses.tolist()
        self.batch_history["accuracy"] += (corrects / self.sizes).tolist()
        self.losses, self.corrects, self.sizes = [], [], []


class TerminateOnNaN(Callback):
    """Stop training when the loss becomes NaN or infinite, as Keras' callback does.

    ``fit`` already stops by itself at the first such step and keeps the weights from
    before it; this callback keeps Keras code working, and shows a per-step hook.
    """

    def __init__(self):
        self.stopped_batch = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.stopped_batch = batch
            self.model.stop_training = True


class _Monitor(Callback):
    """Shared logic: watch one logged value and decide when it improved."""

    def __init__(self, monitor: str, mode: str, min_delta: float):
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}.")
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self.best = math.inf if mode == "min" else -math.inf

    def _current(self, logs):
        if not logs or self.monitor not in logs:
            raise ValueError(
                f"{type(self).__name__}: {self.monitor!r} is not logged; available: "
                f"{sorted(logs or {})}. Monitoring 'val_*' needs validation data."
            )
        return logs[self.monitor]

    def _improved(self, value) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    With ``restore_best_weights=True`` the model ends with the weights of its best
    epoch (by ``monitor``), not those of its last one.
    """

    def __init__(
        self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto", restore_best_weights=False
    ):
        super().__init__(monitor, mode, min_delta)
        self.patience = int(patience)
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.best_epoch = None
        self.stopped_epoch = None
        self.wait = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        value = self._current(logs)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:  # as Keras: stop after `patience` epochs without progress
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


# what fit logs each epoch: the names a ModelCheckpoint path may use besides {epoch}
LOGGED = ("loss", "accuracy", "val_loss", "val_accuracy")


class ModelCheckpoint(_Monitor):
    """Save the model after each epoch.

    The path may name the epoch (from 1) and the logged values, formatted as in
    ``str.format``: ``"ck_{epoch:02d}_{val_loss:.3f}.npz"``. With
    ``save_best_only=True``, it saves only when ``monitor`` improved.
    """

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto"):
        super().__init__(monitor, mode, 0.0)
        self.filepath = str(filepath)
        self.save_best_only = save_best_only
        self._path(0, dict.fromkeys(LOGGED, 0.5))  # a bad path fails now, not after an epoch

    def _path(self, epoch: int, logs: dict) -> str:
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, AttributeError, ValueError) as err:
            names = ", ".join(f"{{{key}}}" for key in ("epoch", *LOGGED))
            raise ValueError(
                f"ModelCheckpoint: cannot fill in the path {self.filepath!r} ({err!r}); it "
                f"may name {names}, the val_ ones only with validation data."
            ) from None

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best_only:
            value = self._current(logs)
            if not self._improved(value):  # never true for NaN: a NaN is never the best
                return
            self.best = value
        self.model.save(self._path(epoch, logs or {}))


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without progress."""

    def __init__(
        self,
        monitor="val_loss",
        factor=0.5,
        patience=1,
        min_delta=1e-4,
        mode="auto",
        min_lr=0.0,
        verbose=0,
    ):
        super().__init__(monitor, mode, min_delta)
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}.")
        self.factor, self.patience, self.min_lr, self.verbose = factor, patience, min_lr, verbose
        self.wait = 0

    def on_train_begin(self, logs=None):  # each fit starts afresh, as in Keras
        self.wait = 0
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        value = self._current(logs)
        if self._improved(value):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            optimizer = self.model.optimizer
            new_lr = max(optimizer.learning_rate * self.factor, self.min_lr)
            if new_lr < optimizer.learning_rate and self.verbose:
                print(f"Epoch {epoch + 1}: reducing learning rate to {new_lr:.3g}.")
            optimizer.learning_rate = new_lr
            self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch: ``lr = schedule(epoch, lr)``."""

    def __init__(self, schedule):
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        lr = float(self.schedule(epoch, optimizer.learning_rate))
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(
                f"LearningRateScheduler: the schedule gave {lr} for epoch {epoch}; "
                "a learning rate must be a finite number >= 0."
            )
        optimizer.learning_rate = lr


def cosine_decay(initial_lr: float, epochs: int, final_fraction: float = 0.0):
    """A schedule for LearningRateScheduler: a cosine from ``initial_lr`` at epoch 0
    towards ``final_fraction * initial_lr``, reached after the last of ``epochs``."""

    def schedule(epoch, lr):
        # epoch / epochs, not / (epochs - 1): the last epoch still learns a little
        progress = min(epoch / max(epochs, 1), 1.0)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return initial_lr * (final_fraction + (1.0 - final_fraction) * cosine)

    return schedule
