"""The training loop: compile, fit, evaluate, predict, as Keras users know them.

One training step on a batch (x, y) is four lines (see :func:`train_step`):

    logits = model.forward(x, training=True)       # (B, classes)
    loss = loss_fn.forward(logits, y)               # mean over the batch
    model.backward(loss_fn.backward())              # fills every layer's grads
    optimizer.step(model.layers)                    # updates every layer's params

Everything else here is bookkeeping: batches, shuffling, metrics, validation,
progress bars, callbacks, a clean stop on Ctrl-C, and a clear stop when training
diverges (the loss becomes NaN or infinite, typically from too high a learning rate).

On the GPU (CuPy backend), the data is copied to the GPU once before the first
epoch, and the loss and accuracy are summed on the GPU: reading a number back to
Python waits for the GPU, so the loop does it only a few times a second (see
:class:`_Rollback` for how a divergence is still caught at the right step).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
import time
import warnings

import numpy

from .. import backend, losses, optimizers
from ..losses.softmax_cross_entropy import check_class_labels
from .callbacks import Callback, History
from .progress import EpochProgress


def compile_model(model, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=None):
    """Attach an optimizer and a loss (objects or Keras names) to ``model``.

    The metric is always accuracy (the only one a classifier of this library needs);
    ``metrics`` is accepted for Keras compatibility.
    """
    if metrics not in (None, [], ["accuracy"], ("accuracy",), ["acc"]):
        raise ValueError(f"Only the 'accuracy' metric is supported, got {metrics!r}.")
    model.optimizer = optimizers.get(optimizer)
    model.optimizer.bind(model.layers)  # so that set_state can check shapes against them
    model.loss = losses.get(loss)


def _require_compiled(model, what: str) -> None:
    if model.optimizer is None or model.loss is None:
        raise RuntimeError(
            f"{what}: compile the model first, e.g. "
            "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')."
        )


# ---- one step ------------------------------------------------------------------------
def train_step(model, x, y, skip_non_finite: bool = True):
    """One optimisation step. Returns (loss, number correct) as 0-d arrays of the backend.

    With ``skip_non_finite``, a NaN or infinite loss (training diverged) leaves the
    weights and the optimizer untouched: the loss is known before backward, so the
    step can be refused before it does harm. That reads the loss back to Python,
    which is free on NumPy but waits for the GPU on CuPy, where ``fit`` passes False
    and checks in bulk instead (:class:`_Rollback`).

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
    _require_compiled(model, "train_on_batch")
    x, y = _check_data(model, x, y, "train_on_batch")
    x, y = _to_model_backend(model, x, y)
    loss, correct = train_step(model, x, y)
    return float(loss), float(correct) / len(y)


# ---- data checks and placement -------------------------------------------------------------
def _check_data(model, x, y, what: str):
    """Validate once, before the loop, what the layers would otherwise check every step."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(
            f"{what}: x must be an array of images (N, H, W, C), got {type(x).__name__}."
        )
    if x.dtype.kind != "f":
        raise TypeError(
            f"{what}: x must hold floats, got {x.dtype}. Scale uint8 images with "
            "tinycnn.preprocessing.prepare_images(x) (to [0, 1], with a channel axis)."
        )
    model.check_sample_shape(x, what)  # builds the model from x if it has no input_shape
    xp = backend.get_array_module(x)
    if not bool(xp.isfinite(x).all()):
        raise ValueError(f"{what}: x contains NaN or infinite values.")
    if y is not None:
        y = backend.to_numpy(y) if backend.backend_of(y) != "numpy" else numpy.asarray(y)
        # the loss's own rules, checked once here rather than at every step
        check_class_labels(y, x.shape[0], model.output_shapes()[-1][-1], what, "y")
    return x, y


def _check_batch_size(batch_size, what: str) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, numpy.integer)):
        raise TypeError(f"{what}: batch_size must be an int, got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"{what}: batch_size must be at least 1, got {batch_size}.")


def _model_backend(model) -> str:
    for layer in model.layers:
        for p in layer.params.values():
            return backend.backend_of(p)
    return backend.get_backend()


def _to_model_backend(model, *arrays):
    """Copy arrays to the model's device (once per fit, not per batch)."""
    name = _model_backend(model)
    dtype = model.layers[0].dtype
    out = []
    for a in arrays:
        if a is None:
            out.append(None)
            continue
        a = backend.to_backend(a, name)
        if a.dtype.kind == "f" and a.dtype != dtype:
            a = a.astype(dtype)
        out.append(a)
    return out


# ---- Ctrl-C -------------------------------------------------------------------------------
@contextlib.contextmanager
def _stop_on_interrupt(flag: dict):
    """While active, the first Ctrl-C only sets ``flag["stop"]``: the loop finishes the
    current step and returns, so the weights are never left half-updated. A second
    Ctrl-C interrupts at once.

    Nothing is installed outside the main thread (Python allows handlers only there),
    nor when the process ignores SIGINT (a job started with ``&`` from a script: it must
    go on ignoring Ctrl-C typed for the foreground), nor when the handler was not set
    from Python (it could not be put back)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, None):
        yield
        return

    def handler(signum, frame):
        if flag.get("stop"):
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# ---- fit ----------------------------------------------------------------------------------------
# history.stopped_reason when fit ends before its last epoch
INTERRUPTED = "interrupted"  # Ctrl-C
NON_FINITE_LOSS = "non-finite loss"  # training diverged
CALLBACK = "callback"  # a callback set model.stop_training (EarlyStopping, TerminateOnNaN)


def split_validation(x, y, validation_split: float):
    """Hold out the *last* fraction of the samples (before any shuffling), as Keras does."""
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}.")
    n_val = int(round(len(x) * validation_split))
    if n_val == 0:
        return (x, y), None
    return (x[:-n_val], y[:-n_val]), (x[-n_val:], y[-n_val:])


def epoch_order(n: int, seed, epoch: int, shuffle: bool) -> numpy.ndarray:
    """The sample order of one epoch. Seeded by (seed, epoch), so a run resumed at
    epoch k sees exactly the batches an uninterrupted run would have seen."""
    if not shuffle:
        return numpy.arange(n)
    return numpy.random.default_rng([seed, epoch]).permutation(n)


def _is_int(value) -> bool:
    return isinstance(value, (int, numpy.integer)) and not isinstance(value, bool)


def _check_epochs(epochs, initial_epoch) -> None:
    for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
        if not _is_int(value):
            raise TypeError(f"fit: {name} must be an int, got {value!r}.")
        if value < 0:
            raise ValueError(f"fit: {name} must be at least 0, got {value}.")
    if initial_epoch > epochs:
        raise ValueError(
            f"fit: initial_epoch={initial_epoch} is past epochs={epochs}. As in Keras, "
            "epochs is the epoch to train until, not a number of further epochs."
        )


def _check_callbacks(callbacks) -> list:
    """The callbacks as a list, each a Callback (Keras raises on a bare callback too)."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        name = type(callbacks).__name__
        raise TypeError(f"fit: callbacks must be a list: write callbacks=[{name}(...)].")
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"fit: callbacks must be a list, got {type(callbacks).__name__}.")
    for k, callback in enumerate(callbacks):
        if not isinstance(callback, Callback):
            raise TypeError(
                f"fit: callbacks[{k}] is a {type(callback).__name__}, not a Callback "
                "(subclass tinycnn.callbacks.Callback)."
            )
    return list(callbacks)


def _require_samples(x, what: str) -> None:
    if len(x) == 0:
        raise ValueError(f"{what} has no samples: a mean loss over 0 samples means nothing.")


def _fit_seed(model, seed, initial_epoch: int) -> int:
    """This run's seed, kept as ``model.fit_seed`` (a resumed run reuses it)."""
    if seed is None and initial_epoch > 0:
        seed = model.fit_seed
    if seed is None:
        seed = int(numpy.random.SeedSequence().entropy % 2**32)
    if not _is_int(seed):
        raise TypeError(f"fit: seed must be an int >= 0 or None, got {seed!r}.")
    if seed < 0:
        raise ValueError(f"fit: seed must be an int >= 0 or None, got {seed}.")
    model.fit_seed = int(seed)
    return model.fit_seed


def _reads_are_free(x) -> bool:
    """True where reading a number back to Python costs nothing (NumPy): then the loop
    checks every loss before its update. On a GPU it waits for the device: see _Rollback."""
    return backend.backend_of(x) == "numpy"


def _has_batch_hook(callback) -> bool:
    return type(callback).on_train_batch_end is not Callback.on_train_batch_end


@dataclasses.dataclass
class _Plan:
    """What every epoch of one fit() needs to know."""

    batch_size: int
    seed: int
    shuffle: bool
    verbose: int
    epochs: int
    validation_data: tuple | None
    batch_callbacks: list  # the callbacks with an on_train_batch_end (called every step)
    noisy_layers: list  # (index, layer) of the layers with random masks (Dropout)
    check_each_step: bool  # read every loss before its update (NumPy, or batch callbacks)

    def set_noise(self, epoch: int, step: int) -> None:
        """Key this step's Dropout masks by (seed, epoch, step, layer index), as the batch
        order is by (seed, epoch): a resumed run draws the masks of an uninterrupted one."""
        for index, layer in self.noisy_layers:
            layer.noise_key = (self.seed, epoch, step, index)


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
    """Train ``model`` on images ``x`` ``(N, H, W, C)`` (floats) and labels ``y`` ``(N,)``.

    Args:
        epochs: train until this epoch number (counting from ``initial_epoch``).
        batch_size: samples per step; the last batch of an epoch may be smaller.
        validation_data: ``(x_val, y_val)`` evaluated after each epoch.
        validation_split: or hold out this last fraction of ``x``, ``y`` for validation.
        shuffle: new random sample order each epoch.
        callbacks: list of :class:`~tinycnn.training.callbacks.Callback`.
        verbose: 0 silent, 1 a live progress bar per epoch, 2 one line per epoch.
        seed: fixes the sample order and the Dropout masks. None: fresh randomness,
            except when resuming (``initial_epoch > 0``): then the seed of the model's
            previous fit, ``model.fit_seed``, so the resumed run equals an unbroken one.
        initial_epoch: epoch to start from (to resume from a checkpoint).
    Returns:
        A :class:`History`; ``history.history["loss"]`` etc. have one value per epoch.

    Training that diverges (a NaN or infinite loss) stops at that step with a warning
    and the weights from before it; ``history.stopped_reason`` then says
    ``"non-finite loss"`` and ``history.stopped_epoch``/``stopped_step`` say where.
    """
    _require_compiled(model, "fit")
    _check_batch_size(batch_size, "fit")
    _check_epochs(epochs, initial_epoch)
    callbacks = _check_callbacks(callbacks)
    x, y = _check_data(model, x, y, "fit")
    _require_samples(x, "fit: x")
    if validation_data is None:
        (x, y), validation_data = split_validation(x, y, validation_split)
        if len(x) == 0:
            raise ValueError(
                f"fit: validation_split={validation_split} leaves no sample to train on."
            )
    else:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise ValueError("fit: validation_data must be a pair (x_val, y_val).")
        validation_data = _check_data(model, *validation_data, "fit (validation_data)")
        _require_samples(validation_data[0], "fit: validation_data")
    seed = _fit_seed(model, seed, initial_epoch)
    x, y = _to_model_backend(model, x, y)
    if validation_data is not None:
        validation_data = _to_model_backend(model, *validation_data)

    history = History()
    callbacks = [history, *callbacks]
    n, steps = len(x), -(-len(x) // batch_size)
    history.params = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "samples": n}
    batch_callbacks = [cb for cb in callbacks if _has_batch_hook(cb)]
    plan = _Plan(
        batch_size,
        seed,
        shuffle,
        verbose,
        epochs,
        validation_data,
        batch_callbacks,
        noisy_layers=[(k, lay) for k, lay in enumerate(model.layers) if hasattr(lay, "noise_key")],
        check_each_step=_reads_are_free(x) or bool(batch_callbacks),
    )
    for cb in callbacks:
        cb.set_model(model)
    model.stop_training = False
    interrupt = {"stop": False}
    for cb in callbacks:
        cb.on_train_begin()
    try:
        with _stop_on_interrupt(interrupt):
            for epoch in range(initial_epoch, epochs):
                for cb in callbacks:
                    cb.on_epoch_begin(epoch)
                logs, stop = _run_epoch(model, x, y, epoch, plan, interrupt)
                if stop is not None:  # Ctrl-C or divergence: the epoch is not reported
                    _record_stop(history, model, epoch, steps, *stop)
                    break
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
                if model.stop_training:
                    history.stopped_reason, history.stopped_epoch = CALLBACK, epoch
                    break
    finally:
        for _, layer in plan.noisy_layers:  # outside fit, Dropout draws masks of its own
            layer.noise_key = None
    for cb in callbacks:
        cb.on_train_end()
    model.clear_caches()
    return history


def _record_stop(history, model, epoch: int, steps: int, reason: str, step: int, loss) -> None:
    """Note in ``history`` why and where training stopped; warn if it diverged."""
    history.stopped_reason, history.stopped_epoch, history.stopped_step = reason, epoch, step
    if reason == INTERRUPTED:
        history.interrupted = True
        return
    message = (
        f"fit: the loss became {loss} at epoch {epoch + 1}, step {step + 1}/{steps}: training "
        "diverged and stopped, keeping the weights from before that step. Lower the "
        f"learning rate (it is {model.optimizer.learning_rate:g})."
    )
    if not all(numpy.isfinite(w).all() for w in model.get_weights()):
        message += " Those weights are not finite either: the step before overflowed."
    warnings.warn(message, RuntimeWarning, stacklevel=4)  # at the user's model.fit(...)


class _Sums:
    """An epoch's running totals, kept on the device: adding to them never waits for it."""

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


CHECK_SECONDS = 0.25  # on a GPU, how often the loop reads the running loss
_NUMPY_FLOAT_ERRORS = r"(overflow|invalid value|divide by zero) encountered"


class _Rollback:
    """How the GPU path catches a divergence at its first step without reading every loss.

    A non-finite loss makes the running sum of losses non-finite for good, so the
    loop reads that sum only every ``CHECK_SECONDS`` and at the end of the epoch.
    While it is finite, a snapshot is copied on the device: the weights, the
    optimizer's state and the sums. When it is not, the model goes back to the last
    snapshot and replays the steps since, checking each loss before its update
    (train_step's ``skip_non_finite``): training stops at the first non-finite loss
    with the weights from before it, exactly as on NumPy. The replay repeats the
    same computation, since a step depends only on the weights, the optimizer state
    (``optimizer.state`` and ``iterations``) and (seed, epoch, step); should a replay
    stay finite after all, training simply carries on from it.
    """

    def __init__(self, model, sums: _Sums):
        self.model = model
        self.replay_until = -1  # steps up to this one are being replayed, each checked
        self._take(0, sums)

    def replaying(self, step: int) -> bool:
        return step <= self.replay_until

    def due(self) -> bool:
        return time.perf_counter() - self.taken_at >= CHECK_SECONDS

    def check(self, step: int, sums: _Sums) -> tuple[int, _Sums]:
        """Read the running loss (the one wait for the device); returns the step and the
        sums to go on from: these, or the snapshot's after a rollback."""
        if math.isfinite(float(sums.loss)):
            self._take(step, sums)
            return step, sums
        self.replay_until = step - 1
        self._restore()
        return self.step, self.sums.copy()

    def _take(self, step: int, sums: _Sums) -> None:
        optimizer = self.model.optimizer
        self.step, self.sums, self.taken_at = step, sums.copy(), time.perf_counter()
        self.params = [p.copy() for layer in self.model.layers for p in layer.params.values()]
        self.iterations = optimizer.iterations
        self.state = _copy_state(optimizer.state)

    def _restore(self) -> None:
        params = [p for layer in self.model.layers for p in layer.params.values()]
        for param, saved in zip(params, self.params, strict=True):
            param[...] = saved  # in place: the layers keep their arrays
        self.model.optimizer.iterations = self.iterations
        self.model.optimizer.state = _copy_state(self.state)


def _copy_state(state: dict) -> dict:
    return {key: {name: a.copy() for name, a in slot.items()} for key, slot in state.items()}


def _run_epoch(model, x, y, epoch: int, plan: _Plan, interrupt: dict):
    """Train one epoch, then evaluate. Returns ``(logs, stop)``: ``stop`` is None, or
    ``(reason, step, loss)`` when Ctrl-C or a non-finite loss cut the epoch short at
    ``step`` (the first step not applied)."""
    xp = backend.get_array_module(x)
    order = epoch_order(len(x), plan.seed, epoch, plan.shuffle)
    order = backend.to_backend(order, backend.backend_of(x))
    steps = -(-len(x) // plan.batch_size)
    progress = EpochProgress(epoch, plan.epochs, steps, plan.verbose)
    sums = _Sums(xp)
    rollback = None if plan.check_each_step else _Rollback(model, sums)
    start = time.perf_counter()
    step, stop = 0, None
    # A divergence is reported once, by fit: NumPy's overflow warnings would bury it.
    # (A filter, not numpy.errstate: the convolution kernels' threads would not see that.)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _NUMPY_FLOAT_ERRORS, RuntimeWarning)
        while step < steps:
            idx = order[step * plan.batch_size : (step + 1) * plan.batch_size]
            plan.set_noise(epoch, step)
            checked = rollback is None or rollback.replaying(step)
            loss, batch_correct = train_step(model, x[idx], y[idx], skip_non_finite=checked)
            sums.add(loss, batch_correct, len(idx))  # on the device: no synchronisation here
            if checked and not math.isfinite(loss):
                stop = (NON_FINITE_LOSS, step, float(loss))
            step += 1
            progress.step(sums.running)
            if plan.batch_callbacks:
                logs = sums.running()
                for cb in plan.batch_callbacks:
                    cb.on_train_batch_end(step - 1, logs)
            if stop is not None or model.stop_training:
                break
            if rollback is not None and not rollback.replaying(step):
                if step == steps or interrupt["stop"] or rollback.due():
                    step, sums = rollback.check(step, sums)
                    progress.rewind(step)
            if interrupt["stop"] and (rollback is None or not rollback.replaying(step)):
                stop = (INTERRUPTED, step, None)
                break
    logs = {**sums.running(), "epoch_seconds": time.perf_counter() - start}
    if plan.validation_data is not None and stop is None:
        val_loss, val_acc = evaluate(
            model, *plan.validation_data, batch_size=max(plan.batch_size, 256)
        )
        logs.update(val_loss=val_loss, val_accuracy=val_acc)
    progress.close(logs)
    return logs, stop


# ---- evaluate and predict ---------------------------------------------------------------------------
def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def evaluate(model, x, y, batch_size: int = 32, verbose: int = 0, return_dict: bool = False):
    """Mean loss and accuracy over ``(x, y)``, batch by batch: ``[loss, accuracy]``."""
    _require_compiled(model, "evaluate")
    _check_batch_size(batch_size, "evaluate")
    x, y = _check_data(model, x, y, "evaluate")
    _require_samples(x, "evaluate: x")
    x, y = _to_model_backend(model, x, y)
    xp = backend.get_array_module(x)
    loss_sum, correct = xp.zeros((), dtype=xp.float64), xp.zeros((), dtype=xp.int64)
    for batch in _batches(len(x), batch_size):
        logits = model.forward(x[batch], training=False, check_finite=False)
        loss_sum += model.loss.forward(logits, y[batch], check=False) * len(logits)
        correct += (logits.argmax(axis=1) == y[batch]).sum()
    model.clear_caches()
    result = [float(loss_sum) / len(x), float(correct) / len(x)]
    if verbose:
        print(f"loss: {result[0]:.4f} - accuracy: {result[1]:.4f}")
    return {"loss": result[0], "accuracy": result[1]} if return_dict else result


def predict(model, x, batch_size: int = 32, verbose: int = 0):
    """Logits ``(N, classes)`` as a NumPy array, computed ``batch_size`` images at a time
    (only one batch's intermediate arrays exist at any moment)."""
    _check_batch_size(batch_size, "predict")
    x, _ = _check_data(model, x, None, "predict")
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
