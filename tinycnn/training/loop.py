"""The training loop: one step, one epoch, fit; then evaluate and predict.

One training step on a batch (x, y) is four lines (see :func:`train_step`):

    logits = model.forward(x, training=True)       # (B, classes)
    loss = loss_fn.forward(logits, y)               # mean over the batch
    model.backward(loss_fn.backward())              # fills every layer's grads
    optimizer.step(model.layers)                    # updates every layer's params

One epoch (:func:`_run_epoch`) takes that step on every batch of a shuffled order of
the samples, then measures the loss on the validation data. :func:`fit` checks its
arguments and the data once, copies the data to the model's device once, and runs the
epochs, calling the callbacks between them (and around each step, for those that ask).
What else there is: progress bars, a clean stop on Ctrl-C (``interrupt.py``), and a
clear stop when training diverges (the loss becomes NaN or infinite, typically from too
high a learning rate).

On the GPU (CuPy backend), the loss and accuracy are summed on the GPU: reading a
number back to Python waits for the GPU, so the loop does it only a few times a
second (``rollback.py`` says how a divergence is still caught at the right step).

The model comes in as an argument: this package never imports ``tinycnn.models``
(``Sequential.fit`` and its siblings call the functions here).
"""

from __future__ import annotations

import dataclasses
import math
import time
import typing
import warnings

import numpy

from .. import backend
from ..callbacks import Callback, History
from .checks import (
    check_batch_size,
    check_callbacks,
    check_data,
    check_epochs,
    check_seed,
    check_validation_data,
    require_compiled,
    require_samples,
)
from .interrupt import stop_on_interrupt
from .progress import EpochProgress
from .rollback import Rollback


# ---- one step ------------------------------------------------------------------------------------
def train_step(model, x, y, skip_non_finite: bool = True):
    """One optimisation step. Returns (loss, number correct) as 0-d arrays of the backend.

    With ``skip_non_finite``, a NaN or infinite loss (training diverged) leaves the
    weights and the optimizer untouched: the loss is known before backward, so the
    step can be refused before it does harm. That reads the loss back to Python,
    which is free on NumPy but waits for the GPU on CuPy, where ``fit`` passes False
    and checks in bulk instead (``rollback.py``).

    Only the loss is checked: a finite loss with overflowing gradients (rare) spoils
    the weights, and the next step's loss, computed with them, is the one that stops.
    """
    logits = model.forward(x, training=True, check_finite=False)
    loss = model.loss.forward(logits, y, check=False)
    if skip_non_finite and not math.isfinite(loss):
        return loss, (logits.argmax(axis=1) == y).sum()
    model.backward(model.loss.backward(), input_grad=False)
    model.optimizer.step(model.layers)
    return loss, (logits.argmax(axis=1) == y).sum()


def train_on_batch(model, x, y):
    """One step on one batch, with its inputs checked; returns (loss, accuracy) floats.

    A NaN or infinite loss is returned as it is, but the weights are not updated."""
    require_compiled(model, "train_on_batch")
    x, y = check_data(model, x, y, "train_on_batch")
    x, y = _to_model_backend(model, x, y)
    loss, correct = train_step(model, x, y)
    return float(loss), float(correct) / len(y)


# ---- one epoch -----------------------------------------------------------------------------------
@dataclasses.dataclass
class _Plan:
    """What every epoch of one fit() needs to know."""

    epochs: int  # the epoch to train until, for the progress bar's "Epoch 3/10"
    steps: int  # steps per epoch
    batch_size: int
    shuffle: bool
    seed: int  # with the epoch number, fixes the batch order and the Dropout masks
    verbose: int
    validation_data: tuple | None  # (x_val, y_val), checked and on the model's device
    batch_begin: list  # the callbacks with an on_train_batch_begin (called every step)
    batch_end: list  # the callbacks with an on_train_batch_end (called every step)
    noisy_layers: list  # (index, layer) of the layers with random masks (Dropout)
    check_each_step: bool  # read every loss before its update (NumPy, or batch callbacks)
    history: History  # also keeps each step's loss and accuracy

    def set_noise(self, epoch: int, step: int) -> None:
        """Key this step's Dropout masks by (seed, epoch, step, layer index), as the batch
        order is by (seed, epoch): a resumed run draws the masks of an uninterrupted one."""
        for index, layer in self.noisy_layers:
            layer.noise_key = (self.seed, epoch, step, index)

    def clear_noise(self) -> None:
        """Outside fit, Dropout draws masks of its own."""
        for _, layer in self.noisy_layers:
            layer.noise_key = None


class _Stop(typing.NamedTuple):
    """Why and where an epoch was cut short: ``step`` is its first step not applied."""

    reason: str  # INTERRUPTED or NON_FINITE_LOSS
    step: int
    loss: float | None = None  # the non-finite loss


def _run_epoch(model, x, y, epoch: int, plan: _Plan, ctrl_c):
    """Train one epoch, then evaluate the validation data. Returns ``(logs, seconds,
    stop)``: the epoch's metrics, its training time, and None or the :class:`_Stop`
    when Ctrl-C or a non-finite loss cut the epoch short (it is then not validated)."""
    progress = EpochProgress(epoch, plan.epochs, plan.steps, plan.verbose)
    start = time.perf_counter()
    sums, stop = _train_epoch(model, x, y, epoch, plan, ctrl_c, progress)
    seconds = time.perf_counter() - start
    logs = sums.running()
    if plan.validation_data is not None and stop is None:
        val_loss, val_accuracy = _mean_loss_and_accuracy(
            model, *plan.validation_data, batch_size=max(plan.batch_size, 256)
        )
        logs.update(val_loss=val_loss, val_accuracy=val_accuracy)
    progress.close(logs, seconds)
    return logs, seconds, stop


_NUMPY_FLOAT_ERRORS = r"(overflow|invalid value|divide by zero) encountered"


def _train_epoch(model, x, y, epoch: int, plan: _Plan, ctrl_c, progress):
    """:func:`train_step` on each batch of the epoch's sample order. Returns ``(sums,
    stop)``: the running loss and accuracy (:class:`_Sums`), and None or a :class:`_Stop`.
    """
    order = epoch_order(len(x), plan.seed, epoch, plan.shuffle)
    order = backend.to_backend(order, backend.backend_of(x))
    sums = _Sums(backend.get_array_module(x))
    # NumPy reads each loss before its update; a GPU reads the running sum now and then
    rollback = None if plan.check_each_step else Rollback(model, sums)
    steps = plan.history.epoch_steps()  # each step's loss, read once at the epoch's end
    step, stop = 0, None
    # A divergence is reported once, by fit: NumPy's overflow warnings would bury it.
    # (A filter, not numpy.errstate: the convolution kernels' threads would not see that.)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _NUMPY_FLOAT_ERRORS, RuntimeWarning)
        while step < plan.steps:
            rows = order[step * plan.batch_size : (step + 1) * plan.batch_size]
            for callback in plan.batch_begin:  # the running means so far ({} at first)
                callback.on_train_batch_begin(step, sums.running() if sums.seen else {})
            plan.set_noise(epoch, step)
            checked = rollback is None or rollback.replaying(step)  # read this loss first?
            loss, correct = train_step(model, x[rows], y[rows], skip_non_finite=checked)
            sums.add(loss, correct, len(rows))  # on the device: no waiting here
            if checked and not math.isfinite(loss):
                stop = _Stop(NON_FINITE_LOSS, step, float(loss))
            else:  # a step applied (on a GPU, perhaps to be rolled back: see below)
                steps.add(loss, correct, len(rows))
            step += 1
            progress.step(sums.running)
            if plan.batch_end:
                logs = sums.running()
                for callback in plan.batch_end:
                    callback.on_train_batch_end(step - 1, logs)
            if stop is not None or model.stop_training:
                break
            if rollback is not None:  # GPU: read the running loss now and then
                epoch_end_or_ctrl_c = step == plan.steps or ctrl_c.pressed
                if rollback.time_to_check(step, now=epoch_end_or_ctrl_c):
                    step, sums = rollback.check(step, sums)  # goes back if the loss diverged
                    steps.rewind(step)
                    progress.rewind(step)
            if ctrl_c.pressed and (rollback is None or not rollback.replaying(step)):
                stop = _Stop(INTERRUPTED, step)
                break
    steps.close()
    return sums, stop


class _Sums:
    """Running totals of an epoch or an evaluation, kept on the device: adding to them
    never waits for it."""

    def __init__(self, xp):
        self.loss = xp.zeros((), dtype=xp.float64)  # sum of loss * batch size
        self.correct = xp.zeros((), dtype=xp.int64)
        self.seen = 0

    def add(self, loss, correct, n: int) -> None:
        self.loss += loss * n
        self.correct += correct
        self.seen += n

    def running(self) -> dict:
        """The mean loss and accuracy so far (reads the device: call it rarely on a GPU)."""
        seen = max(self.seen, 1)
        return {"loss": float(self.loss) / seen, "accuracy": float(self.correct) / seen}

    def copy(self) -> _Sums:
        other = _Sums.__new__(_Sums)
        other.loss, other.correct, other.seen = self.loss.copy(), self.correct.copy(), self.seen
        return other


def epoch_order(n: int, seed, epoch: int, shuffle: bool) -> numpy.ndarray:
    """The sample order of one epoch. Seeded by (seed, epoch), so a run resumed at
    epoch k sees exactly the batches an uninterrupted run would have seen."""
    if not shuffle:
        return numpy.arange(n)
    return numpy.random.default_rng([seed, epoch]).permutation(n)


# ---- fit ----------------------------------------------------------------------------------------
# history.stopped_reason when fit ends before its last epoch
INTERRUPTED = "interrupted"  # Ctrl-C
NON_FINITE_LOSS = "non-finite loss"  # training diverged
CALLBACK = "callback"  # a callback set model.stop_training (EarlyStopping, TerminateOnNaN)


def fit(
    model,
    x,
    y,
    epochs: int = 1,
    batch_size: int = 32,
    validation_data=None,
    validation_split: float = 0.0,
    shuffle: bool = True,
    callbacks=None,
    verbose: int = 1,
    seed=None,
    initial_epoch: int = 0,
):
    """Train ``model`` on images ``x`` and labels ``y``; returns a :class:`History`.

    The arguments are those of :meth:`tinycnn.models.Sequential.fit`, which calls this
    and documents them. Everything is checked before the first step, then the data is
    copied to the model's device (once), then the epochs run from ``initial_epoch`` to
    ``epochs``, with the callbacks called around each.
    """
    require_compiled(model, "fit")
    check_batch_size(batch_size, "fit")
    check_epochs(epochs, initial_epoch)
    callbacks = check_callbacks(callbacks)
    (x, y), validation_data = _fit_data(model, x, y, validation_data, validation_split)
    seed = _fit_seed(model, seed, initial_epoch)
    x, y = _to_model_backend(model, x, y)
    if validation_data is not None:
        validation_data = _to_model_backend(model, *validation_data)

    history = History()
    callbacks = [history, *callbacks]
    batch_begin = [cb for cb in callbacks if _overrides(cb, "on_train_batch_begin")]
    batch_end = [cb for cb in callbacks if _overrides(cb, "on_train_batch_end")]
    plan = _Plan(
        epochs=epochs,
        steps=-(-len(x) // batch_size),  # the last batch may be smaller
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        verbose=verbose,
        validation_data=validation_data,
        batch_begin=batch_begin,
        batch_end=batch_end,
        noisy_layers=[(k, lay) for k, lay in enumerate(model.layers) if hasattr(lay, "noise_key")],
        check_each_step=_reads_are_free(x) or bool(batch_begin or batch_end),
        history=history,
    )
    history.params = {"epochs": epochs, "steps": plan.steps, "batch_size": batch_size}
    history.params["samples"] = len(x)
    for cb in callbacks:
        cb.set_model(model)
    model.stop_training = False
    for cb in callbacks:
        cb.on_train_begin()
    try:
        with stop_on_interrupt() as ctrl_c:
            for epoch in range(initial_epoch, epochs):
                for cb in callbacks:
                    cb.on_epoch_begin(epoch)
                logs, seconds, stop = _run_epoch(model, x, y, epoch, plan, ctrl_c)
                if stop is not None:  # Ctrl-C or divergence: the epoch is not reported
                    _record_stop(history, model, epoch, plan.steps, stop)
                    break
                history.epoch_seconds.append(seconds)
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
                if model.stop_training:
                    history.stopped_reason, history.stopped_epoch = CALLBACK, epoch
                    break
    finally:
        plan.clear_noise()
    for cb in callbacks:
        cb.on_train_end()
    model.clear_caches()
    return history


def _fit_data(model, x, y, validation_data, validation_split: float):
    """The checked ``(x, y)`` to train on, and ``(x_val, y_val)`` or None."""
    x, y = check_data(model, x, y, "fit")
    require_samples(x, "fit: x")
    if validation_data is not None:
        return (x, y), check_validation_data(model, validation_data)
    (x, y), validation_data = split_validation(x, y, validation_split)
    if len(x) == 0:
        raise ValueError(f"fit: validation_split={validation_split} leaves no sample to train on.")
    return (x, y), validation_data


def split_validation(x, y, validation_split: float):
    """Hold out the *last* fraction of the samples (before any shuffling), as Keras does."""
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}.")
    n_val = int(round(len(x) * validation_split))
    if n_val == 0:
        return (x, y), None
    return (x[:-n_val], y[:-n_val]), (x[-n_val:], y[-n_val:])


def _fit_seed(model, seed, initial_epoch: int) -> int:
    """This run's seed, kept as ``model.fit_seed`` (a resumed run reuses it)."""
    if seed is None and initial_epoch > 0:
        seed = model.fit_seed
    if seed is None:
        seed = int(numpy.random.SeedSequence().entropy % 2**32)
    check_seed(seed)
    model.fit_seed = int(seed)
    return model.fit_seed


def _reads_are_free(x) -> bool:
    """True where reading a number back to Python costs nothing (NumPy): then the loop
    checks every loss before its update. On a GPU it waits for the device: see rollback.py."""
    return backend.backend_of(x) == "numpy"


def _overrides(callback, hook: str) -> bool:
    """Whether ``callback`` has its own ``hook``: fit calls the batch hooks only on those
    (building their logs reads the device, so a GPU would wait at every step)."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)


def _record_stop(history, model, epoch: int, steps: int, stop: _Stop) -> None:
    """Note in ``history`` why and where training stopped; warn if it diverged."""
    history.stopped_reason, history.stopped_epoch = stop.reason, epoch
    history.stopped_step = stop.step
    if stop.reason == INTERRUPTED:
        history.interrupted = True
        return
    message = (
        f"fit: the loss became {stop.loss} at epoch {epoch + 1}, step {stop.step + 1}/{steps}: "
        "training diverged and stopped, keeping the weights from before that step. Lower the "
        f"learning rate (it is {model.optimizer.learning_rate:g})."
    )
    if not all(numpy.isfinite(w).all() for w in model.get_weights()):
        message += " Those weights are not finite either: the step before overflowed."
    warnings.warn(message, RuntimeWarning, stacklevel=4)  # at the user's model.fit(...)


# ---- evaluate and predict -----------------------------------------------------------------------
def evaluate(model, x, y, batch_size: int = 32, verbose: int = 0, return_dict: bool = False):
    """Mean loss and accuracy over ``(x, y)``, batch by batch: ``[loss, accuracy]``."""
    require_compiled(model, "evaluate")
    check_batch_size(batch_size, "evaluate")
    x, y = check_data(model, x, y, "evaluate")
    require_samples(x, "evaluate: x")
    x, y = _to_model_backend(model, x, y)
    result = _mean_loss_and_accuracy(model, x, y, batch_size)
    if verbose:
        print(f"loss: {result[0]:.4f} - accuracy: {result[1]:.4f}")
    return {"loss": result[0], "accuracy": result[1]} if return_dict else result


def _mean_loss_and_accuracy(model, x, y, batch_size: int) -> list[float]:
    """``[loss, accuracy]`` over data already checked and on the model's device."""
    sums = _Sums(backend.get_array_module(x))
    for batch in _batches(len(x), batch_size):
        logits = model.forward(x[batch], training=False, check_finite=False)
        loss = model.loss.forward(logits, y[batch], check=False)
        sums.add(loss, (logits.argmax(axis=1) == y[batch]).sum(), len(logits))
    model.clear_caches()
    running = sums.running()
    return [running["loss"], running["accuracy"]]


def predict(model, x, batch_size: int = 32, verbose: int = 0):
    """Logits ``(N, classes)`` as a NumPy array, computed ``batch_size`` images at a time
    (only one batch's intermediate arrays exist at any moment)."""
    check_batch_size(batch_size, "predict")
    x, _ = check_data(model, x, None, "predict")
    (x,) = _to_model_backend(model, x)
    xp = backend.get_array_module(x)
    outputs = [
        model.forward(x[batch], training=False, check_finite=False)
        for batch in _batches(len(x), batch_size)
    ]
    model.clear_caches()
    if verbose:
        print(f"predicted {len(x)} samples")
    if not outputs:  # no samples: still the right number of columns
        return numpy.zeros((0, *model.output_shapes()[-1]), dtype=model.layers[-1].dtype)
    return backend.to_numpy(xp.concatenate(outputs))


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


# ---- data placement -----------------------------------------------------------------------------
def _to_model_backend(model, *arrays):
    """The arrays on the model's device, floats in its dtype: the one copy of the data
    per call of fit, evaluate or predict (None stays None)."""
    name = _model_backend(model)
    dtype = model.layers[0].dtype
    out = []
    for a in arrays:
        if a is not None:
            a = backend.to_backend(a, name)
            if a.dtype.kind == "f" and a.dtype != dtype:
                a = a.astype(dtype)
        out.append(a)
    return out


def _model_backend(model) -> str:
    for layer in model.layers:
        for p in layer.params.values():
            return backend.backend_of(p)
    return backend.get_backend()
