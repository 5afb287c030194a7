"""The benchmark scripts run and print what they promise: a smoke test, never a timing.

Speed is measured by running the scripts themselves (benchmarks/README.md); these
runs are far too short for their numbers to mean anything, so only the shape of the
output is checked. Each runs in its own process, as a user would run it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from real_data import REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"

pytestmark = pytest.mark.skipif(
    not __import__("tinycnn").kernels.fast_kernels_available(),
    reason="the benchmarks measure the compiled kernels (numba not installed)",
)


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
