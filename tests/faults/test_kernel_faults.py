"""Bad arrays handed straight to the fast kernels get a clear error, never a crash.

A compiled loop given an array of the wrong shape reads or writes past its end: a
segmentation fault kills the whole Python process, pytest included. So the calls run
in a child process (one for all cases, to pay the imports once): a crash is then a
failed test here, and each case must print the exception it raised.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("tinycnn.kernels.cpu_conv", reason="numba or threadpoolctl is not installed")

# The child process prepares these arrays; each case is one call on them.
SETUP = """
import numpy as np
from tinycnn import kernels
from tinycnn.kernels import cpu_conv, cpu_numba, winograd
from tinycnn.optimizers import Adam
f32, f64 = np.float32, np.float64
p = np.ones(1000, f32); g = np.ones(1000, f32); m = np.zeros(1000, f32); v = np.zeros(1000, f32)
x = np.ones((2, 6, 6, 3), f32); dy_pool = np.ones((2, 3, 3, 3), f32)
arg = np.zeros((2, 3, 3, 3), np.int8)
y = np.ones((9, 7), f32); b7 = np.ones(7, f32)
k = np.ones((3, 3, 3, 4), f32); b4 = np.ones(4, f32); y_conv = np.ones((2, 4, 4, 4), f32)
flags = dict(stride=1, relu=True, with_bias=True, input_grad=True)  # conv2d_backward's
out_fused = np.ones((2, 2, 2, 4), f32); arg_fused = np.zeros((2, 2, 2, 4), np.int8)
xw = np.ones((2, 8, 8, 3), f32); vw = np.empty((16, 2 * 3 * 3, 3), f32)
mw = np.ones((16, 2 * 3 * 3, 4), f32); yw = np.empty((2, 6, 6, 4), f32)
"""

# name: (call, exception type, fragments its message must contain)
# fmt: off
CASES = {
    # adam_update: m, v, grad must match param (a short m once read/wrote past its end)
    "adam m too short": (
        "cpu_numba.adam_update(p, g, np.zeros(1, f32), v, 1e-3, .9, .999, 1e-7)",
        "ValueError", ["adam_update", "m has shape (1,)", "(1000,)"]),
    "adam v too short, via Adam": (
        "Adam().update_param(p, g, {'m': m, 'v': np.zeros(3, f32)}, 1e-3)",
        "ValueError", ["adam_update", "v has shape (3,)", "(1000,)"]),
    "adam grad too long": (
        "cpu_numba.adam_update(p, np.ones(2000, f32), m, v, 1e-3, .9, .999, 1e-7)",
        "ValueError", ["adam_update", "grad has shape (2000,)", "(1000,)"]),
    "adam grad float64": (
        "cpu_numba.adam_update(p, g.astype(f64), m, v, 1e-3, .9, .999, 1e-7)",
        "TypeError", ["adam_update", "grad is float64 but param is float32"]),
    "adam param strided": (
        "cpu_numba.adam_update(np.ones(2000, f32)[::2], g, m, v, 1e-3, .9, .999, 1e-7)",
        "ValueError", ["adam_update", "param", "C-contiguous"]),
    "adam int m": (
        "cpu_numba.adam_update(p, g, np.zeros(1000, np.int32), v, 1e-3, .9, .999, 1e-7)",
        "TypeError", ["adam_update", "m must be float32 or float64, got int32"]),
    "adam list grad": (
        "cpu_numba.adam_update(p, [1.0] * 1000, m, v, 1e-3, .9, .999, 1e-7)",
        "TypeError", ["adam_update", "grad must be a NumPy array, got list"]),
    # max-pooling
    "maxpool 3-D x": (
        "cpu_numba.maxpool_forward(np.ones((6, 6, 3), f32), 2, 2, 2, 2)",
        "ValueError", ["maxpool_forward", "x must have 4 dimensions", "(6, 6, 3)"]),
    "maxpool window too big": (
        "cpu_numba.maxpool_forward(x, 7, 2, 1, 1)",
        "ValueError", ["maxpool_forward", "7x2 window", "6x6", "(2, 6, 6, 3)"]),
    "maxpool zero stride": (
        "cpu_numba.maxpool_forward(x, 2, 2, 0, 2)",
        "ValueError", ["maxpool_forward", "sh must be a positive int, got 0"]),
    "maxpool window beyond int8": (
        "cpu_numba.maxpool_forward(np.ones((1, 12, 12, 1), f32), 12, 12, 1, 1)",
        "ValueError", ["maxpool_forward", "144 positions", "127"]),
    "maxpool backward argmax shape": (
        "cpu_numba.maxpool_backward(dy_pool, np.zeros((2, 3, 3, 2), np.int8), x.shape, 2, 2, 2, 2)",
        "ValueError", ["maxpool_backward", "argmax has shape (2, 3, 3, 2)", "(2, 3, 3, 3)"]),
    "maxpool backward argmax int64": (
        "cpu_numba.maxpool_backward(dy_pool, arg.astype(np.int64), x.shape, 2, 2, 2, 2)",
        "TypeError", ["maxpool_backward", "argmax must be an int8", "int64"]),
    "maxpool backward dy for another x": (
        "cpu_numba.maxpool_backward(dy_pool, arg, (2, 12, 12, 3), 2, 2, 2, 2)",
        "ValueError", ["maxpool_backward", "dy has shape (2, 3, 3, 3)", "(2, 6, 6, 3)"]),
    "maxpool backward x_shape": (
        "cpu_numba.maxpool_backward(dy_pool, arg, (6, 6, 3), 2, 2, 2, 2)",
        "ValueError", ["maxpool_backward", "x_shape must be 4 sizes", "(6, 6, 3)"]),
    # bias + ReLU, ReLU
    "bias_relu bias length": (
        "cpu_numba.bias_relu(y.copy(), np.ones(5, f32), relu=True)",
        "ValueError", ["bias_relu", "bias has shape (5,)", "(7,)"]),
    "bias_relu bias float64": (
        "cpu_numba.bias_relu(y.copy(), b7.astype(f64), relu=True)",
        "TypeError", ["bias_relu", "bias is float64 but y is float32"]),
    "bias_relu transposed y": (
        "cpu_numba.bias_relu(np.ones((7, 9), f32).T, b7, relu=True)",
        "ValueError", ["bias_relu", "y (shape (9, 7))", "C-contiguous"]),
    "bias_relu 1-D y": (
        "cpu_numba.bias_relu(np.ones(7, f32), b7, relu=True)",
        "ValueError", ["bias_relu", "y must have 2 dimensions", "(7,)"]),
    "bias_relu_backward y shape": (
        "cpu_numba.bias_relu_backward(y, np.ones((3, 7), f32), relu=True, with_bias=True)",
        "ValueError", ["bias_relu_backward", "y has shape (3, 7)", "(9, 7)"]),
    "relu_forward strided": (
        "cpu_numba.relu_forward(np.ones((4, 6), f32)[:, ::2])",
        "ValueError", ["relu_forward", "z (shape (4, 3))", "C-contiguous"]),
    "relu_forward ints": (
        "cpu_numba.relu_forward(np.ones(4, np.int64))",
        "TypeError", ["relu_forward", "z must be float32 or float64, got int64"]),
    "relu_backward short y": (  # once broadcast, then read past y's end
        "cpu_numba.relu_backward(np.ones(10, f32), np.ones(1, f32))",
        "ValueError", ["relu_backward", "y has shape (1,)", "(10,)"]),
    # convolutions
    "conv2d channels": (
        "cpu_conv.conv2d_forward(x, np.ones((3, 3, 2, 4), f32), b4, stride=1, relu=True)",
        "ValueError", ["conv2d_forward", "kernel has shape (3, 3, 2, 4)", "x has shape (2, 6, 6, 3)"]),
    "conv2d bias length": (
        "cpu_conv.conv2d_forward(x, k, np.ones(3, f32), stride=1, relu=True)",
        "ValueError", ["conv2d_forward", "bias has shape (3,)", "(4,)"]),
    "conv2d kernel float64": (
        "cpu_conv.conv2d_forward(x, k.astype(f64), b4, stride=1, relu=True)",
        "TypeError", ["conv2d_forward", "kernel is float64 but x is float32"]),
    "conv2d kernel too big, via kernels": (
        "kernels.conv2d_forward(x, np.ones((7, 3, 3, 4), f32), b4, stride=1, relu=True)",
        "ValueError", ["conv2d_forward", "7x3 window", "6x6"]),
    "conv2d stride 0": (
        "cpu_conv.conv2d_forward(x, k, b4, stride=0, relu=True)",
        "ValueError", ["conv2d_forward", "stride must be a positive int, got 0"]),
    "conv2d backward dy shape": (
        "cpu_conv.conv2d_backward(x, k, y_conv, np.ones((2, 3, 4, 4), f32), **flags)",
        "ValueError", ["conv2d_backward", "dy has shape (2, 3, 4, 4)", "(2, 4, 4, 4)"]),
    "conv2d backward y shape": (
        "cpu_conv.conv2d_backward(x, k, np.ones((1, 4, 4, 4), f32), y_conv, **flags)",
        "ValueError", ["conv2d_backward", "y has shape (1, 4, 4, 4)", "(2, 4, 4, 4)"]),
    "conv_relu_pool channels": (
        "cpu_conv.conv_relu_pool_forward(x, np.ones((3, 3, 5, 4), f32), b4, 2, 2)",
        "ValueError", ["conv_relu_pool_forward", "kernel has shape (3, 3, 5, 4)", "(2, 6, 6, 3)"]),
    "conv_relu_pool pool too big": (
        "cpu_conv.conv_relu_pool_forward(x, k, b4, 5, 2)",
        "ValueError", ["conv_relu_pool_forward", "5x2 pool", "4x4"]),
    "conv_relu_pool backward argmax": (
        "cpu_conv.conv_relu_pool_backward(x, k, out_fused, out_fused, arg, 2, 2, input_grad=True)",
        "ValueError", ["conv_relu_pool_backward", "argmax has shape (2, 3, 3, 3)", "(2, 2, 2, 4)"]),
    "conv_relu_pool backward out": (
        "cpu_conv.conv_relu_pool_backward(x, k, out_fused, out_fused[:1], arg_fused, 2, 2, input_grad=True)",
        "ValueError", ["conv_relu_pool_backward", "out has shape (1, 2, 2, 4)", "(2, 2, 2, 4)"]),
    "conv_relu_pool backward dy float64": (
        "cpu_conv.conv_relu_pool_backward(x, k, out_fused.astype(f64), out_fused, arg_fused, 2, 2, input_grad=True)",
        "TypeError", ["conv_relu_pool_backward", "dy is float64 but x is float32"]),
    # Winograd's entry points
    "winograd input_tiles v": (
        "winograd.input_tiles(xw, 3, 3, np.empty((16, 5, 3), f32))",
        "ValueError", ["input_tiles", "v has shape (16, 5, 3)", "(16, 18, 3)"]),
    "winograd input_tiles too many tiles": (
        "winograd.input_tiles(xw, 4, 3, np.empty((16, 24, 3), f32))",
        "ValueError", ["input_tiles", "4x3 tiles", "10x8", "(2, 8, 8, 3)"]),
    "winograd output_tiles odd y": (
        "winograd.output_tiles(mw, np.empty((2, 6, 7, 4), f32))",
        "ValueError", ["output_tiles", "whole 2x2 tiles", "(2, 6, 7, 4)"]),
    "winograd output_tiles m": (
        "winograd.output_tiles(mw[:, :9], yw)",
        "ValueError", ["output_tiles", "m has shape (16, 9, 4)", "(16, 18, 4)"]),
    "winograd output_grad_tiles dm": (
        "winograd.output_grad_tiles(yw, np.empty((16, 18, 3), f32))",
        "ValueError", ["output_grad_tiles", "dm has shape (16, 18, 3)", "(16, 18, 4)"]),
    "winograd input_grad_tiles dx": (
        "winograd.input_grad_tiles(vw, 3, 3, np.empty((2, 6, 8, 3), f32))",
        "ValueError", ["input_grad_tiles", "3x3 tiles", "8x8", "(2, 6, 8, 3)"]),
    "winograd kernel_transform 5x5": (
        "winograd.kernel_transform(np.ones((5, 5, 3, 4), f32))",
        "ValueError", ["kernel_transform", "kernel has shape (5, 5, 3, 4)", "(3, 3, 3, 4)"]),
    "winograd kernel_transform out": (
        "winograd.kernel_transform(k, out=np.empty((16, 4, 3), f32))",
        "ValueError", ["kernel_transform", "out has shape (16, 4, 3)", "(16, 3, 4)"]),
    "winograd kernel_grad du": (
        "winograd.kernel_grad(np.ones((9, 3, 4), f32))",
        "ValueError", ["kernel_grad", "du has shape (9, 3, 4)", "(16, 3, 4)"]),
}
# fmt: on

CHILD = """
import json, sys, traceback
exec(sys.argv[1])
for name, call in json.loads(sys.argv[2]).items():
    try:
        eval(call)
        result = "no error"
    except Exception as error:
        result = f"{type(error).__name__}: {error}"
    print(json.dumps([name, result]), flush=True)  # flushed: a later crash keeps it
"""


@pytest.fixture(scope="module")
def outcomes():
    """Every case run once in one child process: {name: "ExceptionType: message"}."""
    calls = {name: case[0] for name, case in CASES.items()}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, SETUP, json.dumps(calls)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    results = dict(json.loads(line) for line in done.stdout.splitlines() if line.startswith("["))
    return done, results


@pytest.mark.parametrize("name", list(CASES))
def test_bad_arrays_raise_a_clear_error(name, outcomes):
    done, results = outcomes
    _, error_type, fragments = CASES[name]
    assert name in results, (
        f"the child process died before or in this case (exit status {done.returncode}, "
        f"-11 is a segmentation fault); stderr:\n{done.stderr[-3000:]}"
    )
    assert results[name].startswith(f"{error_type}: "), results[name]
    for fragment in fragments:
        assert fragment in results[name]


def test_the_child_process_ends_normally(outcomes):
    done, results = outcomes
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(results) == len(CASES)
