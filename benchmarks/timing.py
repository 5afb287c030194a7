"""Timing a runner, and what the seconds become: median step time, steps/s, epoch time.

A runner (``runners.py``, ``matmul_floor.py``) offers ``step(j)``, ``sync()`` and
``predict(batch_size)``. The clock starts and stops only after ``sync()``, so work a
GPU still has queued is counted where it belongs. ``rounded`` makes the JSON lines
of every benchmark script readable.
"""

from __future__ import annotations

import math
import statistics
import time

EPOCH_IMAGES = 60_000  # one epoch of Fashion-MNIST: ceil(60000 / B) steps
PREDICT_IMAGES = 10_000  # the test set
PREDICT_BATCH = 1000


def warm_up(runner, steps: int, n_batches: int) -> None:
    """Untimed steps: buffers are allocated, kernels compiled, graphs traced."""
    for k in range(steps):
        runner.step(k % n_batches)
    runner.sync()


def time_steps(runner, steps: int, first: int, n_batches: int) -> float:
    """Seconds per step over ``steps`` steps, from batch ``first`` (wrapping at ``n_batches``)."""
    runner.sync()
    start = time.perf_counter()
    for k in range(steps):
        runner.step((first + k) % n_batches)
    runner.sync()
    return (time.perf_counter() - start) / steps


def time_predict(runner) -> float:
    """Seconds for one ``predict`` of the test images at batch 1000."""
    runner.sync()
    start = time.perf_counter()
    runner.predict(PREDICT_BATCH)  # returns host (NumPy) logits: finished work
    return time.perf_counter() - start


def train_stats(seconds: list[float], batch_size: int) -> dict:
    """Median step time and what it implies for one 60,000-image epoch."""
    per_step = statistics.median(seconds)
    return {
        "ms_per_step": 1e3 * per_step,
        "steps_per_s": 1.0 / per_step,
        "epoch_s": math.ceil(EPOCH_IMAGES / batch_size) * per_step,
        "ms_per_step_reps": [round(1e3 * s, 3) for s in seconds],
    }


def predict_stats(seconds: list[float]) -> dict:
    """Images per second of the median ``predict`` time."""
    return {"images_per_s": PREDICT_IMAGES / statistics.median(seconds)}


def rounded(value):
    """Floats rounded to 4 decimals, for a readable JSON line."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value
