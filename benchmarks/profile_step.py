"""Where the time of one tinycnn training step goes: layer by layer, forward and backward.

One training step of the seed network is run by hand, the way
``tinycnn.training.train_step`` runs it, with a stopwatch around every piece:

    each layer's forward  ->  loss forward  ->  loss backward
    ->  each layer's backward (last to first)  ->  optimizer (Adam) update

plus the accuracy count ``(logits.argmax(1) == y).sum()`` that ``train_step``
also does. After ``--warmup`` untimed steps, ``--repeats`` steps are timed and
each piece's median is reported, with its share of the step. The whole
``train_step`` is also timed without the stopwatches in between, as a check
that the pieces add up.

Examples::

    python benchmarks/profile_step.py                    # batch 64, 20 repeats
    python benchmarks/profile_step.py --batch-size 128 --json
    python benchmarks/profile_step.py --backend cupy     # synchronizes around every piece
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import tinycnn  # before NumPy: it sets OPENBLAS_THREAD_TIMEOUT, which OpenBLAS reads on load

# isort: split
import numpy as np

# Shared with epoch_time.py: modules next to this script (its folder is first on sys.path).
from threads import configure_threads
from timing import rounded  # (the same JSON rounding as the epoch benchmark)

from tinycnn.models.fusion import ConvReluPool, plan


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps (default 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="BLAS/numba threads")
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    return parser.parse_args(argv)


def build(batch_size: int, seed: int):
    """The compiled seed network and one random batch (on the active backend)."""
    model = tinycnn.models.fashion_mnist_cnn(seed=seed)
    model.compile(optimizer=tinycnn.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.build((28, 28, 1))
    rng = np.random.default_rng(seed)
    x = rng.random((batch_size, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, batch_size, dtype=np.int64)
    return model, tinycnn.to_backend(x), tinycnn.to_backend(y)


class Stopwatch:
    """Collects the seconds each named piece takes, waiting for the GPU around it."""

    def __init__(self):
        self.seconds: dict[str, list[float]] = {}

    def run(self, key: str, fn, *args, **kwargs):
        """Call ``fn(*args, **kwargs)``, add its duration under ``key``, return its result."""
        tinycnn.backend.synchronize()
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        tinycnn.backend.synchronize()
        self.seconds.setdefault(key, []).append(time.perf_counter() - start)
        return result


def step_name(step) -> str:
    """A layer's name, or "conv2d+max_pooling2d" for a fused pair (models/fusion.py)."""
    return f"{step.conv.name}+{step.pool.name}" if isinstance(step, ConvReluPool) else step.name


def fused_algorithm(step, shapes: dict) -> str:
    """How the fused pair's convolution runs on the CPU: "im2col" or "winograd"
    (kernels/cpu_conv.py; it computes only the outputs the pooling windows cover)."""
    from tinycnn.kernels import cpu_conv

    h, w, _ = shapes[step.conv.name]
    computed = cpu_conv.pooled_region(h, w, *step.pool.pool_size)
    return cpu_conv.conv_algorithm(step.conv.params["kernel"].shape, 1, computed)


def profiled_step(model, x, y, watch: Stopwatch) -> None:
    """One training step, exactly as ``train_step`` does it (with the same fused
    layer pairs as ``Sequential.forward``), every piece timed."""
    steps = plan(model.layers, x)
    out = x
    for step in steps:
        out = watch.run(
            ("forward", step_name(step)), step.forward, out, training=True, check_finite=False
        )
    logits = out
    watch.run(("forward", "loss"), model.loss.forward, logits, y, check=False)
    grad = watch.run(("backward", "loss"), model.loss.backward)
    for k in range(len(steps) - 1, -1, -1):
        step = steps[k]
        grad = watch.run(("backward", step_name(step)), step.backward, grad, input_grad=k > 0)
    watch.run(("update", "adam"), model.optimizer.step, model.layers)
    watch.run(("forward", "accuracy"), lambda: (logits.argmax(axis=1) == y).sum())


def time_train_step(model, x, y, repeats: int) -> float:
    """Median seconds of an un-instrumented ``tinycnn.training.train_step``."""
    times = []
    for _ in range(repeats):
        tinycnn.backend.synchronize()
        start = time.perf_counter()
        tinycnn.training.train_step(model, x, y)
        tinycnn.backend.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def table_rows(model, x, medians: dict) -> list[dict]:
    """One row per step (layer or fused pair), then loss, accuracy and the optimizer:
    times in ms, share in %."""
    shapes = dict(zip([layer.name for layer in model.layers], model.output_shapes(), strict=True))
    kinds = {layer.name: type(layer).__name__ for layer in model.layers}
    steps = plan(model.layers, x)
    for step in steps:
        if isinstance(step, ConvReluPool):
            shapes[step_name(step)] = shapes[step.pool.name]
            kinds[step_name(step)] = f"Conv+ReLU+Pool, {fused_algorithm(step, shapes)}"
    names = [step_name(step) for step in steps] + ["loss", "accuracy", "adam"]
    kinds.update(loss="SoftmaxCrossEntropy", accuracy="argmax == y", adam="Adam update")
    rows = []
    for name in names:
        forward = medians.get(("forward", name))
        backward = medians.get(("backward", name), medians.get(("update", name)))
        rows.append(
            {
                "piece": name,
                "kind": kinds[name],
                "output_shape": list(shapes.get(name, ())),
                "forward_ms": None if forward is None else 1e3 * forward,
                "backward_ms": None if backward is None else 1e3 * backward,
                "total_ms": 1e3 * ((forward or 0.0) + (backward or 0.0)),
            }
        )
    step_ms = sum(row["total_ms"] for row in rows)
    for row in rows:
        row["percent"] = 100.0 * row["total_ms"] / step_ms
    return rows


def ms(value) -> str:
    """A time in ms for the table, or "-" where the piece has none."""
    return "-" if value is None else f"{value:.3f}"


def print_table(rows: list[dict], step_ms: float, args) -> None:
    print(
        f"tinycnn seed network, batch {args.batch_size}, backend {args.backend}, "
        f"{args.threads} threads: median of {args.repeats} steps "
        "(the Adam update is in the backward column)"
    )
    print(
        f"{'piece':<28}{'kind':<26}{'output':>14}{'forward ms':>12}{'backward ms':>13}"
        f"{'total ms':>10}{'% of step':>11}"
    )
    for row in rows:
        shape = "x".join(str(d) for d in row["output_shape"]) or "-"
        print(
            f"{row['piece']:<28}{row['kind']:<26}{shape:>14}{ms(row['forward_ms']):>12}"
            f"{ms(row['backward_ms']):>13}{row['total_ms']:>10.3f}{row['percent']:>10.1f}%"
        )
    parts = sum(row["total_ms"] for row in rows)
    print(f"{'sum of the pieces':<76}{parts:>10.3f}")
    print(f"{'train_step, not instrumented':<76}{step_ms:>10.3f}")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.backend == "cupy":
        try:
            tinycnn.set_backend("cupy")
        except RuntimeError as err:  # no CuPy or no GPU: say so in one line
            sys.exit(f"--backend cupy: {err}")
    configure_threads(args.threads, ["tinycnn"])  # NumPy's BLAS and numba's kernels
    model, x, y = build(args.batch_size, args.seed)
    for _ in range(args.warmup):
        profiled_step(model, x, y, Stopwatch())
    watch = Stopwatch()
    for _ in range(args.repeats):
        profiled_step(model, x, y, watch)
    medians = {key: statistics.median(s) for key, s in watch.seconds.items()}
    rows = table_rows(model, x, medians)
    step_ms = 1e3 * time_train_step(model, x, y, args.repeats)
    print_table(rows, step_ms, args)
    if args.json:
        report = {
            "benchmark": "profile_step",
            "batch_size": args.batch_size,
            "backend": args.backend,
            "threads": args.threads,
            "repeats": args.repeats,
            "rows": rows,
            "sum_ms": sum(row["total_ms"] for row in rows),
            "train_step_ms": step_ms,
        }
        print(json.dumps(rounded(report)))


if __name__ == "__main__":
    main()
