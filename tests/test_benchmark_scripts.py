"""The benchmark scripts run and print what they promise: a smoke test, never a timing.

Speed is measured by running the scripts themselves (benchmarks/README.md); these
runs are far too short for their numbers to mean anything, so only the shape of the
output is checked. Each runs in its own process, as a user would run it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import pytest
from real_data import REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"

pytestmark = pytest.mark.skipif(
    not __import__("tinycnn").kernels.fast_kernels_available(),
    reason="the benchmarks measure the compiled kernels (numba not installed)",
)


def load_module(name: str):
    """Import benchmarks/<name>.py by its path (it is a script folder, not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name: str, *args: str) -> tuple[str, dict]:
    """Run benchmarks/<name> with args; return its stdout and its last line as JSON."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, json.loads(done.stdout.strip().splitlines()[-1])


def positive(value) -> bool:
    return isinstance(value, float | int) and value > 0


@pytest.mark.parametrize("winograd", [False, True])
def test_conv_block_size(winograd):
    args = ["--batch-size", "8", "--steps", "2", "--sizes", "256,512"]
    out, result = run_script("conv_block_size.py", *args, *(["--winograd"] if winograd else []))
    constant = "WINOGRAD_BLOCK_BYTES" if winograd else "BLOCK_BYTES"
    assert result["constant"] == constant and constant in out
    assert set(result["ms_per_step"]) == {"256", "512"}
    assert all(positive(ms) for ms in result["ms_per_step"].values())


def test_profile_step():
    out, result = run_script("profile_step.py", "--batch-size", "8", "--repeats", "2",
                             "--warmup", "1", "--json")  # fmt: skip
    assert "Conv+ReLU+Pool, im2col" in out  # the first pair, fused
    assert "Conv+ReLU+Pool, winograd" in out  # the second
    assert result["batch_size"] == 8 and positive(result["train_step_ms"])


def test_epoch_time_tinycnn_only():
    args = ["--frameworks", "tinycnn", "--batch-sizes", "8", "--steps", "2", "--reps", "1",
            "--warmup", "1", "--no-memory", "--json"]  # fmt: skip
    out, result = run_script("epoch_time.py", *args)
    row = result["train"]["8"]["tinycnn"]
    assert positive(row["ms_per_step"]) and positive(row["epoch_s"])
    assert "matmul floor" in result["train"]["8"]  # the reference row is always there
    assert positive(result["predict"]["tinycnn"]["images_per_s"])


def test_epoch_time_worker_floor():
    """One worker on its own: the matmul floor's 11 GEMMs, timed, as one JSON line."""
    args = ["--worker", "floor", "--batch-size", "8", "--steps", "2", "--warmup", "1",
            "--threads", "1"]  # fmt: skip
    _, result = run_script("epoch_time.py", *args)
    assert positive(result["s_per_step"]) and positive(result["peak_rss_mb"])
    assert len(result["info"]["gemms"]) == 11
    # the shared threads.configure_threads ran: numba and the BLAS pool got 1 thread
    assert result["environment"]["threads_set"]["numba_threads"] == 1
    blas = [p for p in result["environment"]["threadpools"] if p["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)


def test_epoch_time_has_no_in_process_mode():
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "epoch_time.py"), "--in-process"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    assert done.returncode == 2 and "unrecognized arguments: --in-process" in done.stderr


def test_train_stats_numbers():
    """Median step time, steps/s and the epoch time for 60,000 images (ceil(60000/64) = 938)."""
    timing = load_module("timing")
    stats = timing.train_stats([0.020, 0.010, 0.030], batch_size=64)
    assert stats["ms_per_step"] == pytest.approx(20.0)
    assert stats["steps_per_s"] == pytest.approx(50.0)
    assert stats["epoch_s"] == pytest.approx(938 * 0.020)
    assert stats["ms_per_step_reps"] == [20.0, 10.0, 30.0]
    assert timing.predict_stats([2.0, 1.0, 4.0])["images_per_s"] == pytest.approx(5000.0)
    assert timing.rounded({"a": [1.234567, 2], "b": 0.00001}) == {"a": [1.2346, 2], "b": 0.0}


def test_benchmark_files_are_small_and_import_without_path_hacks():
    """No god-file: every benchmark module under 600 lines; the scripts find their shared
    modules because Python puts a script's own folder first on sys.path."""
    for path in BENCHMARKS.glob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 600, f"{path.name}: {len(text.splitlines())} lines"
        assert not re.search(r"sys\.path\.(insert|append|extend)|sys\.path\s*\+?=", text), path.name
