"""Training speed of the seed network: tinycnn, PyTorch and Keras side by side.

The same network (862,410 parameters), the same optimizer (Adam, lr 1e-3,
epsilon 1e-7), the same batches and the same number of threads for every
framework::

    Conv2D(64, 3x3, relu) -> MaxPool(2) -> Conv2D(64, 3x3, relu) -> MaxPool(2)
    -> Flatten (1600) -> Dense(512, relu) -> Dense(10) -> softmax cross-entropy

Every measurement runs in a FRESH PROCESS (a "worker": this script started again
with ``--worker NAME``). Why not time all frameworks in one process? Each one
brings its own pool of threads: NumPy's OpenBLAS (tinycnn and the matmul floor),
numba's workqueue (tinycnn's kernels), PyTorch's OpenMP pool and TensorFlow's
Eigen pool. A pool does not go quiet the moment its work is done: threads may
busy-wait ("spin") for a while, so that the next parallel region starts sooner.
In one process those threads stay alive, and when the next framework starts they
compete with its threads for the same cores; on a 2-core machine that is ruinous.
Timed together in one process, tinycnn took 140 ms/step and PyTorch 299 ms/step
at batch 64, when each alone takes about 25 ms. A process that exits takes its
threads with it, so a worker finds the cores free.

How the timing works:

1. The parent process (this script without ``--worker``) never imports PyTorch
   or TensorFlow and trains nothing, so it starts no thread pool: it only starts
   workers, one after another, and collects the one JSON line each prints.
2. A training worker generates its data from the seed (or loads Fashion-MNIST
   with ``--real``), builds one model, runs ``--warmup`` untimed steps (buffers
   are allocated, numba kernels loaded, TensorFlow graphs traced), then times
   ``--steps`` steps. Same seed and batch size: the same batches for everyone.
3. INTERLEAVED repetitions: ``for rep: for batch size: for framework: worker``,
   so a background job that slows the machine for a while hurts every framework
   alike instead of one of them.
4. Reported: the median over the ``--reps`` repetitions, as steps per second and
   the implied epoch time for 60,000 images (ceil(60000 / B) steps).

The "matmul floor" row times only the matrix multiplies one training step needs
(im2col convolutions and dense layers, forward and backward) with NumPy's BLAS:
no framework doing that arithmetic can be much faster on the same BLAS and threads
(tinycnn does less of it: Winograd and the pooled-region crop, docs/performance.md).

Also measured, each in its own worker: predict throughput (10,000 images, batch
1000), the peak memory (RSS) of every training worker, and tinycnn's training
memory at batch 128 beyond its data.

Where the pieces are (all in this folder; the script's folder is on ``sys.path``)::

    epoch_time.py    this file: command line, starting workers, interleaving, report
    workers.py       what one worker does (train, predict, memory) in its own process
    runners.py       tinycnn, PyTorch and Keras: model builders behind one interface
    matmul_floor.py  the reference row: only the matrix multiplies of a step
    timing.py        timing a runner; median step time, epoch time, JSON rounding
    data.py          the seeded random images, or Fashion-MNIST with ``--real``
    threads.py       the same threads for every library; which pools were loaded
    memory.py        peak resident memory of a process (VmHWM)

Examples::

    python benchmarks/epoch_time.py                          # 50 steps x 3 reps, B = 32, 64, 128
    python benchmarks/epoch_time.py --steps 5 --reps 1       # smoke run
    python benchmarks/epoch_time.py --frameworks tinycnn,torch --json
    python benchmarks/epoch_time.py --backend cupy           # tinycnn on CuPy, torch on CUDA
    python benchmarks/epoch_time.py --worker torch --batch-size 64 --steps 20   # one worker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # silence TensorFlow's start-up banner
# tinycnn before NumPy: it sets OPENBLAS_THREAD_TIMEOUT, which OpenBLAS reads when NumPy
# loads it, here (for the matmul floor too) and in the workers, which inherit it.
import tinycnn  # noqa: E402, F401

# isort: split
# The modules next to this script (Python puts its folder first on sys.path).
# None imports PyTorch or TensorFlow at import time: this process stays free of their threads.
from matmul_floor import FLOOR  # noqa: E402
from timing import PREDICT_BATCH, PREDICT_IMAGES, predict_stats, rounded, train_stats  # noqa: E402
from workers import MEMORY_BATCH, TASKS, WORKERS, worker_main  # noqa: E402

FRAMEWORKS = ("tinycnn", "torch", "keras")
PEERS = ("torch", "keras")
KERAS_METHODS = ("tf_function", "train_on_batch", "xla")

# ---------------------------------------------------------------------------- arguments


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batch-sizes", default="32,64,128", help="comma-separated (default 32,64,128)"
    )
    parser.add_argument("--steps", type=int, default=50, help="timed steps per run (default 50)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="threads for every framework"
    )
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="subset, in run order")
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    parser.add_argument("--real", action="store_true", help="use Fashion-MNIST, not random data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keras-method",
        choices=KERAS_METHODS,
        default="tf_function",
        help="how a Keras step runs (default tf_function, see README)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory worker")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    worker = parser.add_argument_group("worker (one measurement, one JSON line on stdout)")
    worker.add_argument("--worker", choices=WORKERS, help="be a worker for this framework")
    worker.add_argument("--task", choices=TASKS, default="train", help="what the worker measures")
    worker.add_argument("--batch-size", type=int, default=64, help="the worker's batch size")
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    args.frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = set(args.frameworks) - set(FRAMEWORKS)
    if unknown:
        parser.error(f"unknown frameworks {sorted(unknown)}; choose from {FRAMEWORKS}")
    if args.steps < 1 or args.reps < 1 or args.warmup < 0:
        parser.error("--steps and --reps must be at least 1, --warmup at least 0")
    return args


# ---------------------------------------------------------------------------- frameworks


def installed(name: str) -> bool:
    """True when ``import name`` would find the package (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(name) is not None


def label(name: str) -> str:
    """A worker's name as the tables and the JSON show it ("floor" -> "matmul floor")."""
    return FLOOR if name == "floor" else name


def skip_reason(name: str, backend: str) -> str | None:
    """Why framework ``name`` cannot be timed in this run, or None when it can.

    Only cheap checks (no framework is imported here); a worker that fails anyway,
    say torch without a CUDA device, is skipped from then on with its error.
    """
    need = {"tinycnn": [], "torch": ["torch"], "keras": ["keras", "tensorflow"]}[name]
    missing = [package for package in need if not installed(package)]
    if missing:
        return f"{', '.join(missing)} not installed (pip install -e '.[bench]')"
    if name == "keras" and backend == "cupy":
        return "Keras is timed on the CPU only (tensorflow-cpu)"
    return None


def available_frameworks(args) -> tuple[list[str], dict]:
    """The frameworks this run can time, and a note for each one it skips."""
    chosen, skipped = [], {}
    for name in args.frameworks:
        reason = skip_reason(name, args.backend)
        if reason:
            skipped[name] = reason
        else:
            chosen.append(name)
    return chosen, skipped


# ---------------------------------------------------------------------------- parent


def log(message: str) -> None:
    """Progress on stderr, so that stdout holds only the results."""
    print(message, file=sys.stderr, flush=True)


def worker_command(args, name: str, task: str, batch_size: int) -> list[str]:
    """The command line that runs one worker with this run's settings."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", name, "--task", task]
    command += ["--batch-size", str(batch_size), "--steps", str(args.steps)]
    command += ["--warmup", str(args.warmup), "--threads", str(args.threads)]
    command += ["--seed", str(args.seed), "--backend", args.backend]
    command += ["--keras-method", args.keras_method] + (["--real"] if args.real else [])
    return command


def run_worker(args, name: str, task: str, batch_size: int = PREDICT_BATCH) -> dict:
    """Run one worker in a fresh process; its JSON result, or ``{"error": ...}``.

    The worker's stderr (TensorFlow's log lines, for one) is kept out of the
    progress output; on failure its last line becomes the error.
    """
    done = subprocess.run(
        worker_command(args, name, task, batch_size), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {"error": last[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


class Isolated:
    """Runs the workers for one benchmark run, interleaved, and collects their results.

    A worker that fails (say torch with no CUDA device) is reported once and not
    started again: ``failed`` maps its name to the error.
    """

    def __init__(self, args, names: list[str]):
        self.args = args
        self.names = names
        self.failed: dict[str, str] = {}
        self.results: list[tuple[str, dict]] = []  # (worker name, result), for the environment

    def run(self, name: str, task: str, batch_size: int, what: str):
        """One worker; logs ``what: outcome`` and returns its result, or None if it failed."""
        if name in self.failed:
            return None
        result = run_worker(self.args, name, task, batch_size)
        if "error" in result:
            self.failed[name] = f"worker failed: {result['error']}"
            log(f"{what}: failed ({result['error']}); not run again")
            return None
        self.results.append((name, result))
        return result

    def train(self) -> dict:
        """Every (rep, batch size, worker), interleaved; the table rows per batch size."""
        args, workers = self.args, [*self.names, "floor"]
        runs = {b: {name: [] for name in workers} for b in args.batch_sizes}
        for rep in range(args.reps):
            for b in args.batch_sizes:
                for name in workers:
                    what = f"rep {rep + 1}/{args.reps} B={b} {label(name)}"
                    result = self.run(name, "train", b, what)
                    if result:
                        log(f"{what}: {1e3 * result['s_per_step']:.1f} ms/step")
                        runs[b][name].append(result)
        return {b: train_rows(by_name, b) for b, by_name in runs.items()}

    def predict(self) -> dict:
        """Predict throughput of each framework, interleaved over the reps."""
        seconds = {name: [] for name in self.names}
        for rep in range(self.args.reps):
            for name in self.names:
                what = f"predict rep {rep + 1}/{self.args.reps} {name}"
                result = self.run(name, "predict", PREDICT_BATCH, what)
                if result:
                    s = result["s_per_predict"]
                    log(f"{what}: {PREDICT_IMAGES / s:.0f} images/s")
                    seconds[name].append(s)
        return {name: predict_stats(s) for name, s in seconds.items() if s}

    def setup(self) -> dict:
        """How each framework was set up (from its last training worker)."""
        return {label(n): r["info"] for n, r in self.results if "info" in r}

    def environment(self) -> dict:
        """Versions, thread settings and thread pools, merged over all workers."""
        found = {"versions": {}, "threads_set": {}, "threadpools": {}}
        for name, result in self.results:
            env = result["environment"]
            found["versions"].update(env["versions"])
            found["threads_set"].update(env["threads_set"])
            for pool in env["threadpools"]:
                key = json.dumps(pool, sort_keys=True)
                seen = found["threadpools"].setdefault(key, {**pool, "seen_in": []})["seen_in"]
                if label(name) not in seen:
                    seen.append(label(name))
        found["threadpools"] = list(found["threadpools"].values())
        return found


def train_rows(by_name: dict, batch_size: int) -> dict:
    """The training table's rows at one batch size, from each worker's results."""
    rows = {}
    for name, results in by_name.items():
        if results:
            rows[label(name)] = train_stats([r["s_per_step"] for r in results], batch_size)
            rows[label(name)]["peak_rss_mb"] = max(r["peak_rss_mb"] for r in results)
    rows["ratios"] = ratios(rows)
    return rows


def ratios(rows: dict) -> dict:
    """tinycnn's time divided by each peer's (below 1: tinycnn is faster)."""
    if "tinycnn" not in rows:
        return {}
    mine = rows["tinycnn"]["epoch_s"]
    peers = {p: rows[p]["epoch_s"] for p in PEERS if p in rows}
    out = {f"tinycnn_over_{p}": mine / t for p, t in peers.items()}
    if peers:
        fastest = min(peers, key=peers.get)
        out["fastest_peer"] = fastest
        out["tinycnn_over_fastest_peer"] = mine / peers[fastest]
    if FLOOR in rows:
        out["tinycnn_over_matmul_floor"] = mine / rows[FLOOR]["epoch_s"]
    return out


def run_isolated(args, names: list[str]) -> dict:
    """Training and predict, each measurement in its own worker process."""
    isolated = Isolated(args, names)
    train = isolated.train()
    predict = isolated.predict()
    return {
        "skipped": isolated.failed,
        "setup": isolated.setup(),
        "train": train,
        "predict": predict,
        "environment": isolated.environment(),
    }


# ---------------------------------------------------------------------------- report


def print_header(report: dict) -> None:
    """Versions, thread pools, skipped frameworks and how the timing was done."""
    env = report["environment"]
    libs = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    print(f"{libs}; {env['cpu_count']} CPUs, {report['threads']} threads per framework")
    for pool in env["threadpools"]:
        where = f" ({', '.join(pool['seen_in'])})" if "seen_in" in pool else ""
        fields = ", ".join(f"{k}={v}" for k, v in pool.items() if k != "seen_in")
        print(f"  threadpool{where}: {fields}")
    print(f"  OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']}")
    for name, why in report["skipped"].items():
        print(f"  skipped {name}: {why}")
    print(
        f"\nTraining on {report['data']} data, backend {report['backend']}: "
        f"{report['steps']} steps x {report['reps']} interleaved reps (median), "
        "each run in a fresh process, "
        f"after {report['warmup']} warm-up steps; Keras step: {report['keras_method']}"
    )


def print_training(train: dict) -> None:
    """The training table: one row per batch size and framework."""
    print(
        f"{'batch':>5}  {'framework':<13}{'ms/step':>9}{'steps/s':>9}{'epoch s':>9}"
        f"{'peak MB':>9}{'tinycnn time / this':>21}"
    )
    for batch_size, rows in train.items():
        mine = rows.get("tinycnn", {}).get("epoch_s")
        for name, row in rows.items():
            if name == "ratios":
                continue
            ratio = f"{mine / row['epoch_s']:.2f}" if mine else "-"
            peak = f"{row['peak_rss_mb']:.0f}" if "peak_rss_mb" in row else "-"
            print(
                f"{batch_size:>5}  {name:<13}{row['ms_per_step']:>9.2f}"
                f"{row['steps_per_s']:>9.1f}{row['epoch_s']:>9.1f}{peak:>9}{ratio:>21}"
            )


def print_footer(report: dict) -> None:
    """Predict throughput and memory."""
    print(f"\nPredict, {PREDICT_IMAGES} images at batch {PREDICT_BATCH}:")
    for name, row in report["predict"].items():
        print(f"  {name:<9}{row['images_per_s']:>10.0f} images/s")
    print("\npeak MB: the peak RSS of the training worker (its libraries, model and data)")
    probe = report["memory"].get("tinycnn_train")
    if probe and "error" not in probe:
        print(
            f"tinycnn training at batch {probe['batch_size']} (own process): "
            f"{probe['train_mb_beyond_data']:.0f} MB beyond the data"
        )
    elif probe:
        print(f"tinycnn memory probe failed: {probe['error']}")


# ---------------------------------------------------------------------------- main


def run_benchmarks(args) -> dict:
    """Everything but the memory probe; returns the report as a dict."""
    names, skipped = available_frameworks(args)
    for name, why in skipped.items():
        log(f"skipping {name}: {why}")
    measured = run_isolated(args, names)
    return {
        "benchmark": "epoch_time",
        "isolation": "process",  # every measurement in its own worker process
        "backend": args.backend,
        "data": "fashion_mnist" if args.real else "synthetic",
        "threads": args.threads,
        "steps": args.steps,
        "reps": args.reps,
        "warmup": args.warmup,
        "keras_method": args.keras_method if "keras" in names else None,
        "skipped": {**skipped, **measured["skipped"]},
        "setup": measured["setup"],
        "train": measured["train"],
        "predict": measured["predict"],
        "environment": {
            "cpu_count": os.cpu_count(),
            **measured["environment"],
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "platform": platform.platform(),
        },
        "memory": {},  # main adds the memory worker's result
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker_main(args)
        return
    if args.backend == "cupy" and not installed("cupy"):
        sys.exit("--backend cupy: CuPy is not installed")
    report = run_benchmarks(args)
    if not args.no_memory and "tinycnn" in report["setup"]:
        log("memory: tinycnn alone in a worker")
        probe = run_worker(args, "tinycnn", "memory", MEMORY_BATCH)
        probe.pop("environment", None)  # the same as the training workers'
        report["memory"]["tinycnn_train"] = probe
    print_header(report)
    print_training(report["train"])
    print_footer(report)
    if args.json:
        print(json.dumps(rounded(report)))


if __name__ == "__main__":
    main()
