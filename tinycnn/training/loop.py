"""The training loop: compile, fit, evaluate, predict, as Keras users know them.

One training step on a batch (x, y) is four lines (see :func:`train_step`):

    logits = model.forward(x, training=True)       # (B, classes)
    loss = loss_fn.forward(logits, y)               # mean over the batch
    model.backward(loss_fn.backward())              # fills every layer's grads
    optimizer.step(model.layers)                    # updates every layer's params

Everything else here is bookkeeping: batches, shuffling, metrics, validation,
progress bars, callbacks, and a clean stop on Ctrl-C.

On the GPU (CuPy backend), the data is copied to the GPU once before the first
epoch, and the loss and accuracy are summed on the GPU: reading a number back to
Python waits for the GPU, so the loop does it only when the progress bar refreshes.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time

import numpy

from .. import backend, losses, optimizers
from ..losses.softmax_cross_entropy import check_class_labels
from .callbacks import History
from .progress import EpochProgress


def compile_model(model, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=None):
    """Attach an optimizer and a loss (objects or Keras names) to ``model``.

    The metric is always accuracy (the only one a classifier of this library needs);
    ``metrics`` is accepted for Keras compatibility.
    """
    if metrics not in (None, [], ["accuracy"], ("accuracy",), ["acc"]):
        raise ValueError(f"Only the 'accuracy' metric is supported, got {metrics!r}.")
    model.optimizer = optimizers.get(optimizer)
    model.loss = losses.get(loss)


def _require_compiled(model, what: str) -> None:
    if model.optimizer is None or model.loss is None:
        raise RuntimeError(
            f"{what}: compile the model first, e.g. "
            "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')."
        )


# ---- one step ------------------------------------------------------------------------
def train_step(model, x, y):
    """One optimisation step. Returns (loss, number correct) as 0-d arrays of the backend."""
    logits = model.forward(x, training=True, check_finite=False)
    loss = model.loss.forward(logits, y, check=False)
    model.backward(model.loss.backward(), input_grad=False)
    model.optimizer.step(model.layers)
    return loss, (logits.argmax(axis=1) == y).sum()


def train_on_batch(model, x, y):
    """One step on one batch, with its inputs checked; returns (loss, accuracy) floats."""
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
    Ctrl-C interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
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
        seed: fixes the sample order (None: fresh randomness each run).
        initial_epoch: epoch to start from (to resume from a checkpoint).
    Returns:
        A :class:`History`; ``history.history["loss"]`` etc. have one value per epoch.
    """
    _require_compiled(model, "fit")
    _check_batch_size(batch_size, "fit")
    x, y = _check_data(model, x, y, "fit")
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
    if seed is None:
        seed = int(numpy.random.SeedSequence().entropy % 2**32)
    x, y = _to_model_backend(model, x, y)
    if validation_data is not None:
        validation_data = _to_model_backend(model, *validation_data)

    history = History()
    callbacks = [history, *(callbacks or [])]
    n, steps = len(x), -(-len(x) // batch_size)
    history.params = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "samples": n}
    for cb in callbacks:
        cb.set_model(model)
    model.stop_training = False
    interrupt = {"stop": False}
    for cb in callbacks:
        cb.on_train_begin()
    with _stop_on_interrupt(interrupt):
        for epoch in range(initial_epoch, epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            logs = _run_epoch(
                model,
                x,
                y,
                batch_size,
                seed,
                epoch,
                shuffle,
                verbose,
                epochs,
                validation_data,
                interrupt,
            )
            if interrupt["stop"]:
                history.interrupted = True
                break
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    for cb in callbacks:
        cb.on_train_end()
    model.clear_caches()
    return history


def _run_epoch(
    model, x, y, batch_size, seed, epoch, shuffle, verbose, epochs, validation_data, interrupt
) -> dict:
    """Train one epoch and evaluate; returns the epoch's logs."""
    xp = backend.get_array_module(x)
    order = backend.to_backend(epoch_order(len(x), seed, epoch, shuffle), backend.backend_of(x))
    steps = -(-len(x) // batch_size)
    progress = EpochProgress(epoch, epochs, steps, verbose)
    loss_sum, correct, seen = xp.zeros((), dtype=xp.float64), xp.zeros((), dtype=xp.int64), 0
    start = time.perf_counter()
    for step in range(steps):
        idx = order[step * batch_size : (step + 1) * batch_size]
        loss, batch_correct = train_step(model, x[idx], y[idx])
        loss_sum += loss * len(idx)  # stays on the device: no synchronisation here
        correct += batch_correct
        seen += len(idx)
        progress.step(
            lambda s=seen, l=loss_sum, c=correct: {"loss": float(l) / s, "accuracy": float(c) / s}
        )
        if interrupt["stop"]:
            break
    logs = {"loss": float(loss_sum) / max(seen, 1), "accuracy": float(correct) / max(seen, 1)}
    logs["epoch_seconds"] = time.perf_counter() - start
    if validation_data is not None and not interrupt["stop"]:
        val_loss, val_acc = evaluate(model, *validation_data, batch_size=max(batch_size, 256))
        logs.update(val_loss=val_loss, val_accuracy=val_acc)
    progress.close(logs)
    return logs


# ---- evaluate and predict ---------------------------------------------------------------------------
def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def evaluate(model, x, y, batch_size: int = 32, verbose: int = 0, return_dict: bool = False):
    """Mean loss and accuracy over ``(x, y)``, batch by batch: ``[loss, accuracy]``."""
    _require_compiled(model, "evaluate")
    _check_batch_size(batch_size, "evaluate")
    x, y = _check_data(model, x, y, "evaluate")
    x, y = _to_model_backend(model, x, y)
    xp = backend.get_array_module(x)
    loss_sum, correct = xp.zeros((), dtype=xp.float64), xp.zeros((), dtype=xp.int64)
    for batch in _batches(len(x), batch_size):
        logits = model.forward(x[batch], training=False, check_finite=False)
        loss_sum += model.loss.forward(logits, y[batch], check=False) * len(logits)
        correct += (logits.argmax(axis=1) == y[batch]).sum()
    model.clear_caches()
    n = max(len(x), 1)
    result = [float(loss_sum) / n, float(correct) / n]
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
