"""Training speed of the seed network: tinycnn, PyTorch and Keras side by side.

The same network (862,410 parameters), the same optimizer (Adam, lr 1e-3,
epsilon 1e-7), the same batches and the same number of threads for every
framework::

    Conv2D(64, 3x3, relu) -> MaxPool(2) -> Conv2D(64, 3x3, relu) -> MaxPool(2)
    -> Flatten (1600) -> Dense(512, relu) -> Dense(10) -> softmax cross-entropy

How the timing works, for each batch size B:

1. Build one model per framework and warm it up (``--warmup`` steps): the first
   steps allocate buffers, compile numba kernels or trace TensorFlow graphs.
2. Repeat ``--reps`` times, INTERLEAVED: time ``--steps`` training steps of
   tinycnn, then of PyTorch, then of Keras, then the matmul floor. A background
   job that slows the machine for a few seconds then hurts every framework
   alike instead of one of them.
3. Report the median over the repetitions: steps per second, and the implied
   epoch time for 60,000 images (ceil(60000 / B) steps).

The "matmul floor" row times only the matrix multiplies one training step needs
(im2col convolutions and dense layers, forward and backward) with NumPy's BLAS:
no framework can be much faster than that on the same BLAS and threads.

Also measured: predict throughput (10,000 images, batch 1000), the peak memory
(RSS) of this process, and, in a separate process that runs only tinycnn,
tinycnn's training memory at batch 128 beyond the dataset.

Examples::

    python benchmarks/epoch_time.py                          # 50 steps x 3 reps, B = 32, 64, 128
    python benchmarks/epoch_time.py --steps 5 --reps 1       # smoke run
    python benchmarks/epoch_time.py --frameworks tinycnn,torch --json
    python benchmarks/epoch_time.py --backend cupy           # tinycnn on CuPy, torch on CUDA
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # silence TensorFlow's start-up banner

import numpy as np  # noqa: E402

import tinycnn  # noqa: E402

EPOCH_IMAGES = 60_000
PREDICT_IMAGES = 10_000
PREDICT_BATCH = 1000
MEMORY_BATCH = 128
MEMORY_STEPS = 10
REWARM_STEPS = 2  # untimed steps before each timed run, after the other frameworks ran
FRAMEWORKS = ("tinycnn", "torch", "keras")
PEERS = ("torch", "keras")
FLOOR = "matmul floor"
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
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocess")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    args.frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = set(args.frameworks) - set(FRAMEWORKS)
    if unknown:
        parser.error(f"unknown frameworks {sorted(unknown)}; choose from {FRAMEWORKS}")
    return args


# ---------------------------------------------------------------------------- environment


def installed(name: str) -> bool:
    """True when ``import name`` would find the package (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(name) is not None


def configure_threads(threads: int, frameworks: list[str]) -> dict:
    """Give every library the same number of threads; return notes on what was set.

    Must run before TensorFlow executes its first operation: its thread pools are
    fixed at that moment.
    """
    notes = {}
    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        notes["numba_threads"] = numba.get_num_threads()
    except ImportError:
        pass
    if "torch" in frameworks:
        import torch

        torch.set_num_threads(threads)
        notes["torch_threads"] = torch.get_num_threads()
    if "keras" in frameworks:
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

    threadpool_limits(limits=threads, user_api="blas")  # NumPy's BLAS (tinycnn)
    return notes


def blas_info() -> list[dict]:
    """The thread pools threadpoolctl sees (BLAS and OpenMP libraries), trimmed."""
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "prefix", "architecture", "num_threads", "version")
    return [{k: pool.get(k) for k in keys if k in pool} for pool in threadpool_info()]


def versions(frameworks: list[str]) -> dict:
    """Python and library versions (only of the libraries this run imported)."""
    found = {"python": platform.python_version(), "numpy": np.__version__}
    found["tinycnn"] = tinycnn.__version__
    if "torch" in frameworks:
        import torch

        found["torch"] = torch.__version__
    if "keras" in frameworks:
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


def reset_peak_rss() -> bool:
    """Make the peak (VmHWM) restart from the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------- data


def synthetic_data(seed: int):
    """Random images in [0, 1) and random labels, shaped like Fashion-MNIST.

    ``random(dtype=float32)`` writes float32 directly: no float64 temporary that
    would inflate the peak-memory reading.
    """
    rng = np.random.default_rng(seed)
    x_train = rng.random((EPOCH_IMAGES, 28, 28, 1), dtype=np.float32)
    y_train = rng.integers(0, 10, EPOCH_IMAGES, dtype=np.int64)
    x_test = rng.random((PREDICT_IMAGES, 28, 28, 1), dtype=np.float32)
    y_test = rng.integers(0, 10, PREDICT_IMAGES, dtype=np.int64)
    return x_train, y_train, x_test, y_test


def prepare_in_chunks(images, chunk: int = 5000):
    """``prepare_images`` a chunk at a time, so no full-size temporary is made."""
    out = np.empty((*images.shape, 1), dtype=np.float32)
    for start in range(0, len(images), chunk):
        out[start : start + chunk] = tinycnn.preprocessing.prepare_images(
            images[start : start + chunk]
        )
    return out


def real_data():
    """Fashion-MNIST, scaled to [0, 1] float32 with a channel axis."""
    from tinycnn.datasets import fashion_mnist

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(verbose=False)
    return (
        prepare_in_chunks(x_train),
        y_train.astype(np.int64),
        prepare_in_chunks(x_test),
        y_test.astype(np.int64),
    )


def load_data(args):
    """(x_train, y_train, x_test, y_test) as NumPy arrays, real or synthetic."""
    if not args.real:
        return synthetic_data(args.seed)
    try:
        return real_data()
    except FileNotFoundError as err:
        sys.exit(f"--real: Fashion-MNIST is not available here.\n{err}")


# ---------------------------------------------------------------------------- frameworks
#
# Each runner holds one model and the data in its framework's own format, and
# offers the same four methods:
#   step(j)      one training step on batch j (batch j = images j*B ... (j+1)*B - 1)
#   sync()       wait until queued work has finished (a GPU runs asynchronously)
#   predict(bs)  logits of the 10,000 test images, bs images at a time
#   info         a dict saying how the framework was set up


class TinycnnRunner:
    """tinycnn on NumPy (or CuPy): ``tinycnn.training.train_step`` per batch."""

    name = "tinycnn"

    def __init__(self, batch_size: int, data, args):
        self.batch_size = batch_size
        self.model = tinycnn.models.fashion_mnist_cnn(seed=args.seed)
        self.model.compile(
            optimizer=tinycnn.optimizers.Adam(1e-3, epsilon=1e-7),
            loss="sparse_categorical_crossentropy",
        )
        self.model.build((28, 28, 1))
        x_train, y_train, x_test, _ = data
        to = tinycnn.to_backend  # a no-op on NumPy; one copy to the GPU on CuPy
        self.x, self.y, self.x_test = to(x_train), to(y_train), to(x_test)
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

    def __init__(self, batch_size: int, data, args):
        import torch

        self.torch = torch
        self.batch_size = batch_size
        self.device = "cuda" if args.backend == "cupy" else "cpu"
        torch.manual_seed(args.seed)
        fmt = torch.channels_last
        self.model = torch_model(torch).to(self.device, memory_format=fmt).train()
        self.optimizer, adam_kind = torch_adam(torch, self.model.parameters())
        x_train, y_train, x_test, _ = data
        # NHWC arrays seen as NCHW tensors: exactly the channels_last layout, no copy on CPU.
        self.x = torch.from_numpy(x_train).to(self.device).permute(0, 3, 1, 2)
        self.y = torch.from_numpy(y_train).to(self.device)
        self.x_test = torch.from_numpy(x_test).to(self.device).permute(0, 3, 1, 2)
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

    def __init__(self, batch_size: int, data, args):
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
        self.x, self.y, self.x_test, _ = data  # NumPy; each batch becomes a tensor per call
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

    def __init__(self, batch_size: int, data, args):
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


RUNNERS = {"tinycnn": TinycnnRunner, "torch": TorchRunner, "keras": KerasRunner}


def skip_reason(name: str, backend: str) -> str | None:
    """Why framework ``name`` cannot be timed in this run, or None when it can."""
    need = {"tinycnn": [], "torch": ["torch"], "keras": ["keras", "tensorflow"]}[name]
    missing = [package for package in need if not installed(package)]
    if missing:
        return f"{', '.join(missing)} not installed (pip install -e '.[bench]')"
    if name == "keras" and backend == "cupy":
        return "Keras is timed on the CPU only (tensorflow-cpu)"
    if name == "torch" and backend == "cupy":
        import torch

        if not torch.cuda.is_available():
            return "this torch build sees no CUDA device"
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


def time_steps(runner, steps: int, first: int, n_batches: int) -> float:
    """Seconds per step over ``steps`` steps, starting at batch ``first``."""
    for k in range(REWARM_STEPS):
        runner.step((first + k) % n_batches)
    runner.sync()
    start = time.perf_counter()
    for k in range(steps):
        runner.step((first + k) % n_batches)
    runner.sync()
    return (time.perf_counter() - start) / steps


def warm_up(runner, steps: int, n_batches: int) -> None:
    """Untimed steps: buffers are allocated, kernels compiled, graphs traced."""
    for k in range(steps):
        runner.step(k % n_batches)
    runner.sync()


def train_stats(seconds: list[float], batch_size: int) -> dict:
    """Median step time and what it implies for one 60,000-image epoch."""
    per_step = statistics.median(seconds)
    return {
        "ms_per_step": 1e3 * per_step,
        "steps_per_s": 1.0 / per_step,
        "epoch_s": math.ceil(EPOCH_IMAGES / batch_size) * per_step,
        "ms_per_step_reps": [round(1e3 * s, 3) for s in seconds],
    }


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


def benchmark_batch_size(names: list[str], batch_size: int, data, args):
    """Build, warm up and time every framework at one batch size (interleaved reps).

    Returns the per-framework results and the runners (kept for the predict test).
    """
    n_batches = len(data[0]) // batch_size
    runners = {name: RUNNERS[name](batch_size, data, args) for name in names}
    runners[FLOOR] = MatmulFloor(batch_size, data, args)
    for runner in runners.values():
        warm_up(runner, args.warmup, n_batches)
    seconds = {name: [] for name in runners}
    for rep in range(args.reps):
        first = (args.warmup + rep * (args.steps + REWARM_STEPS)) % n_batches
        for name, runner in runners.items():
            seconds[name].append(time_steps(runner, args.steps, first, n_batches))
    rows = {name: train_stats(s, batch_size) for name, s in seconds.items()}
    rows["ratios"] = ratios(rows)
    return rows, runners


def benchmark_predict(runners: dict, reps: int) -> dict:
    """Images per second of ``predict`` on the 10,000 test images, batch 1000 (interleaved)."""
    runners = {n: r for n, r in runners.items() if hasattr(r, "predict")}
    for runner in runners.values():
        runner.predict(PREDICT_BATCH)  # warm-up (graph tracing, buffers)
    seconds = {name: [] for name in runners}
    for _ in range(reps):
        for name, runner in runners.items():
            runner.sync()
            start = time.perf_counter()
            runner.predict(PREDICT_BATCH)  # returns host (NumPy) logits: finished work
            seconds[name].append(time.perf_counter() - start)
    return {
        name: {"images_per_s": PREDICT_IMAGES / statistics.median(s)} for name, s in seconds.items()
    }


# ---------------------------------------------------------------------------- memory


def memory_probe(args) -> dict:
    """Run in a fresh process: tinycnn's training memory at batch 128, beyond the data.

    The baseline is the memory once the libraries are imported, the data loaded
    and the kernels compiled (a throw-away model trains on batches of 2); the
    peak counter is then reset. The result is how far training at batch 128
    (weights, Adam state, activations, buffers) pushes the peak above it.
    """
    data = load_data(args)
    warm = TinycnnRunner(2, data, args)
    warm_up(warm, 2, len(data[0]) // 2)
    del warm
    if reset_peak_rss():
        baseline = proc_status_mb("VmRSS")
    else:
        baseline = proc_status_mb("VmHWM") or peak_rss_mb()
    runner = TinycnnRunner(MEMORY_BATCH, data, args)
    warm_up(runner, MEMORY_STEPS, len(data[0]) // MEMORY_BATCH)
    peak = proc_status_mb("VmHWM") or peak_rss_mb()
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


def run_memory_probe(args) -> dict:
    """Start this script again with ``--memory-probe``, running only tinycnn."""
    command = [sys.executable, os.path.abspath(__file__), "--memory-probe"]
    command += ["--backend", args.backend, "--threads", str(args.threads)]
    command += ["--seed", str(args.seed)] + (["--real"] if args.real else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- report


def log(message: str) -> None:
    """Progress on stderr, so that stdout holds only the results."""
    print(message, file=sys.stderr, flush=True)


def print_header(report: dict) -> None:
    """Versions, thread pools, skipped frameworks and how the timing was done."""
    env = report["environment"]
    libs = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    print(f"{libs}; {env['cpu_count']} CPUs, {report['threads']} threads per framework")
    for pool in env["threadpools"]:
        print("  threadpool: " + ", ".join(f"{k}={v}" for k, v in pool.items()))
    print(f"  OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']}")
    for name, why in report["skipped"].items():
        print(f"  skipped {name}: {why}")
    print(
        f"\nTraining on {report['data']} data, backend {report['backend']}: "
        f"{report['steps']} steps x {report['reps']} interleaved reps (median), "
        f"after {report['warmup']} warm-up steps; Keras step: {report['keras_method']}"
    )


def print_training(train: dict) -> None:
    """The training table: one row per batch size and framework."""
    print(
        f"{'batch':>5}  {'framework':<13}{'ms/step':>9}{'steps/s':>9}{'epoch s':>9}"
        f"{'tinycnn time / this':>21}"
    )
    for batch_size, rows in train.items():
        mine = rows.get("tinycnn", {}).get("epoch_s")
        for name, row in rows.items():
            if name == "ratios":
                continue
            ratio = f"{mine / row['epoch_s']:.2f}" if mine else "-"
            print(
                f"{batch_size:>5}  {name:<13}{row['ms_per_step']:>9.2f}"
                f"{row['steps_per_s']:>9.1f}{row['epoch_s']:>9.1f}{ratio:>21}"
            )


def print_footer(report: dict) -> None:
    """Predict throughput and memory."""
    predict = report["predict"]
    print(f"\nPredict, {PREDICT_IMAGES} images at batch {PREDICT_BATCH}:")
    for name, row in predict.items():
        print(f"  {name:<9}{row['images_per_s']:>10.0f} images/s")
    memory = report["memory"]
    print(f"\nPeak RSS of this process (all frameworks and data): {memory['peak_rss_mb']:.0f} MB")
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
    thread_notes = configure_threads(args.threads, names)
    data = load_data(args)
    train, runners = {}, {}
    for batch_size in args.batch_sizes:
        log(f"batch {batch_size}: building and timing {', '.join(names + [FLOOR])}")
        train[batch_size], runners = benchmark_batch_size(names, batch_size, data, args)
    log("predict")
    return {
        "benchmark": "epoch_time",
        "backend": args.backend,
        "data": "fashion_mnist" if args.real else "synthetic",
        "threads": args.threads,
        "steps": args.steps,
        "reps": args.reps,
        "warmup": args.warmup,
        "keras_method": args.keras_method if "keras" in names else None,
        "skipped": skipped,
        "setup": {name: runner.info for name, runner in runners.items()},
        "train": train,
        "predict": benchmark_predict(runners, args.reps),
        "environment": {
            "cpu_count": os.cpu_count(),
            "versions": versions(names),
            "threadpools": blas_info(),
            "threads_set": thread_notes,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "platform": platform.platform(),
        },
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.backend == "cupy":
        try:
            tinycnn.set_backend("cupy")
        except RuntimeError as err:  # no CuPy or no GPU: say so in one line
            sys.exit(f"--backend cupy: {err}")
    if args.memory_probe:
        configure_threads(args.threads, ["tinycnn"])
        print(json.dumps(memory_probe(args)))
        return
    report = run_benchmarks(args)
    report["memory"] = {"peak_rss_mb": peak_rss_mb()}
    if not args.no_memory and "tinycnn" in report["setup"]:
        log("memory: tinycnn alone in a subprocess")
        report["memory"]["tinycnn_train"] = run_memory_probe(args)
    print_header(report)
    print_training(report["train"])
    print_footer(report)
    if args.json:
        print(json.dumps(rounded(report)))


if __name__ == "__main__":
    main()
