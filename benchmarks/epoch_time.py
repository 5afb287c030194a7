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
memory at batch 128 beyond its data. ``--in-process`` runs everything in one
process as older versions did, to see the interference for yourself.

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
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # silence TensorFlow's start-up banner
# What `import tinycnn` sets before NumPy loads OpenBLAS (see tinycnn/__init__.py); this
# script imports NumPy first, so it says it here. It applies to the matmul floor too.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "10")

import numpy as np  # noqa: E402

import tinycnn  # noqa: E402

EPOCH_IMAGES = 60_000
PREDICT_IMAGES = 10_000
PREDICT_BATCH = 1000
MEMORY_BATCH = 128
MEMORY_STEPS = 10
REWARM_STEPS = 2  # --in-process: untimed steps before each run, after the others ran
FRAMEWORKS = ("tinycnn", "torch", "keras")
PEERS = ("torch", "keras")
FLOOR = "matmul floor"  # the floor's name in tables and JSON; "floor" on the command line
WORKERS = (*FRAMEWORKS, "floor")
TASKS = ("train", "predict", "memory")
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
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="time all frameworks in this one process (the thread pools interfere; see README)",
    )
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


# ---------------------------------------------------------------------------- environment


def installed(name: str) -> bool:
    """True when ``import name`` would find the package (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(name) is not None


def configure_threads(threads: int, names: list[str]) -> dict:
    """Give the libraries that ``names`` use ``threads`` threads; return what was set.

    Must run before TensorFlow executes its first operation: its thread pools are
    fixed at that moment.
    """
    notes = {}
    if "tinycnn" in names:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        notes["numba_threads"] = numba.get_num_threads()
    if "torch" in names:
        import torch

        torch.set_num_threads(threads)
        notes["torch_threads"] = torch.get_num_threads()
    if "keras" in names:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError as err:  # TensorFlow already started
            notes["tf_threads_error"] = str(err)
        notes["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        notes["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    # Last, so that it also reaches any BLAS library the frameworks above loaded.
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")  # NumPy's BLAS (tinycnn, the floor)
    return notes


def blas_info() -> list[dict]:
    """The thread pools threadpoolctl sees (BLAS and OpenMP libraries), trimmed."""
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "prefix", "architecture", "num_threads", "version")
    return [{k: pool.get(k) for k in keys if k in pool} for pool in threadpool_info()]


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


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far, in MB (10^6 bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6  # bytes vs KiB


def proc_status_mb(field: str) -> float | None:
    """``VmRSS`` (now) or ``VmHWM`` (peak) from /proc/self/status in MB; None off Linux.

    Unlike ``ru_maxrss``, which a child process inherits from the parent that
    started it, these describe only this process's own memory.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024 / 1e6  # the value is in kB
    except OSError:
        pass
    return None


def own_peak_rss_mb() -> float:
    """This process's own peak RSS in MB: VmHWM on Linux, ``ru_maxrss`` elsewhere."""
    return proc_status_mb("VmHWM") or peak_rss_mb()


def reset_peak_rss() -> bool:
    """Make the peak (VmHWM) restart from the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------- data


class Data(NamedTuple):
    """Training images and labels, and test images: float32 NHWC in [0, 1], int64."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray


def synthetic_data(seed: int, n_train: int, n_test: int) -> Data:
    """Random images in [0, 1) and random labels, shaped like Fashion-MNIST.

    A worker generates only the images it uses, which takes milliseconds. Same
    seed and same sizes give the same arrays, so every framework's worker at a
    given batch size trains on identical batches. ``random(dtype=float32)`` writes
    float32 directly: no float64 temporary that would inflate the peak memory.
    """
    rng = np.random.default_rng(seed)
    return Data(
        x=rng.random((n_train, 28, 28, 1), dtype=np.float32),
        y=rng.integers(0, 10, n_train, dtype=np.int64),
        x_test=rng.random((n_test, 28, 28, 1), dtype=np.float32),
    )


def prepare_in_chunks(images, chunk: int = 5000):
    """``prepare_images`` a chunk at a time, so no full-size temporary is made."""
    out = np.empty((*images.shape, 1), dtype=np.float32)
    for start in range(0, len(images), chunk):
        out[start : start + chunk] = tinycnn.preprocessing.prepare_images(
            images[start : start + chunk]
        )
    return out


def real_data(n_train: int, n_test: int) -> Data:
    """The first images of Fashion-MNIST, scaled to [0, 1] float32 with a channel axis."""
    from tinycnn.datasets import fashion_mnist

    (x_train, y_train), (x_test, _) = fashion_mnist.load_data(verbose=False)
    return Data(
        x=prepare_in_chunks(x_train[:n_train]),
        y=y_train[:n_train].astype(np.int64),
        x_test=prepare_in_chunks(x_test[:n_test]),
    )


def load_data(args, n_train: int, n_test: int) -> Data:
    """``n_train`` training and ``n_test`` test images, real or synthetic."""
    if not args.real:
        return synthetic_data(args.seed, n_train, n_test)
    try:
        return real_data(n_train, n_test)
    except FileNotFoundError as err:
        sys.exit(f"--real: Fashion-MNIST is not available here.\n{err}")


# ---------------------------------------------------------------------------- frameworks
#
# Each runner holds one model and the data in its framework's own format, and
# offers the same four methods:
#   step(j)      one training step on batch j (batch j = images j*B ... (j+1)*B - 1)
#   sync()       wait until queued work has finished (a GPU runs asynchronously)
#   predict(bs)  logits of the test images, bs images at a time
#   info         a dict saying how the framework was set up


class TinycnnRunner:
    """tinycnn on NumPy (or CuPy): ``tinycnn.training.train_step`` per batch."""

    name = "tinycnn"

    def __init__(self, batch_size: int, data: Data, args):
        self.batch_size = batch_size
        self.model = tinycnn.models.fashion_mnist_cnn(seed=args.seed)
        self.model.compile(
            optimizer=tinycnn.optimizers.Adam(1e-3, epsilon=1e-7),
            loss="sparse_categorical_crossentropy",
        )
        self.model.build((28, 28, 1))
        to = tinycnn.to_backend  # a no-op on NumPy; one copy to the GPU on CuPy
        self.x, self.y, self.x_test = to(data.x), to(data.y), to(data.x_test)
        self.info = {"backend": tinycnn.get_backend(), "step": "tinycnn.training.train_step"}

    def step(self, j: int) -> None:
        rows = slice(j * self.batch_size, (j + 1) * self.batch_size)
        tinycnn.training.train_step(self.model, self.x[rows], self.y[rows])

    def sync(self) -> None:
        tinycnn.backend.synchronize()

    def predict(self, batch_size: int):
        return self.model.predict(self.x_test, batch_size=batch_size)


def torch_model(torch):
    """The seed network in PyTorch (NCHW shapes; the data is channels_last in memory)."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(1600, 512),
        nn.ReLU(),
        nn.Linear(512, 10),
    )


def torch_adam(torch, params):
    """Adam(1e-3, eps=1e-7), using the fused kernel when this torch has one for the device."""
    try:
        return torch.optim.Adam(params, lr=1e-3, eps=1e-7, fused=True), "fused"
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=1e-3, eps=1e-7), "default"


class TorchRunner:
    """PyTorch eager mode, channels_last memory format, on CPU (or CUDA)."""

    name = "torch"

    def __init__(self, batch_size: int, data: Data, args):
        import torch

        self.torch = torch
        self.batch_size = batch_size
        self.device = "cuda" if args.backend == "cupy" else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("this torch build sees no CUDA device")
        torch.manual_seed(args.seed)
        fmt = torch.channels_last
        self.model = torch_model(torch).to(self.device, memory_format=fmt).train()
        self.optimizer, adam_kind = torch_adam(torch, self.model.parameters())
        # NHWC arrays seen as NCHW tensors: exactly the channels_last layout, no copy on CPU.
        self.x = torch.from_numpy(data.x).to(self.device).permute(0, 3, 1, 2)
        self.y = torch.from_numpy(data.y).to(self.device)
        self.x_test = torch.from_numpy(data.x_test).to(self.device).permute(0, 3, 1, 2)
        self.info = {"device": self.device, "memory_format": "channels_last", "adam": adam_kind}

    def step(self, j: int) -> None:
        rows = slice(j * self.batch_size, (j + 1) * self.batch_size)
        x, y = self.x[rows], self.y[rows]
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(x)
        loss = self.torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        self.optimizer.step()
        (logits.argmax(dim=1) == y).sum()  # the accuracy count, as tinycnn computes it

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def predict(self, batch_size: int):
        self.model.eval()
        with self.torch.inference_mode():
            parts = [
                self.model(self.x_test[i : i + batch_size])
                for i in range(0, len(self.x_test), batch_size)
            ]
            logits = self.torch.cat(parts).cpu().numpy()
        self.model.train()
        return logits


def keras_model(keras):
    """The seed network in Keras 3 (channels-last, as tinycnn)."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dense(10),
        ]
    )


class KerasRunner:
    """Keras 3 on TensorFlow (CPU).

    ``method`` picks how one step runs:

    * ``"tf_function"``: a ``tf.function`` train step (GradientTape + Adam), the
      leanest graph-mode step: what ``fit`` runs, minus its callbacks and logs.
    * ``"train_on_batch"``: ``model.train_on_batch`` of a compiled model (it also
      updates the loss and accuracy metrics and returns them each step).
    * ``"xla"``: the ``tf.function`` step compiled with XLA (``jit_compile=True``),
      which Keras does not use on CPU-only machines by default.
    """

    name = "keras"

    def __init__(self, batch_size: int, data: Data, args):
        import keras
        import tensorflow as tf

        self.tf = tf
        self.batch_size = batch_size
        self.method = args.keras_method
        keras.utils.set_random_seed(args.seed)
        self.model = keras_model(keras)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.optimizer = keras.optimizers.Adam(1e-3, epsilon=1e-7)
        if self.method == "train_on_batch":
            self.model.compile(optimizer=self.optimizer, loss=self.loss_fn, metrics=["accuracy"])
            self._step = self.model.train_on_batch
        else:
            self.optimizer.build(self.model.trainable_variables)
            self._step = tf.function(self._train_step, jit_compile=self.method == "xla")
        self._forward = tf.function(lambda x: self.model(x, training=False))
        self.x, self.y, self.x_test = data  # NumPy; each batch becomes a tensor per call
        self.info = {"method": self.method, "backend": keras.backend.backend()}

    def _train_step(self, x, y):
        tf = self.tf
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            loss = self.loss_fn(y, logits)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, axis=1) == y, tf.int32))
        return loss, correct

    def step(self, j: int) -> None:
        rows = slice(j * self.batch_size, (j + 1) * self.batch_size)
        self._step(self.x[rows], self.y[rows])

    def sync(self) -> None:
        """Nothing to wait for: on the CPU a step has finished when it returns."""

    def predict(self, batch_size: int):
        parts = [
            self._forward(self.x_test[i : i + batch_size]).numpy()
            for i in range(0, len(self.x_test), batch_size)
        ]
        return np.concatenate(parts)


def floor_shapes(batch_size: int) -> list[tuple[str, tuple, tuple, bool]]:
    """The matrix multiplies of one training step: (what, a shape, b shape, a is transposed).

    For ``transposed`` the product is ``a.T @ b`` with ``a`` stored as given (dW = X^T dY).
    """
    B = batch_size
    conv1 = (B * 26 * 26, 3 * 3 * 1)  # im2col rows: 676 output pixels per image
    conv2 = (B * 11 * 11, 3 * 3 * 64)  # 121 output pixels per image
    return [
        ("conv1 forward", conv1, (9, 64), False),
        ("conv2 forward", conv2, (576, 64), False),
        ("dense forward", (B, 1600), (1600, 512), False),
        ("dense_1 forward", (B, 512), (512, 10), False),
        ("conv1 dW", conv1, (conv1[0], 64), True),
        ("conv2 dW", conv2, (conv2[0], 64), True),
        ("conv2 dX", (conv2[0], 64), (64, 576), False),
        ("dense dW", (B, 1600), (B, 512), True),
        ("dense dX", (B, 512), (512, 1600), False),
        ("dense_1 dW", (B, 512), (B, 10), True),
        ("dense_1 dX", (B, 10), (10, 512), False),
    ]


class MatmulFloor:
    """Only the GEMMs of one training step, on preallocated arrays of tinycnn's backend."""

    name = FLOOR

    def __init__(self, batch_size: int, data: Data | None, args):
        xp = tinycnn.backend.xp()
        rng = np.random.default_rng(args.seed)
        self.products = []
        for _, a_shape, b_shape, transposed in floor_shapes(batch_size):
            a = xp.asarray(rng.random(a_shape, dtype=np.float32))
            b = xp.asarray(rng.random(b_shape, dtype=np.float32))
            a = a.T if transposed else a
            out = xp.empty((a.shape[0], b.shape[1]), dtype=np.float32)
            self.products.append((a, b, out))
        self.xp = xp
        self.info = {"gemms": [what for what, *_ in floor_shapes(batch_size)]}

    def step(self, j: int) -> None:
        for a, b, out in self.products:
            self.xp.matmul(a, b, out=out)

    def sync(self) -> None:
        tinycnn.backend.synchronize()


RUNNERS = {
    "tinycnn": TinycnnRunner,
    "torch": TorchRunner,
    "keras": KerasRunner,
    "floor": MatmulFloor,
}


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


# ---------------------------------------------------------------------------- timing


def warm_up(runner, steps: int, n_batches: int) -> None:
    """Untimed steps: buffers are allocated, kernels compiled, graphs traced."""
    for k in range(steps):
        runner.step(k % n_batches)
    runner.sync()


def time_steps(runner, steps: int, first: int, n_batches: int, rewarm: int = 0) -> float:
    """Seconds per step over ``steps`` steps from batch ``first``, after ``rewarm`` untimed."""
    for k in range(rewarm):
        runner.step((first + k) % n_batches)
    runner.sync()
    start = time.perf_counter()
    for k in range(rewarm, rewarm + steps):
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


# ---------------------------------------------------------------------------- worker
#
# A worker is this script run as ``--worker NAME --task TASK``: it measures one
# thing and prints one JSON line. It is also handy on its own, for example
#   python benchmarks/epoch_time.py --worker torch --batch-size 64 --steps 20


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


# ---------------------------------------------------------------------------- --in-process


def in_process_batch_size(names: list[str], batch_size: int, data: Data, args):
    """Build, warm up and time every framework at one batch size, all in this process.

    Returns the rows and the runners (kept for the predict test).
    """
    n_batches = len(data.x) // batch_size
    runners = {label(name): RUNNERS[name](batch_size, data, args) for name in [*names, "floor"]}
    for runner in runners.values():
        warm_up(runner, args.warmup, n_batches)
    seconds = {name: [] for name in runners}
    for rep in range(args.reps):
        first = (args.warmup + rep * (args.steps + REWARM_STEPS)) % n_batches
        for name, runner in runners.items():
            # REWARM_STEPS wake this framework's thread pool after the others ran.
            s = time_steps(runner, args.steps, first, n_batches, rewarm=REWARM_STEPS)
            log(f"rep {rep + 1}/{args.reps} B={batch_size} {name}: {1e3 * s:.1f} ms/step")
            seconds[name].append(s)
    rows = {name: train_stats(s, batch_size) for name, s in seconds.items()}
    rows["ratios"] = ratios(rows)
    return rows, runners


def in_process_predict(runners: dict, reps: int) -> dict:
    """Predict throughput of every framework runner, interleaved, in this process."""
    runners = {n: r for n, r in runners.items() if hasattr(r, "predict")}
    for runner in runners.values():
        runner.predict(PREDICT_BATCH)  # warm-up (graph tracing, buffers)
    seconds = {name: [] for name in runners}
    for _ in range(reps):
        for name, runner in runners.items():
            seconds[name].append(time_predict(runner))
    return {name: predict_stats(s) for name, s in seconds.items()}


def run_in_process(args, names: list[str]) -> dict:
    """The old way: every framework in this one process (their thread pools interfere)."""
    if args.backend == "cupy":
        tinycnn.set_backend("cupy")
    threads_set = configure_threads(args.threads, names)
    data = load_data(args, n_train=EPOCH_IMAGES, n_test=PREDICT_IMAGES)
    train, runners = {}, {}
    for batch_size in args.batch_sizes:
        train[batch_size], runners = in_process_batch_size(names, batch_size, data, args)
    log("predict")
    return {
        "skipped": {},
        "setup": {name: runner.info for name, runner in runners.items()},
        "train": train,
        "predict": in_process_predict(runners, args.reps),
        "environment": {
            "versions": versions(names),
            "threadpools": blas_info(),
            "threads_set": threads_set,
        },
        "memory": {"peak_rss_mb": peak_rss_mb()},
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
    where = "each run in a fresh process" if report["isolation"] == "process" else "one process"
    print(
        f"\nTraining on {report['data']} data, backend {report['backend']}: "
        f"{report['steps']} steps x {report['reps']} interleaved reps (median), {where}, "
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
    memory = report["memory"]
    if "peak_rss_mb" in memory:
        print(
            f"\nPeak RSS of this process (all frameworks and data): {memory['peak_rss_mb']:.0f} MB"
        )
    else:
        print("\npeak MB: the peak RSS of the training worker (its libraries, model and data)")
    probe = memory.get("tinycnn_train")
    if probe and "error" not in probe:
        print(
            f"tinycnn training at batch {probe['batch_size']} (own process): "
            f"{probe['train_mb_beyond_data']:.0f} MB beyond the data"
        )
    elif probe:
        print(f"tinycnn memory probe failed: {probe['error']}")


def rounded(value):
    """Floats rounded to 4 decimals, for a readable JSON line."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


# ---------------------------------------------------------------------------- main


def run_benchmarks(args) -> dict:
    """Everything but the memory probe; returns the report as a dict."""
    names, skipped = available_frameworks(args)
    for name, why in skipped.items():
        log(f"skipping {name}: {why}")
    measured = run_in_process(args, names) if args.in_process else run_isolated(args, names)
    return {
        "benchmark": "epoch_time",
        "isolation": "none" if args.in_process else "process",
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
        "memory": measured.get("memory", {}),
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
