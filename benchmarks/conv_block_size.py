"""How big should a block of the blocked CPU convolution be?

``tinycnn/kernels/cpu_conv.py`` computes each convolution a block of images at a
time, so that the block's work arrays stay in the CPU cache. Smaller blocks stay
closer to the core; larger ones make larger, more efficient matrix multiplies. This
script trains the seed network with several values of ``cpu_conv.BLOCK_BYTES`` (the
im2col convolutions: the first layer) or, with ``--winograd``, of
``cpu_conv.WINOGRAD_BLOCK_BYTES`` (the Winograd ones: the second layer) in one
process, interleaved step by step (a slow moment on a shared machine then hits
every setting alike), and prints the median step time of each and its ratio to the
current default. The last line is one JSON object.

    python benchmarks/conv_block_size.py                       # batch 64, 80 steps each
    python benchmarks/conv_block_size.py --batch-size 128 --sizes 256,1024,2048,8192
    python benchmarks/conv_block_size.py --winograd --sizes 256,512,768,1024

Sizes are in KiB.
"""

from __future__ import annotations

import argparse
import json
import time

import tinycnn  # noqa: F401  (before NumPy: it sets OPENBLAS_THREAD_TIMEOUT, read on load)

# isort: split
import numpy as np

from tinycnn.kernels import cpu_conv
from tinycnn.models import fashion_mnist_cnn
from tinycnn.training import train_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=80, help="timed steps per size")
    parser.add_argument(
        "--sizes", default="256,512,1024,2048,4096,8192", help="KiB, comma-separated"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--winograd", action="store_true", help="vary WINOGRAD_BLOCK_BYTES, not BLOCK_BYTES"
    )
    args = parser.parse_args()
    sizes = [int(s) * 1024 for s in args.sizes.split(",")]
    constant = "WINOGRAD_BLOCK_BYTES" if args.winograd else "BLOCK_BYTES"
    default = getattr(cpu_conv, constant)

    rng = np.random.default_rng(args.seed)
    n = args.batch_size
    x = rng.random((8 * n, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 8 * n)
    model = fashion_mnist_cnn(seed=args.seed)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")

    times = {size: [] for size in sizes}
    for size in sizes:  # warm up: compile, allocate each size's work arrays
        setattr(cpu_conv, constant, size)
        train_step(model, x[:n], y[:n])
    for step in range(args.steps):
        order = sizes if step % 2 == 0 else sizes[::-1]
        first = (step % 8) * n
        for size in order:
            setattr(cpu_conv, constant, size)
            start = time.perf_counter()
            train_step(model, x[first : first + n], y[first : first + n])
            times[size].append(time.perf_counter() - start)
    setattr(cpu_conv, constant, default)

    medians = {size: float(np.median(t)) * 1e3 for size, t in times.items()}
    reference = medians.get(default, min(medians.values()))
    print(f"seed network, batch {n}, median of {args.steps} interleaved steps per {constant}")
    print(f"{'block KiB':>10} {'ms/step':>9} {'vs default':>11}")
    for size in sizes:
        mark = "  (default)" if size == default else ""
        print(f"{size // 1024:>10} {medians[size]:>9.2f} {medians[size] / reference:>11.3f}{mark}")
    print(
        json.dumps(
            {
                "batch_size": n,
                "steps": args.steps,
                "constant": constant,
                "default_block_kib": default // 1024,
                "ms_per_step": {str(size // 1024): round(medians[size], 3) for size in sizes},
            }
        )
    )


if __name__ == "__main__":
    main()
