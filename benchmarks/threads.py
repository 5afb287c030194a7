"""Thread pools: give every library the same number of threads, and say what was loaded.

Shared by the benchmark scripts (``epoch_time.py`` and its workers, ``profile_step.py``).
They run as scripts, ``python benchmarks/<name>.py``, so Python puts this folder first
on ``sys.path`` and ``from threads import configure_threads`` finds this file.

Each framework has its own pools: NumPy's BLAS (OpenBLAS; tinycnn and the matmul
floor), numba's workqueue (tinycnn's kernels), PyTorch's OpenMP pool and TensorFlow's
Eigen pools. A fair comparison gives each the same number of threads.
"""

from __future__ import annotations


def configure_threads(threads: int, names: list[str]) -> dict:
    """Give the libraries that ``names`` use ``threads`` threads; return what was set.

    ``names`` holds framework names: "tinycnn" (numba), "torch", "keras" (TensorFlow).
    NumPy's BLAS is always limited. Must run before TensorFlow executes its first
    operation: its thread pools are fixed at that moment.
    """
    notes = {}
    if "tinycnn" in names:
        try:
            import numba
        except ImportError:  # tinycnn runs without numba, on its NumPy kernels
            pass
        else:
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
