"""A worker: one measurement of ``epoch_time.py`` in a fresh process, one JSON line out.

The parent runs ``python benchmarks/epoch_time.py --worker NAME --task TASK`` (with
the run's ``--batch-size``, ``--steps``, ``--warmup``, ``--threads``, ...) and reads
the last line the worker prints. A worker is handy on its own too, for example::

    python benchmarks/epoch_time.py --worker torch --batch-size 64 --steps 20

NAME is a framework (``runners.py``) or "floor" (``matmul_floor.py``); TASK is

* ``train``: build one model, ``--warmup`` untimed steps, then time ``--steps`` steps;
* ``predict``: one untimed predict of the 10,000 test images, then one timed;
* ``memory`` (tinycnn only): how far training at batch 128 lifts the peak memory.

Why a fresh process for each: see ``epoch_time.py``.
"""

from __future__ import annotations

import json
import platform
import sys

import numpy as np
from data import load_data
from matmul_floor import MatmulFloor
from memory import own_peak_rss_mb, proc_status_mb, reset_peak_rss
from runners import KerasRunner, TinycnnRunner, TorchRunner
from threads import blas_info, configure_threads
from timing import EPOCH_IMAGES, PREDICT_BATCH, PREDICT_IMAGES, time_predict, time_steps, warm_up

import tinycnn

RUNNERS = {
    "tinycnn": TinycnnRunner,
    "torch": TorchRunner,
    "keras": KerasRunner,
    "floor": MatmulFloor,
}
WORKERS = tuple(RUNNERS)  # the values of --worker
TASKS = ("train", "predict", "memory")
MEMORY_BATCH = 128
MEMORY_STEPS = 10


def versions(names: list[str]) -> dict:
    """Python and library versions (only of the frameworks in ``names``)."""
    found = {"python": platform.python_version(), "numpy": np.__version__}
    found["tinycnn"] = tinycnn.__version__
    if "torch" in names:
        import torch

        found["torch"] = torch.__version__
    if "keras" in names:
        import keras
        import tensorflow as tf

        found["tensorflow"] = tf.__version__
        found["keras"] = keras.__version__
    return found


def train_batches(args) -> int:
    """How many different batches a training worker needs: warm-up plus timed steps."""
    return min(args.warmup + args.steps, EPOCH_IMAGES // args.batch_size)


def worker_train(args) -> dict:
    """Build one model, warm it up, time ``--steps`` steps at ``--batch-size``."""
    n_batches = train_batches(args)
    if args.worker == "floor":
        data = None  # the floor multiplies random matrices of its own
    else:
        data = load_data(args, n_train=n_batches * args.batch_size, n_test=0)
    runner = RUNNERS[args.worker](args.batch_size, data, args)
    warm_up(runner, args.warmup, n_batches)
    seconds = time_steps(runner, args.steps, args.warmup, n_batches)
    return {"s_per_step": seconds, "peak_rss_mb": own_peak_rss_mb(), "info": runner.info}


def worker_predict(args) -> dict:
    """Time one ``predict`` of 10,000 test images, after one untimed (warm-up) predict."""
    data = load_data(args, n_train=0, n_test=PREDICT_IMAGES)
    runner = RUNNERS[args.worker](PREDICT_BATCH, data, args)
    runner.predict(PREDICT_BATCH)  # warm-up: graph tracing, buffers
    return {"s_per_predict": time_predict(runner)}


def worker_memory(args) -> dict:
    """tinycnn's training memory at batch 128, beyond the libraries and the data.

    The baseline is the memory once the libraries are imported, the data loaded
    and the kernels compiled (a throw-away model trains on batches of 2); the
    peak counter is then reset. The result is how far training at batch 128
    (weights, Adam state, activations, buffers) pushes the peak above it.
    """
    data = load_data(args, n_train=MEMORY_STEPS * MEMORY_BATCH, n_test=0)
    warm = TinycnnRunner(2, data, args)
    warm_up(warm, 2, len(data.x) // 2)
    del warm
    if reset_peak_rss():
        baseline = proc_status_mb("VmRSS")
    else:
        baseline = own_peak_rss_mb()
    runner = TinycnnRunner(MEMORY_BATCH, data, args)
    warm_up(runner, MEMORY_STEPS, MEMORY_STEPS)
    peak = own_peak_rss_mb()
    result = {
        "batch_size": MEMORY_BATCH,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
        "train_mb_beyond_data": peak - baseline,
    }
    if args.backend == "cupy":
        import cupy

        result["gpu_pool_mb"] = cupy.get_default_memory_pool().total_bytes() / 1e6
    return result


def worker_main(args) -> None:
    """Run one measurement in this (fresh) process and print its result as JSON."""
    if args.worker == "floor" and args.task != "train":
        sys.exit("--worker floor: the matmul floor only has a training step")
    if args.task == "memory" and args.worker != "tinycnn":
        sys.exit("--task memory measures tinycnn only")
    if args.backend == "cupy":
        tinycnn.set_backend("cupy")  # fails with a one-line reason where CuPy cannot run
    names = ["tinycnn"] if args.worker == "floor" else [args.worker]
    threads_set = configure_threads(args.threads, names)
    tasks = {"train": worker_train, "predict": worker_predict, "memory": worker_memory}
    result = tasks[args.task](args)
    result["environment"] = {
        "versions": versions(names),
        "threadpools": blas_info(),  # after the work: the pools the framework really loaded
        "threads_set": threads_set,
    }
    print(json.dumps(result))
