#!/usr/bin/env python
"""Mutation testing for tinycnn: do the tests notice a realistic bug?

Each *mutant* below is one hand-written, single change to tinycnn's source, the
kind of mistake a person really makes (an off-by-one in a window index, ``>``
for ``>=``, a missing ``+=``, a dropped guard or ``fsync``). For each one the
script puts the bug in, runs the tests that should catch it, and puts the code
back. A mutant is

* KILLED    when a test fails (or the test process crashes): the tests caught it;
* SURVIVED  when every test passes: a bug of this kind would go unnoticed;
* TIMEOUT   when the tests run longer than ``--timeout`` seconds;
* STALE     when its original snippet is no longer found exactly once in the
  file (the code moved or changed): fix the snippet, never skip it silently;
* ERROR     when pytest itself could not run (usage error, nothing collected).

Score = killed / (total - equivalent). Mutants that cannot change behaviour
(``equivalent="why"``) are listed with their reason and not run (``--run-equivalent``
runs them, to check that they do survive).

How it runs: the working tree (tinycnn/, tests/, examples/, benchmarks/, docs/,
tools/, pyproject.toml, README.md) is copied once to a temporary folder (one copy per job).
A baseline run of all the test files involved, unmutated, compiles numba's cache
in the copy and finds tests that already fail; those are deselected (and listed)
so that they cannot "kill" every mutant. Then, one mutant at a time:
apply it, run ``python -m pytest -x -q -p no:cacheprovider <tests>`` with
``PYTHONPATH=<copy>`` (checked: the copy's tinycnn is the one imported, not the
editable install), restore the file, its modification time and its numba cache
files, so the kernels of unmutated files stay compiled. Nothing is written to the
working tree. Not run in CI: it takes 20-40 minutes (tools/README.md).

Usage:
    python tools/mutation_test.py                  # everything, one job
    python tools/mutation_test.py --list           # the mutants, and which are stale
    python tools/mutation_test.py --only ref-pool-bwd-ph fusion-no-relu-guard
    python tools/mutation_test.py --jobs 2 --timeout 300 --json mutants.json

To add a mutant, append a ``Mutant(...)`` to MUTANTS: an id, the file, the exact
original snippet (unique in the file: add surrounding text until it is), the
replacement and a one-line description. The tests run are TESTS[file] unless the
mutant gives its own ``tests``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: What is copied to the scratch tree (tests read examples/, benchmarks/ and docs/ too).
COPIED = (
    "tinycnn",
    "tests",
    "examples",
    "benchmarks",
    "docs",
    "tools",  # tests run tools/compare_keras.py's Keras network, the notebook runner
    "pyproject.toml",
    "README.md",
)

# Test files per source file, most specific (and fastest to fail) first: pytest -x
# stops at the first failure, so a killed mutant rarely runs more than one file.
_KERNEL_LAYERS = (
    "tests/layers/test_pooling.py",
    "tests/layers/test_conv2d.py",
    "tests/layers/test_dense.py",
    "tests/layers/test_activations.py",
)
TESTS: dict[str, tuple[str, ...]] = {
    "tinycnn/conv_arithmetic.py": (
        "tests/test_conv_arithmetic.py",
        "tests/layers/test_conv2d.py",
        "tests/layers/test_pooling.py",
        "tests/kernels/test_fast_kernels.py",
        "tests/test_torch_crosscheck.py",
    ),
    "tinycnn/kernels/reference.py": (
        "tests/kernels/test_fast_kernels.py",
        "tests/kernels/test_cpu_conv.py",
        "tests/kernels/test_winograd.py",
        "tests/test_strict_namespace.py",
        "tests/test_gradient_check.py",
    ),
    "tinycnn/kernels/cpu_numba.py": (
        "tests/kernels/test_fast_kernels.py",
        "tests/kernels/test_cpu_conv.py",
        *_KERNEL_LAYERS,
        "tests/optimizers/test_optimizers.py",
        "tests/test_gradient_check.py",
        "tests/test_torch_crosscheck.py",
        "tests/test_determinism.py",
        "tests/faults/test_kernel_faults.py",
    ),
    "tinycnn/kernels/cpu_conv.py": (
        "tests/kernels/test_cpu_conv.py",
        "tests/test_determinism.py",
        "tests/kernels/test_fast_kernels.py",
        "tests/layers/test_conv2d.py",
        "tests/test_gradient_check.py",
        "tests/test_torch_crosscheck.py",
    ),
    "tinycnn/kernels/winograd.py": (
        "tests/kernels/test_winograd.py",
        "tests/kernels/test_cpu_conv.py",
        "tests/layers/test_conv2d.py",
        "tests/test_gradient_check.py",
        "tests/test_torch_crosscheck.py",
    ),
    "tinycnn/layers/conv2d.py": (
        "tests/layers/test_conv2d.py",
        "tests/test_bad_input.py",
        "tests/test_gradient_check.py",
        "tests/test_torch_crosscheck.py",
    ),
    "tinycnn/layers/pooling.py": (
        "tests/layers/test_pooling.py",
        "tests/test_bad_input.py",
        "tests/test_gradient_check.py",
        "tests/test_torch_crosscheck.py",
    ),
    "tinycnn/layers/dense.py": (
        "tests/layers/test_dense.py",
        "tests/test_gradient_check.py",
        "tests/test_torch_crosscheck.py",
    ),
    "tinycnn/layers/dropout.py": (
        "tests/layers/test_dropout.py",
        "tests/test_strict_namespace.py",
        "tests/test_torch_crosscheck.py",
    ),
    "tinycnn/layers/activations.py": (
        "tests/layers/test_activations.py",
        "tests/test_gradient_check.py",
        "tests/test_torch_crosscheck.py",
    ),
    "tinycnn/losses/softmax_cross_entropy.py": (
        "tests/losses/test_softmax_cross_entropy.py",
        "tests/test_bad_input.py",
        "tests/test_gradient_check.py",
        "tests/test_torch_crosscheck.py",
        "tests/training/test_loop.py",
    ),
    "tinycnn/optimizers/adam.py": (
        "tests/optimizers/test_optimizers.py",
        "tests/test_torch_crosscheck.py",
        "tests/test_saving.py",
    ),
    "tinycnn/optimizers/sgd.py": (
        "tests/optimizers/test_optimizers.py",
        "tests/test_torch_crosscheck.py",
        "tests/test_saving.py",
    ),
    "tinycnn/optimizers/base.py": (
        "tests/optimizers/test_optimizers.py",
        "tests/test_torch_crosscheck.py",
        "tests/test_saving.py",
        "tests/training/test_loop.py",
    ),
    "tinycnn/training/loop.py": (
        "tests/training/test_loop.py",
        "tests/training/test_callbacks.py",
        "tests/training/test_data_placement.py",
        "tests/test_bad_input.py",
        "tests/models/test_sequential.py",
        "tests/faults/test_training_faults.py",
    ),
    "tinycnn/callbacks.py": (
        "tests/training/test_callbacks.py",
        "tests/training/test_loop.py",
    ),
    "tinycnn/atomic_file.py": (
        "tests/test_saving.py",
        "tests/faults/test_saving_faults.py",
        "tests/datasets/test_idx.py",
        "tests/datasets/test_fashion_mnist.py",
    ),
    "tinycnn/saving.py": (
        "tests/test_saving.py",
        "tests/faults/test_saving_faults.py",
        "tests/training/test_callbacks.py",
    ),
    "tinycnn/models/fusion.py": (
        "tests/models/test_fusion.py",
        "tests/kernels/test_fast_kernels.py",
        "tests/models/test_sequential.py",
        "tests/test_gradient_check.py",
        "tests/test_torch_crosscheck.py",
    ),
    "tinycnn/datasets/idx.py": (
        "tests/datasets/test_idx.py",
        "tests/datasets/test_fashion_mnist.py",
    ),
    "tinycnn/datasets/fashion_mnist.py": (
        "tests/datasets/test_fashion_mnist.py",
        "tests/test_integration_fashion_mnist.py",
    ),
    "tinycnn/layers/batch_normalization.py": (
        "tests/layers/test_batch_normalization.py",
        "tests/test_torch_batchnorm.py",
        "tests/test_gradient_check.py",
    ),
    "tinycnn/layers/custom.py": (
        "tests/layers/test_custom_layers.py",
        "tests/test_gradient_check.py",
    ),
    "tinycnn/layers/base.py": (
        "tests/layers/test_custom_layers.py",
        "tests/layers/test_batch_normalization.py",
        "tests/models/test_trainable.py",
        "tests/test_gradient_check.py",
    ),
    "tinycnn/keras_weights.py": (
        "tests/test_keras_weights.py",
        "tests/layers/test_batch_normalization.py",
    ),
    "tinycnn/gradient_check/state.py": (
        "tests/test_gradient_check.py",
        "tests/layers/test_batch_normalization.py",
        "tests/layers/test_custom_layers.py",
    ),
    "tinycnn/gradient_check/numeric.py": ("tests/test_gradient_check.py",),
    "tinycnn/viz/gradcam.py": ("tests/viz/test_viz_saliency.py",),
    "tinycnn/viz/occlusion.py": ("tests/viz/test_viz_saliency.py",),
    "tinycnn/exercises/runner.py": (
        "tests/exercises/test_exercise_checks.py",
        "tests/exercises/test_bug_zoo.py",
    ),
    "tinycnn/exercises/cases.py": (
        "tests/exercises/test_exercise_checks.py",
        "tests/exercises/test_bug_zoo.py",
    ),
}


@dataclasses.dataclass(frozen=True)
class Mutant:
    id: str
    file: str  # relative to the repository root
    original: str  # exact text, found exactly once in the file
    replacement: str
    description: str  # one line: the bug, as a person would make it
    tests: tuple[str, ...] = ()  # empty: TESTS[file]
    equivalent: str = ""  # non-empty: why it cannot change behaviour (not run, not scored)

    def test_files(self) -> tuple[str, ...]:
        return self.tests or TESTS[self.file]


M = Mutant
ARITH = "tinycnn/conv_arithmetic.py"
REF = "tinycnn/kernels/reference.py"
NUMBA = "tinycnn/kernels/cpu_numba.py"
CONV = "tinycnn/kernels/cpu_conv.py"
WINO = "tinycnn/kernels/winograd.py"
BN = "tinycnn/layers/batch_normalization.py"

MUTANTS: list[Mutant] = [
    # ---- kernels/reference.py -----------------------------------------------------------
    M(
        "ref-conv-size",
        ARITH,
        "return (size - k) // stride + 1",
        "return (size - k) // stride",
        "output_size off by one: forgets the +1 (the window's first position)",
    ),
    M(
        "ref-im2col-transposed",
        REF,
        "x[\n                :, i : i + stride * ho : stride, j : j + stride * wo : stride\n            ]",
        "x[\n                :, j : j + stride * ho : stride, i : i + stride * wo : stride\n            ]",
        "im2col reads the kernel offset (i, j) as (j, i): a transposed kernel",
    ),
    M(
        "ref-col2im-assign",
        REF,
        "dx[:, i : i + stride * ho : stride, j : j + stride * wo : stride] +=",
        "dx[:, i : i + stride * ho : stride, j : j + stride * wo : stride] =",
        "col2im: = instead of +=, overlapping patches overwrite each other's gradient",
    ),
    M(
        "ref-pool-tie",
        REF,
        "better = (window > out)",
        "better = (window >= out)",
        "max-pool tie rule: >= lets the last maximum win instead of the first",
    ),
    M(
        "ref-pool-fwd-ph",
        REF,
        "xp.int8(i * pw + j)",
        "xp.int8(i * ph + j)",
        "max-pool forward: argmax offset i*ph+j instead of i*pw+j",
    ),
    M(
        "ref-pool-bwd-ph",
        REF,
        "argmax == i * pw + j",
        "argmax == i * ph + j",
        "max-pool backward: window offset i*ph+j instead of i*pw+j (non-square pools)",
    ),
    M(
        "ref-pool-bwd-assign",
        REF,
        "dx[:, i : i + sh * ho : sh, j : j + sw * wo : sw] +=",
        "dx[:, i : i + sh * ho : sh, j : j + sw * wo : sw] =",
        "max-pool backward: = instead of +=, overlapping windows lose gradient",
    ),
    M(
        "ref-dbias-before-relu",
        REF,
        "return dz, (dz.sum(axis=0) if with_bias else None)",
        "return dz, (dy.sum(axis=0) if with_bias else None)",
        "bias gradient summed from dy, before the ReLU mask, instead of dz",
    ),
    M(
        "ref-relu-bwd-ge",
        REF,
        "xp.where(y <= 0, xp.zeros((), dtype=dy.dtype), dy)",
        "xp.where(y < 0, xp.zeros((), dtype=dy.dtype), dy)",
        "ReLU backward passes the gradient where y == 0 (inactive units)",
    ),
    M(
        "ref-adam-beta",
        "tinycnn/optimizers/adam.py",
        "m += (one - b1) * grad",
        "m += (one - b2) * grad",
        "Adam's reference update: first moment mixed with (1 - beta_2), not (1 - beta_1)",
        tests=("tests/optimizers/test_optimizers.py", "tests/kernels/test_fast_kernels.py"),
    ),
    M(
        "ref-fused-no-mask",
        REF,
        "maxpool_backward(relu_backward(dy, out), argmax",
        "maxpool_backward(dy, argmax",
        "fused conv+relu+pool backward forgets the ReLU mask at the winners",
    ),
    M(
        "ref-dx-reshape-not-transpose",
        REF,
        "dz @ kernel.reshape(-1, f).T",
        "dz @ kernel.reshape(f, -1)",
        "conv backward dx: kernel reshaped to (F, -1) instead of transposed",
    ),
    M(
        "ref-conv-wo-from-h",
        REF,
        "output_size(x.shape[2], kw, stride)",
        "output_size(x.shape[1], kw, stride)",
        "conv2d_forward: output width computed from the input height",
    ),
    # ---- kernels/cpu_numba.py -----------------------------------------------------------
    M(
        "numba-im2col-no-channels",
        NUMBA,
        "start = ow * stride * c\n                for i in range(kh):\n                    src = x[",
        "start = ow * stride\n                for i in range(kh):\n                    src = x[",
        "im2col (long runs): a patch's start ignores the channel count",
    ),
    M(
        "numba-im2col-short-no-stride",
        NUMBA,
        "dst[ow] = src[ow * stride * c + e]",
        "dst[ow] = src[ow * c + e]",
        "im2col (short runs, first layer): forgets the stride",
    ),
    M(
        "numba-col2im-assign",
        NUMBA,
        "dst[e] += src[e]",
        "dst[e] = src[e]",
        "col2im: = instead of +=, overlapping patches overwrite each other",
    ),
    M(
        "numba-col2im-no-zero",
        NUMBA,
        "dx[b] = 0.0\n        for oh in range(ho):\n            for ow in range(wo):\n                start",
        "for oh in range(ho):\n            for ow in range(wo):\n                start",
        "col2im forgets to zero dx (np.empty) before adding the patches",
    ),
    M(
        "numba-pool-tie",
        NUMBA,
        "if row[ch] > best[ch] or",
        "if row[ch] >= best[ch] or",
        "max-pool tie rule (fast path): a later equal value wins",
    ),
    M(
        "numba-pool-fwd-ph",
        NUMBA,
        "k = i * pw + j\n                        for ch in range(c):\n                            #",
        "k = i * ph + j\n                        for ch in range(c):\n                            #",
        "max-pool forward (fast path): argmax offset i*ph+j",
    ),
    M(
        "numba-pool-bwd-tiled-ph",
        NUMBA,
        "k = i * pw + j\n                        for ch in range(c):\n                            dst[ch]",
        "k = i * ph + j\n                        for ch in range(c):\n                            dst[ch]",
        "max-pool backward (fast path, stride == pool): window offset i*ph+j",
    ),
    M(
        "numba-pool-bwd-scatter-ph",
        NUMBA,
        "ow * sw + k % pw, ch]",
        "ow * sw + k % ph, ch]",
        "max-pool backward (overlapping windows): column of the winner k % ph",
    ),
    M(
        "numba-pool-bwd-no-row-tail",
        NUMBA,
        "dx[b, ho * ph :] = 0.0\n",
        "",
        "max-pool backward (tiled): the rows no window covers are left unset",
    ),
    M(
        "numba-pool-bwd-tiled-if",
        NUMBA,
        "if (sh, sw) == (ph, pw):",
        "if sh == ph:",
        "tiled max-pool backward chosen when only the row stride equals the pool",
    ),
    M(
        "numba-bias-relu-flag",
        NUMBA,
        "row[k] = 0.0 if (relu and v <= 0.0) else v",
        "row[k] = 0.0 if v <= 0.0 else v",
        "bias + ReLU kernel applies ReLU even when relu=False",
    ),
    M(
        "numba-chunk-remainder",
        NUMBA,
        "chunk = (m + tasks - 1) // tasks",
        "chunk = m // tasks",
        "bias gradient's threaded loop: floor chunk drops the last m % tasks rows",
    ),
    M(
        "numba-dbias-unmasked",
        NUMBA,
        "acc[k] += v",
        "acc[k] += dy[r, k]",
        "bias gradient summed before the ReLU mask (fast path)",
    ),
    M(
        "numba-dbias-first-chunk",
        NUMBA,
        "partial.sum(axis=0).astype(dy.dtype)",
        "partial[0].astype(dy.dtype)",
        "bias gradient: only the first chunk's sum, not all chunks'",
    ),
    M(
        "numba-adam-eps-inside",
        NUMBA,
        "(mk / (np.sqrt(vk) + eps))",
        "(mk / np.sqrt(vk + eps))",
        "Adam epsilon inside the square root (not Keras's placement)",
    ),
    M(
        "numba-adam-flush-sign",
        NUMBA,
        "if abs(mk) < tiny:",
        "if mk < tiny:",
        "Adam flush-to-zero forgets abs(): every negative first moment becomes 0",
    ),
    M(
        "numba-relu-bwd-ge",
        NUMBA,
        "dz[k] = 0.0 if y[k] <= 0.0 else dy[k]",
        "dz[k] = 0.0 if y[k] < 0.0 else dy[k]",
        "ReLU backward (fast path) passes y == 0",
    ),
    # ---- kernels/cpu_conv.py ------------------------------------------------------------
    M(
        "conv-share-remainder",
        CONV,
        "bounds = [n * j // count for j in range(count + 1)]",
        "bounds = [n // count * j for j in range(count + 1)]",
        "threaded batch split drops the last n % count images",
    ),
    M(
        "conv-sum-drops-last",
        CONV,
        "if self.added > 0:",
        "if self.added > 1:",
        "the in-order adder of the shares' gradients skips share 1 (off by one)",
    ),
    M(
        "conv-second-block-overwrites",
        CONV,
        "add=k > 0)",
        "add=k > 1)",
        "the second block of a share overwrites the first block's kernel gradient",
    ),
    M(
        "conv-dbias-not-accumulated",
        CONV,
        "dbias += sums[0]",
        "dbias[:] = sums[0]",
        "bias gradient: each block overwrites instead of adding",
    ),
    M(
        "conv-unpool-bias-no-relu",
        CONV,
        "if not (best[f] <= zero):",
        "if True:",
        "fused backward: bias gradient also from windows the ReLU cut to 0",
    ),
    M(
        "conv-unpool-ph",
        CONV,
        "hp * ph + k // pw, wp * pw + k % pw]",
        "hp * ph + k // ph, wp * pw + k % ph]",
        "fused backward: winner offset decoded with ph instead of pw",
    ),
    M(
        "conv-unpool-no-relu",
        CONV,
        "(arg[f] == k and not (best[f] <= zero))",
        "arg[f] == k",
        "fused backward: gradient passes windows whose output the ReLU cut",
    ),
    M(
        "conv-pooled-region-ph",
        CONV,
        "return ho // ph * ph, wo // pw * pw",
        "return ho // ph * ph, wo // ph * ph",
        "pooled region's width uses ph instead of pw",
    ),
    M(
        "conv-winograd-tw-from-ho",
        CONV,
        "self.th, self.tw = ho // 2, wo // 2",
        "self.th, self.tw = ho // 2, ho // 2",
        "Winograd tiles: the tile columns counted from the output height",
    ),
    M(
        "conv-pool-pid",
        CONV,
        'if helpers["size"] == threads and helpers["pid"] == os.getpid():',
        'if helpers["size"] == threads:',
        "helper threads reused after fork (their threads do not exist in the child)",
    ),
    # ---- kernels/winograd.py ------------------------------------------------------------
    M(
        "wino-applies-no-width-parity",
        WINO,
        "ho % 2 == 0 and wo % 2 == 0",
        "ho % 2 == 0",
        "winograd.applies() drops the output-width parity check",
    ),
    M(
        "wino-applies-channels-gt",
        WINO,
        "c >= channels_min",
        "c > channels_min",
        "winograd.applies(): > instead of >= for the channel threshold",
    ),
    M(
        "wino-bt-sign",
        WINO,
        "o2[k] = d2[k] - d1[k]",
        "o2[k] = d1[k] - d2[k]",
        "input transform BT: a sign flipped in its third row",
    ),
    M(
        "wino-a-sign",
        WINO,
        "o3[k] = -y1[k]",
        "o3[k] = y1[k]",
        "output-gradient transform A: a sign flipped (backward only)",
    ),
    M(
        "wino-b-sign",
        WINO,
        "o1[k] = v1[k] - v2[k] + v3[k]",
        "o1[k] = v1[k] + v2[k] + v3[k]",
        "input-gradient transform B: a sign flipped (dx only)",
    ),
    M(
        "wino-dx-assign",
        WINO,
        "dst[k] += src[k]",
        "dst[k] = src[k]",
        "dx tiles overlap: = instead of +=",
    ),
    M(
        "wino-output-rows-swapped",
        WINO,
        "y[b, 2 * i, 2 * j + c], y[b, 2 * i + 1, 2 * j + c]",
        "y[b, 2 * i + 1, 2 * j + c], y[b, 2 * i, 2 * j + c]",
        "output tile's two rows written in swapped order",
    ),
    M(
        "wino-tile-stride",
        WINO,
        "row = x[b, 2 * i + r]",
        "row = x[b, i + r]",
        "input tiles taken 1 pixel apart instead of 2",
    ),
    M(
        "wino-at-constant",
        WINO,
        "AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]]",
        "AT = np.array([[1, 1, 1, 0], [0, 1, -1, 1]]",
        "readable AT matrix: a sign typo",
    ),
    # ---- layers ---------------------------------------------------------------------------
    M(
        "conv2d-same-extra-before",
        ARITH,
        "return total // 2, total - total // 2",
        "return total - total // 2, total // 2",
        "'same' padding: the odd extra pixel goes before (PyTorch) instead of after (TF)",
    ),
    M(
        "conv2d-same-floor",
        ARITH,
        "out = -(-size // stride)",
        "out = size // stride",
        "'same' padding computed for floor(size / stride) outputs instead of ceil",
    ),
    M(
        "conv2d-crop-cols-with-rows",
        "tinycnn/layers/conv2d.py",
        "pl : dx.shape[2] - pr]",
        "pt : dx.shape[2] - pb]",
        "conv backward crops the columns with the row padding",
    ),
    M(
        "dense-no-bias-grad",
        "tinycnn/layers/dense.py",
        'if self.use_bias:\n            self.grads["bias"] = dbias',
        "pass",
        "Dense forgets to store the bias gradient (bias never trains)",
    ),
    M(
        "dense-dx-no-transpose",
        "tinycnn/layers/dense.py",
        'dy @ self.params["kernel"].T',
        'dy @ self.params["kernel"]',
        "Dense backward: kernel not transposed for dx",
    ),
    M(
        "pool-default-stride-1",
        "tinycnn/layers/pooling.py",
        "strides if strides is not None else self.pool_size",
        "strides if strides is not None else 1",
        "MaxPooling2D default strides 1 instead of the pool size (Keras)",
    ),
    M(
        "pool-same-zero-pad",
        "tinycnn/layers/pooling.py",
        ", constant_values=-xp.inf)",
        ")",
        "'same' max-pooling pads with 0 instead of -inf",
    ),
    M(
        "pool-crop-cols-with-rows",
        "tinycnn/layers/pooling.py",
        "pl : padded_shape[2] - pr]",
        "pt : padded_shape[2] - pb]",
        "pool backward crops the columns with the row padding",
    ),
    M(
        "dropout-keep-rate",
        "tinycnn/layers/dropout.py",
        ">= xp.uint32(threshold)",
        "< xp.uint32(threshold)",
        "dropout keeps units with probability rate instead of 1 - rate",
    ),
    M(
        "dropout-no-scale",
        "tinycnn/layers/dropout.py",
        "keep.astype(x.dtype) / x.dtype.type(1.0 - self.rate)",
        "keep.astype(x.dtype)",
        "dropout not inverted: kept units are not scaled by 1 / (1 - rate)",
    ),
    M(
        "dropout-at-inference",
        "tinycnn/layers/dropout.py",
        "if not training or self.rate == 0.0:",
        "if self.rate == 0.0:",
        "dropout also drops units at inference",
    ),
    M(
        "relu-overwrites-input",
        "tinycnn/layers/activations.py",
        "kernels.relu_forward(x.copy())",
        "kernels.relu_forward(x)",
        "ReLU layer overwrites the caller's array in place",
    ),
    # ---- losses -------------------------------------------------------------------------
    M(
        "loss-no-max-shift",
        "tinycnn/losses/softmax_cross_entropy.py",
        "shifted = logits - logits.max(axis=1, keepdims=True)",
        "shifted = logits",
        "softmax without the max shift (exp overflows for large logits)",
    ),
    M(
        "loss-grad-not-mean",
        "tinycnn/losses/softmax_cross_entropy.py",
        "dlogits /= n",
        "pass",
        "loss gradient not divided by the batch size",
    ),
    M(
        "loss-label-off-by-one",
        "tinycnn/losses/softmax_cross_entropy.py",
        "if low < 0 or high >= n_classes:",
        "if low < 0 or high > n_classes:",
        "label check accepts label == n_classes",
    ),
    M(
        "loss-onehot-broadcast",
        "tinycnn/losses/softmax_cross_entropy.py",
        "dlogits[xp.arange(n), labels] -= 1.0",
        "dlogits[:, labels] -= 1.0",
        "one-hot subtraction indexes [:, labels] (every row) instead of [arange(n), labels]",
    ),
    # ---- optimizers ---------------------------------------------------------------------
    M(
        "adam-bias-correction-swapped",
        "tinycnn/optimizers/adam.py",
        "math.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)",
        "math.sqrt(1 - self.beta_1**t) / (1 - self.beta_2**t)",
        "Adam bias correction with beta_1 and beta_2 swapped",
    ),
    M(
        "adam-step-off-by-one",
        "tinycnn/optimizers/adam.py",
        "t = self.iterations  # this step's number",
        "t = max(self.iterations - 1, 1)  # this step's number",
        "Adam bias correction uses the previous step number",
    ),
    M(
        "sgd-nesterov-no-grad",
        "tinycnn/optimizers/sgd.py",
        "param += param.dtype.type(self.momentum) * v - lr * grad",
        "param += param.dtype.type(self.momentum) * v",
        "Nesterov update forgets the - lr * g term",
    ),
    M(
        "sgd-momentum-no-lr",
        "tinycnn/optimizers/sgd.py",
        "v -= lr * grad",
        "v -= grad",
        "momentum velocity updated without the learning rate",
    ),
    M(
        "opt-state-by-param-name",
        "tinycnn/optimizers/base.py",
        'self.state.setdefault(f"{layer.name}/{key}", {})',
        "self.state.setdefault(key, {})",
        "optimizer state keyed by parameter name only: layers share their moments",
    ),
    # ---- training/loop.py ---------------------------------------------------------------
    M(
        "loop-drop-last-batch",
        "tinycnn/training/loop.py",
        "steps=-(-len(x) // batch_size),",
        "steps=len(x) // batch_size,",
        "an epoch drops the last partial batch",
    ),
    M(
        "loop-loss-unweighted",
        "tinycnn/training/loop.py",
        "self.loss += loss * n",
        "self.loss += loss",
        "epoch loss sums batch means without weighting by batch size",
    ),
    M(
        "loop-val-split-first",
        "tinycnn/training/loop.py",
        "return (x[:-n_val], y[:-n_val]), (x[-n_val:], y[-n_val:])",
        "return (x[n_val:], y[n_val:]), (x[:n_val], y[:n_val])",
        "validation_split holds out the first samples instead of the last (Keras)",
    ),
    M(
        "loop-same-order-each-epoch",
        "tinycnn/training/loop.py",
        "numpy.random.default_rng([seed, epoch])",
        "numpy.random.default_rng(seed)",
        "shuffling gives the same order every epoch",
    ),
    M(
        "loop-epochs-relative",
        "tinycnn/training/loop.py",
        "range(initial_epoch, epochs)",
        "range(initial_epoch, initial_epoch + epochs)",
        "fit trains `epochs` more epochs after initial_epoch (not until epoch `epochs`)",
    ),
    M(
        "loop-ignores-stop-training",
        "tinycnn/training/loop.py",
        "                if model.stop_training:\n                    history.stopped_reason, history.stopped_epoch = CALLBACK, epoch\n                    break\n",
        "",
        "fit ignores model.stop_training (EarlyStopping has no effect)",
    ),
    # ---- callbacks.py -------------------------------------------------------------------
    M(
        "cb-patience-off-by-one",
        "tinycnn/callbacks.py",
        "if self.wait >= self.patience:  # as Keras",
        "if self.wait > self.patience:  # as Keras",
        "EarlyStopping waits one epoch more than patience",
    ),
    M(
        "cb-improved-non-strict",
        "tinycnn/callbacks.py",
        "return value < self.best - self.min_delta",
        "return value <= self.best - self.min_delta",
        "an equal value counts as an improvement (min mode)",
    ),
    M(
        "cb-no-reset-on-train-begin",
        "tinycnn/callbacks.py",
        'self.wait = 0\n        self.best = math.inf if self.mode == "min" else -math.inf\n        self.best_weights = None',
        "self.wait = 0",
        "EarlyStopping keeps the previous fit's best value",
    ),
    M(
        "cb-checkpoint-epoch-from-0",
        "tinycnn/callbacks.py",
        "epoch=epoch + 1",
        "epoch=epoch",
        "ModelCheckpoint numbers {epoch} from 0 instead of 1",
    ),
    M(
        "cb-checkpoint-best-not-updated",
        "tinycnn/callbacks.py",
        "                return\n            self.best = value\n",
        "                return\n",
        "ModelCheckpoint(save_best_only) never updates its best value",
    ),
    M(
        "cb-plateau-no-wait-reset",
        "tinycnn/callbacks.py",
        "optimizer.learning_rate = new_lr\n            self.wait = 0",
        "optimizer.learning_rate = new_lr",
        "ReduceLROnPlateau does not restart its count after a reduction",
    ),
    M(
        "cb-plateau-min-lr",
        "tinycnn/callbacks.py",
        "max(optimizer.learning_rate * self.factor, self.min_lr)",
        "min(optimizer.learning_rate * self.factor, self.min_lr)",
        "ReduceLROnPlateau floors at min_lr with min() instead of max()",
    ),
    M(
        "cb-cosine-epochs-minus-one",
        "tinycnn/callbacks.py",
        "epoch / max(epochs, 1)",
        "epoch / max(epochs - 1, 1)",
        "cosine_decay reaches its final value one epoch early",
    ),
    M(
        "cb-auto-mode-exact-name",
        "tinycnn/callbacks.py",
        'mode = "max" if "acc" in monitor else "min"',
        'mode = "max" if monitor == "accuracy" else "min"',
        "mode='auto' treats val_accuracy as a loss",
    ),
    # ---- saving.py and atomic_file.py -----------------------------------------------------
    M(
        "atomic-no-fsync",
        "tinycnn/atomic_file.py",
        "os.fsync(f.fileno())",
        "pass",
        "the fsync before the rename is dropped from the atomic save",
    ),
    M(
        "atomic-except-exception",
        "tinycnn/atomic_file.py",
        "except BaseException:  # Ctrl-C",
        "except Exception:  # Ctrl-C",
        "atomic write cleans up on Exception only: Ctrl-C leaves the temporary file",
    ),
    M(
        "saving-shape-by-size",
        "tinycnn/saving.py",
        "if found != shape:",
        "if math.prod(found) != math.prod(shape):",
        "weights' shape checked by size only (a transposed kernel loads)",
    ),
    M(
        "saving-mixed-dtypes",
        "tinycnn/saving.py",
        "if len(dtypes) > 1:",
        "if len(dtypes) > 2:",
        "weights of mixed dtypes accepted (off-by-one in the check)",
    ),
    M(
        "saving-duplicate-member",
        "tinycnn/saving.py",
        "if name in members:",
        "if False:",
        "a member that appears twice in the zip is not refused",
    ),
    # ---- models/fusion.py ---------------------------------------------------------------
    M(
        "fusion-no-relu-guard",
        "tinycnn/models/fusion.py",
        'conv.activation == "relu"\n            and ',
        "",
        'fusion guard dropped: conv.activation == "relu"',
    ),
    M(
        "fusion-no-conv-padding-guard",
        "tinycnn/models/fusion.py",
        '            and conv.padding == "valid"\n',
        "",
        "fusion guard dropped: conv.padding == 'valid'",
    ),
    M(
        "fusion-no-pool-stride-guard",
        "tinycnn/models/fusion.py",
        "            and pool.strides == pool.pool_size\n",
        "",
        "fusion guard dropped: pool stride == pool size",
    ),
    M(
        "fusion-no-pool-padding-guard",
        "tinycnn/models/fusion.py",
        '            and pool.padding == "valid"\n',
        "",
        "fusion guard dropped: pool.padding == 'valid'",
    ),
    M(
        "fusion-no-conv-stride-guard",
        "tinycnn/models/fusion.py",
        "            and conv.strides == (1, 1)\n",
        "",
        "fusion guard dropped: conv stride 1",
    ),
    M(
        "fusion-no-bias-grad",
        "tinycnn/models/fusion.py",
        'if conv.use_bias:\n            conv.grads["bias"] = dbias',
        "pass",
        "fused step forgets to store the conv bias gradient",
    ),
    M(
        "fusion-plan-skips-one",
        "tinycnn/models/fusion.py",
        "k += 2",
        "k += 1",
        "plan() advances by one after a fused pair: the pool runs twice",
    ),
    # ---- datasets ---------------------------------------------------------------------------
    M(
        "idx-header-size",
        "tinycnn/datasets/idx.py",
        "header_size = 4 + 4 * ndim",
        "header_size = 4 + ndim",
        "IDX header: one byte per size instead of four",
    ),
    M(
        "idx-no-trailing-check",
        "tinycnn/datasets/idx.py",
        "if found > expected:",
        "if False:",
        "IDX trailing bytes after the payload are accepted",
    ),
    M(
        "idx-native-order-dropped",
        "tinycnn/datasets/idx.py",
        'values.reshape(shape).astype(dtype.newbyteorder("="))',
        "values.reshape(shape)",
        "parse_idx returns the read-only big-endian view instead of a native copy",
    ),
    M(
        "idx-f4-little-endian",
        "tinycnn/datasets/idx.py",
        '0x0D: np.dtype(">f4")',
        '0x0D: np.dtype("<f4")',
        "float32 IDX read little-endian",
    ),
    M(
        "idx-gzip-by-suffix",
        "tinycnn/datasets/idx.py",
        "if not data.startswith(GZIP_MAGIC):",
        'if not name.endswith(".gz"):',
        "gzip recognised by the .gz suffix instead of the magic bytes",
    ),
    M(
        "idx-gzip-timestamp",
        "tinycnn/datasets/idx.py",
        "gzip.compress(data, mtime=0)",
        "gzip.compress(data)",
        "write_idx puts the current time in the gzip header (bytes not reproducible)",
    ),
    M(
        "idx-code-by-size-only",
        "tinycnn/datasets/idx.py",
        "stored.kind == dtype.kind and stored.itemsize == dtype.itemsize",
        "stored.itemsize == dtype.itemsize",
        "int8 written with the uint8 code (kind not compared)",
    ),
    M(
        "fm-label-off-by-one",
        "tinycnn/datasets/fashion_mnist.py",
        "array.max() >= NUM_CLASSES:",
        "array.max() > NUM_CLASSES:",
        "dataset label check accepts label 10",
    ),
    M(
        "fm-prefer-unpacked",
        "tinycnn/datasets/fashion_mnist.py",
        '(Path(folder) / f"{name}.gz", Path(folder) / name)',
        '(Path(folder) / name, Path(folder) / f"{name}.gz")',
        "find_files prefers the unpacked file over the .gz",
    ),
    M(
        "fm-partial-folder",
        "tinycnn/datasets/fashion_mnist.py",
        "if len(find_files(place)) == len(FILES):",
        "if find_files(place):",
        "a folder with only some of the four files is taken",
    ),
    M(
        "fm-hash-compressed",
        "tinycnn/datasets/fashion_mnist.py",
        "hashlib.sha256(content)",
        "hashlib.sha256(data)",
        "SHA-256 of the .gz bytes instead of the uncompressed content",
    ),
    M(
        "fm-env-exists",
        "tinycnn/datasets/fashion_mnist.py",
        "not Path(value).expanduser().is_dir()",
        "not Path(value).expanduser().exists()",
        "TINYCNN_DATA naming a file (not a folder) is accepted",
    ),
    M(
        "fm-redownload-all",
        "tinycnn/datasets/fashion_mnist.py",
        "missing = [name for name in FILES if name not in present]",
        "missing = list(FILES)",
        "download_files downloads all four files even when some are present",
    ),
    M(
        "fm-no-count-check",
        "tinycnn/datasets/fashion_mnist.py",
        "if len(arrays[images]) != len(arrays[labels]):",
        "if False:",
        "image and label counts not compared",
    ),
    # ---- layers/batch_normalization.py (the new code of issue 11) --------------------------
    M(
        "bn-unbiased-moving-var",
        BN,
        "self._update_moving_averages(mean, var)",
        "self._update_moving_averages(mean, x.var(axis=axes, ddof=1))",
        "the moving variance averages the unbiased (M - 1) batch variance, as PyTorch does",
    ),
    M(
        "bn-momentum-swapped",
        BN,
        "moving_mean[...] = m * moving_mean + (1.0 - m) * mean",
        "moving_mean[...] = (1.0 - m) * moving_mean + m * mean",
        "momentum read as the weight of the new batch (PyTorch's meaning) in the moving mean",
    ),
    M(
        "bn-eps-outside-sqrt",
        BN,
        "inv_sigma = 1.0 / xp.sqrt(var + self.epsilon)",
        "inv_sigma = 1.0 / (xp.sqrt(var) + self.epsilon)",
        "epsilon added after the square root instead of under it",
    ),
    M(
        "bn-bwd-no-xhat-term",
        BN,
        "(count * dy - sum_dy - xhat * sum_dy_xhat)",
        "(count * dy - sum_dy)",
        "training backward forgets the variance's share of the chain rule",
    ),
    M(
        "bn-bwd-inference-no-gamma",
        BN,
        "return dy * (gamma * inv_sigma)",
        "return dy * inv_sigma",
        "inference backward forgets gamma",
    ),
    M(
        "bn-frozen-uses-batch-stats",
        BN,
        "batch_stats = bool(training) and self.trainable",
        "batch_stats = bool(training)",
        "a frozen layer (trainable=False) still normalises with the batch and moves the averages",
    ),
    M(
        "bn-frozen-updates-moving",
        BN,
        'mean, var = self.params["moving_mean"], self.params["moving_variance"]',
        'mean, var = self.params["moving_mean"], self.params["moving_variance"]\n'
        "            if training:\n"
        "                self._update_moving_averages(x.mean(axis=axes), x.var(axis=axes))",
        "a frozen layer normalises with the moving averages but still updates them in fit",
    ),
    M(
        "bn-inference-batch-stats",
        BN,
        "batch_stats = bool(training) and self.trainable",
        "batch_stats = self.trainable",
        "inference (predict) normalises with the batch's statistics, not the moving ones",
    ),
    M(
        "bn-dmoving-var-sigma",
        BN,
        'self.grads["moving_variance"] = -0.5 * gamma * inv_sigma**2 * sum_dy_xhat',
        'self.grads["moving_variance"] = -0.5 * gamma * inv_sigma * sum_dy_xhat',
        "inference gradient of the moving variance with 1/sigma for 1/sigma**2",
    ),
    M(
        "bn-no-scale-aliases-xhat",
        BN,
        'y = xhat * self.params["gamma"] if self.scale else xhat.copy()',
        'y = xhat * self.params["gamma"] if self.scale else xhat',
        "scale=False: y is xhat itself, so y += beta also shifts the cached xhat",
    ),
    # ---- layers/custom.py and base.py: the wrappers of a layer you write ------------------
    M(
        "custom-no-grad-shape-check",
        "tinycnn/layers/custom.py",
        'if tuple(getattr(grad, "shape", ())) != tuple(param.shape):',
        "if False:",
        "a custom backward's gradient of the wrong shape (not summed over the batch) is let through",
    ),
    M(
        "custom-build-unseeded",
        "tinycnn/layers/custom.py",
        "self._build(input_shape, rng, lambda shape, _rng: own(self, shape))",
        "self._build(input_shape, None, lambda shape, _rng: own(self, shape))",
        "a custom build's add_weight draws from fresh entropy, not the model's seeded stream",
    ),
    M(
        "base-optimizer-gets-non-trainable",
        "tinycnn/layers/base.py",
        "return {k: v for k, v in self.params.items() if k not in self.non_trainable}",
        "return dict(self.params)",
        "non-trainable weights (moving averages, trainable=False) still given to the optimizer",
    ),
    # ---- keras_weights.py ------------------------------------------------------------------
    M(
        "kw3-order-by-name",
        "tinycnn/keras_weights.py",
        'return [(f"{root_name}/{name}", saved[name]) for name in wanted]',
        'return [(f"{root_name}/{name}", saved[name]) for name in in_file]',
        "Keras 3 groups handed out in name order (batch_normalization before conv2d), not the model's",
    ),
    M(
        "kw2-order-by-name",
        "tinycnn/keras_weights.py",
        'for name in _string_list(group, "layer_names"):',
        "for name in group:",
        "Keras 2 layers read in HDF5's alphabetical group order instead of layer_names' order",
    ),
    M(
        "kw-count-not-shapes",
        "tinycnn/keras_weights.py",
        "    if got != expected:\n        names",
        "    if len(got) != len(expected):\n        names",
        "only the number of arrays is checked before copying, not their shapes",
    ),
    M(
        "bn-weights-beta-first",
        BN,
        'names = ["gamma"] * self.scale + ["beta"] * self.center + list(MOVING)',
        'names = ["beta"] * self.center + ["gamma"] * self.scale + list(MOVING)',
        "weights listed beta before gamma: Keras files load gamma into beta and back",
    ),
    M(
        "bn-count-per-image",
        BN,
        "count = dy.size // dy.shape[-1]  # M, the values per channel",
        "count = dy.shape[0]  # M, the values per channel",
        "training backward divides by the batch size N instead of N * H * W",
    ),
    M(
        "bn-moving-var-starts-zero",
        BN,
        'starts["moving_variance"] = xp.ones',
        'starts["moving_variance"] = xp.zeros',
        "the moving variance starts at 0: an untrained model's predict divides by sqrt(eps)",
    ),
    M(
        "custom-non-trainable-not-marked",
        "tinycnn/layers/custom.py",
        "    if not trainable:\n        layer.non_trainable.add(name)",
        "    if not trainable:\n        pass",
        "add_weight(..., trainable=False) forgets to mark the weight: the optimizer trains it",
    ),
    M(
        "base-frozen-still-trained",
        "tinycnn/layers/base.py",
        "        if not self.trainable:\n            return {}",
        "        if not self.trainable and not self.params:\n            return {}",
        "a frozen layer (trainable=False) still hands its weights to the optimizer",
    ),
    M(
        "kw3-write-own-names",
        "tinycnn/keras_weights.py",
        'variables = root.create_group(name).create_group("vars")',
        'variables = root.create_group(layer.name).create_group("vars")',
        "save_keras_weights names Keras 3 groups after the layers' own names, not kind and place",
    ),
    M(
        "kw-int-weights-accepted",
        "tinycnn/keras_weights.py",
        'if value.dtype.kind != "f":',
        'if value.dtype.kind not in "fiu":',
        "integer arrays in a weights file are loaded (converted) instead of refused",
    ),
    M(
        "kw3-vars-sorted-as-text",
        "tinycnn/keras_weights.py",
        "keys = sorted(variables, key=int)",
        "keys = sorted(variables)",
        "a Keras 3 layer's vars sorted as text: 0, 1, 10, 11, 2 (a layer with 11+ weights)",
    ),
    # ---- gradient_check/ --------------------------------------------------------------------
    M(
        "gc-no-rebind-non-trainable",
        "tinycnn/gradient_check/state.py",
        "layer.params[key] = array  # in case a forward replaced it",
        "pass",
        "gradcheck restores a non-trainable weight in place only: a forward that rebinds it wins",
    ),
    M(
        "gc-no-restore-non-trainable",
        "tinycnn/gradient_check/state.py",
        "array[...] = saved  # in place: the check perturbs this very array",
        "pass",
        "gradcheck never puts back the moving averages a training forward moved",
    ),
    M(
        "gc-central-one-h",
        "tinycnn/gradient_check/numeric.py",
        "grad[i] = (plus - minus) / (2 * h)",
        "grad[i] = (plus - minus) / h",
        "numerical_gradient divides the central difference by h, not 2h: twice the slope",
    ),
    # ---- viz -------------------------------------------------------------------------------
    M(
        "viz-gradcam-sum-not-mean",
        "tinycnn/viz/gradcam.py",
        "weights = grad.mean(axis=(0, 1))",
        "weights = grad.sum(axis=(0, 1))",
        "Grad-CAM's channel weights summed over the map, not averaged",
    ),
    M(
        "viz-occlusion-sign",
        "tinycnn/viz/occlusion.py",
        "drops = base - probabilities(model, occluded)[:, klass]",
        "drops = probabilities(model, occluded)[:, klass] - base",
        "occlusion map shows the rise of the probability instead of its drop",
    ),
    M(
        "viz-gradcam-no-relu",
        "tinycnn/viz/gradcam.py",
        "return numpy.maximum((features * weights).sum(axis=-1), 0.0)",
        "return (features * weights).sum(axis=-1)",
        "Grad-CAM keeps the negative part of the weighted sum",
    ),
    M(
        "viz-occlusion-no-last-edge",
        "tinycnn/viz/occlusion.py",
        "    if starts[-1] != size - patch:\n        starts.append(size - patch)",
        "    if starts[-1] + patch < size - patch:\n        starts.append(size - patch)",
        "occlusion leaves the last square flush with the edge out when the stride skips it",
    ),
    # ---- exercises ---------------------------------------------------------------------------
    M(
        "ex-rtol-loose",
        "tinycnn/exercises/runner.py",
        "RTOL = 1e-7",
        "RTOL = 1e-3",
        "the checks compare with a tolerance of 1e-3 (float32-sized) instead of 1e-7",
    ),
    M(
        "ex-no-ties",
        "tinycnn/exercises/cases.py",
        "x = _images(rng, (n, h, w, c), whole)",
        "x = _images(rng, (n, h, w, c), False)",
        "the max-pool cases never have ties: a wrong tie rule passes",
    ),
    M(
        "ex-nan-passes",
        "tinycnn/exercises/runner.py",
        "err = np.where(np.isnan(err), np.inf, err)",
        "err = err",
        "a NaN in the student's result compares as right (NaN > 1 is False)",
    ),
    # ---- equivalent: cannot change behaviour (listed, not run, not scored) ----------------
    M(
        "eq-col2im-serial",
        NUMBA,
        "run = kw * c\n    for b in prange(n):\n        dx[b] = 0.0",
        "run = kw * c\n    for b in range(n):\n        dx[b] = 0.0",
        "col2im's image loop serial (range) instead of parallel (prange)",
        equivalent="images are independent: the same additions in the same order per image",
    ),
    M(
        "eq-im2col-tight-slice-end",
        REF,
        "x[\n                :, i : i + stride * ho : stride,",
        "x[\n                :, i : i + stride * (ho - 1) + 1 : stride,",
        "im2col's row slice ends right after its last element",
        equivalent="a strided slice selects the same ho rows with either end",
    ),
    M(
        "eq-relu-le",
        NUMBA,
        "if z[k] < 0.0:",
        "if z[k] <= 0.0:",
        "ReLU sets zeros to zero too",
        equivalent="only -0.0 becomes +0.0; they compare equal and every later sum is the same",
    ),
]


# ---- running ------------------------------------------------------------------------------
@dataclasses.dataclass
class Result:
    id: str
    file: str
    description: str
    status: str
    seconds: float = 0.0
    first_failure: str = ""
    detail: str = ""


_FAIL_LINE = re.compile(r"^(FAILED|ERROR) (.+?)(?: - (.*))?$", re.MULTILINE)


def _failures(output: str) -> list[tuple[str, str, str]]:
    """(kind, node id, message) of each FAILED/ERROR line of pytest's -ra summary."""
    return [(m.group(1), m.group(2), m.group(3) or "") for m in _FAIL_LINE.finditer(output)]


def _env(copy: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy) + os.pathsep + env.get("PYTHONPATH", "")
    # no .pyc files: a mutant of the same size written in the same second as the
    # previous one could otherwise be served the previous one's bytecode
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    data = ROOT.parent / "shared" / "data" / "fashion-mnist"
    if not env.get("TINYCNN_DATA") and data.is_dir():
        env["TINYCNN_DATA"] = str(data)  # the tests look beside the repository, not the copy
    return env


def _run(args: list[str], cwd: Path, timeout: float) -> tuple[int | None, str, float]:
    """Run ``args`` in its own process group; (returncode or None on timeout, output, s)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        args, cwd=cwd, env=_env(cwd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # numba's and the conv pool's threads too
        out, _ = proc.communicate()
        rc = None
    return rc, out, time.perf_counter() - start


def pytest_args(tests, deselect=(), stop_first=True) -> list[str]:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if stop_first:
        args.insert(4, "-x")
    for node in deselect:
        args += ["--deselect", node]
    return args + list(tests)


def make_copy(dest: Path) -> Path:
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, dest / name)
    return dest


def check_import(copy: Path) -> str:
    """The copy's tinycnn must be the one imported (tinycnn is also installed, editable,
    from the working tree): returns tinycnn.__file__, or exits."""
    code = "import tinycnn; print(tinycnn.__file__)"
    rc, out, _ = _run([sys.executable, "-c", code], copy, 300)
    path = out.strip().splitlines()[-1] if out.strip() else ""
    if rc != 0 or not Path(path).resolve().is_relative_to((copy / "tinycnn").resolve()):
        sys.exit(f"mutation_test: the copy's tinycnn is not the one imported ({path!r}):\n{out}")
    return path


def _exists(copy: Path, test: str) -> bool:
    """Whether a test path (``file`` or ``file::node``) names a file of the copy: test
    files listed in TESTS but not written yet (or removed) are skipped, not errors."""
    return (copy / test.split("::")[0]).exists()


def stale_reason(mutant: Mutant, root: Path) -> str:
    """Why the mutant cannot be applied to the tree at ``root`` ("" if it can)."""
    path = root / mutant.file
    if not path.is_file():
        return f"{mutant.file} does not exist"
    count = path.read_text().count(mutant.original)
    return "" if count == 1 else f"original snippet found {count} times, expected once"


@contextlib.contextmanager
def applied(mutant: Mutant, copy: Path):
    """The mutant applied in ``copy``; afterwards the file, its modification time and
    its numba cache files (``__pycache__/<stem>.*.nbi/.nbc``, index stamped with the
    source's hash) are exactly as before, so unmutated kernels need no recompiling."""
    path = copy / mutant.file
    text = path.read_text()
    st = path.stat()
    cache = path.parent / "__pycache__"
    pattern = f"{path.stem}.*.nb[ic]"
    saved = {p: p.read_bytes() for p in cache.glob(pattern)} if cache.is_dir() else {}
    path.write_text(text.replace(mutant.original, mutant.replacement, 1))
    try:
        yield
    finally:
        path.write_text(text)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        if cache.is_dir():
            for p in cache.glob(pattern):
                if p not in saved:
                    p.unlink()
        for p, data in saved.items():
            p.write_bytes(data)


def run_mutant(mutant: Mutant, copy: Path, deselect, skip_files, timeout: float) -> Result:
    result = Result(mutant.id, mutant.file, mutant.description, "STALE")
    reason = stale_reason(mutant, copy)
    if reason:
        result.detail = reason
        return result
    tests = [t for t in mutant.test_files() if t not in skip_files and _exists(copy, t)]
    if not tests:
        result.status, result.detail = "ERROR", "none of its test files exists"
        return result
    with applied(mutant, copy):
        rc, out, seconds = _run(pytest_args(tests, deselect), copy, timeout)
    result.seconds = seconds
    failures = _failures(out)
    if failures:
        kind, node, message = failures[0]
        result.first_failure = node + (f" ({message[:80]})" if kind == "ERROR" else "")
    if rc is None:
        result.status = "TIMEOUT"
    elif rc == 0:
        result.status = "SURVIVED"
    elif rc in (1, 2) or rc < 0:  # 1 tests failed, 2 collection error, < 0 killed by a signal
        result.status = "KILLED"
        if rc < 0:
            result.first_failure = result.first_failure or f"crashed ({signal.Signals(-rc).name})"
        elif not result.first_failure and out.strip():  # no summary line: pytest's last words
            result.first_failure = "(" + out.strip().splitlines()[-1][:100] + ")"
    else:  # 3 internal error, 4 usage error, 5 nothing collected: the runner's problem
        result.status = "ERROR"
        result.detail = f"pytest exit code {rc}: " + out.strip()[-300:]
    return result


def baseline(copy: Path, tests, timeout: float):
    """Run every involved test file unmutated (this also fills numba's cache in the copy).
    Returns (node ids that fail, test files that cannot even be collected)."""
    rc, out, seconds = _run(pytest_args(tests, stop_first=False), copy, timeout)
    if rc is None:
        sys.exit(f"mutation_test: the baseline run took over {timeout:.0f} s; raise --timeout.")
    failing, broken_files = [], []
    for _, node, _ in _failures(out):
        (failing if "::" in node else broken_files).append(node)
    print(f"baseline: {len(tests)} test files in {seconds:.0f} s, exit code {rc}; "
          f"{len(failing)} failing tests deselected, {len(broken_files)} files not collectable")  # fmt: skip
    for node in failing + broken_files:
        print(f"  baseline failure (ignored): {node}")
    if rc not in (0, 1, 2):
        sys.exit(f"mutation_test: the baseline run could not run (exit code {rc}):\n{out[-2000:]}")
    return failing, broken_files


def print_table(results: list[Result], equivalents: list[Mutant]) -> dict:
    width = max([len(r.id) for r in results] + [2])
    fw = max([len(r.file.removeprefix("tinycnn/")) for r in results] + [4])
    print(f"\n{'id':<{width}}  {'file':<{fw}}  {'status':<8} {'s':>5}  first failing test")
    for r in results:
        short = r.file.removeprefix("tinycnn/")
        print(f"{r.id:<{width}}  {short:<{fw}}  {r.status:<8} {r.seconds:5.0f}  "
              f"{r.first_failure or r.detail or '-'}")  # fmt: skip
        print(f"{'':<{width}}  {'':<{fw}}  {'':<8} {'':>5}  ^ {r.description}")
    counts = {s: sum(r.status == s for r in results) for s in
              ("KILLED", "SURVIVED", "TIMEOUT", "STALE", "ERROR")}  # fmt: skip
    total = len(results) + len(equivalents)
    scored = total - len(equivalents)
    score = counts["KILLED"] / scored if scored else 0.0
    print("\n" + ", ".join(f"{n} {s.lower()}" for s, n in counts.items()) +
          f", {len(equivalents)} equivalent (not run)")  # fmt: skip
    print(f"score: killed / (total - equivalent) = {counts['KILLED']} / {scored} = {score:.1%}")
    for status in ("SURVIVED", "STALE", "TIMEOUT", "ERROR"):
        names = [r.id for r in results if r.status == status]
        if names:
            print(f"{status.lower()}: {' '.join(names)}")
    if equivalents:
        print("equivalent mutants (cannot change behaviour, not scored):")
        for m in equivalents:
            print(f"  {m.id}: {m.description} -- {m.equivalent}")
    return {"counts": counts, "total": total, "equivalent": len(equivalents),
            "score": score}  # fmt: skip


def list_mutants(mutants: list[Mutant]) -> None:
    for m in mutants:
        reason = stale_reason(m, ROOT)
        flag = "STALE " if reason else ("EQUIV " if m.equivalent else "")
        print(f"{flag}{m.id}  [{m.file}]  {m.description}")
        if reason:
            print(f"    stale: {reason}")
        if m.equivalent:
            print(f"    equivalent: {m.equivalent}")
        print(f"    tests: {' '.join(m.test_files())}")
    stale = sum(bool(stale_reason(m, ROOT)) for m in mutants)
    print(f"{len(mutants)} mutants ({sum(bool(m.equivalent) for m in mutants)} equivalent), "
          f"{stale} stale against {ROOT}")  # fmt: skip


def validate(mutants: list[Mutant]) -> None:
    ids = [m.id for m in mutants]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        sys.exit(f"mutation_test: duplicate mutant ids {sorted(dupes)}")
    for m in mutants:
        if m.original == m.replacement:
            sys.exit(f"mutation_test: {m.id} changes nothing")
        if not m.tests and m.file not in TESTS:
            sys.exit(f"mutation_test: {m.id}: no tests for {m.file}; add it to TESTS or give tests")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="ID", help="run only these mutants")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (one copy each)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per mutant")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--allow-stale", action="store_true",
                        help="report stale mutants instead of refusing to run")  # fmt: skip
    parser.add_argument("--run-equivalent", action="store_true",
                        help="also run the equivalent mutants (they should survive)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the scratch copies")
    args = parser.parse_args(argv)

    validate(MUTANTS)
    mutants = MUTANTS
    if args.only:
        unknown = set(args.only) - {m.id for m in MUTANTS}
        if unknown:
            sys.exit(f"mutation_test: unknown mutant ids {sorted(unknown)}")
        mutants = [m for m in MUTANTS if m.id in args.only]
    if args.list:
        list_mutants(mutants)
        return 0
    equivalents = [m for m in mutants if m.equivalent and not args.run_equivalent]
    to_run = [m for m in mutants if m not in equivalents]

    scratch = Path(tempfile.mkdtemp(prefix="tinycnn-mutants-"))
    try:
        copies = [make_copy(scratch / f"job{j}") for j in range(max(1, args.jobs))]
        stale = [m for m in to_run if stale_reason(m, copies[0])]
        if stale and not args.allow_stale:
            for m in stale:
                print(f"STALE {m.id} [{m.file}]: {stale_reason(m, copies[0])}")
            print(f"mutation_test: {len(stale)} stale mutants: update their snippets, "
                  "or run with --allow-stale to report them and run the rest.")  # fmt: skip
            return 1
        print(f"scratch copy: {copies[0]} (tinycnn imported from {check_import(copies[0])})")
        tests = list(dict.fromkeys(t for m in to_run if m not in stale for t in m.test_files()))
        for t in tests:
            if not _exists(copies[0], t):
                print(f"note: {t} does not exist (yet): skipped")
        tests = [t for t in tests if _exists(copies[0], t)]
        deselect, broken = (
            baseline(copies[0], tests, max(args.timeout, 1800)) if tests else ([], [])
        )
        for copy in copies[1:]:  # the other jobs start from the compiled numba cache too
            shutil.rmtree(copy)
            shutil.copytree(copies[0], copy)

        results: dict[str, Result] = {}
        free = list(copies)
        lock = threading.Lock()
        started = time.perf_counter()

        def job(mutant: Mutant) -> None:
            with lock:
                copy = free.pop()
            try:
                r = run_mutant(mutant, copy, deselect, broken, args.timeout)
            finally:
                with lock:
                    free.append(copy)
            with lock:
                results[mutant.id] = r
                print(f"[{len(results)}/{len(to_run)} {time.perf_counter() - started:5.0f} s] "
                      f"{r.status:<8} {r.id} ({r.seconds:.0f} s) {r.first_failure or r.detail}",
                      flush=True)  # fmt: skip

        with ThreadPoolExecutor(len(copies)) as pool:
            list(pool.map(job, to_run))
    finally:
        if args.keep:
            print(f"scratch copies kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    ordered = [results[m.id] for m in to_run]
    summary = print_table(ordered, equivalents)
    print(f"total time {time.perf_counter() - started:.0f} s")
    if args.json:
        payload = {
            **summary,
            "baseline_deselected": deselect,
            "baseline_uncollectable": broken,
            "results": [dataclasses.asdict(r) for r in ordered],
            "equivalents": [
                {"id": m.id, "file": m.file, "description": m.description, "reason": m.equivalent}
                for m in equivalents
            ],  # fmt: skip
        }
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 1 if any(r.status == "ERROR" for r in ordered) else 0


if __name__ == "__main__":
    sys.exit(main())
