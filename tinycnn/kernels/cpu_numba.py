"""Fast CPU kernels, compiled by numba, for the work NumPy cannot do in one pass.

Each function here computes exactly what its namesake in ``reference.py`` computes
(Adam's: the update in ``optimizers/adam.py``; the tests check that they agree), but
as one compiled loop over memory instead of several NumPy passes with temporaries.
Why each one pays off (measured by ``benchmarks/profile_step.py``, see docs/performance.md):

* im2col / col2im (``_im2col``, ``_col2im``): the reference does 9 strided slice
  copies, each a separate pass; here each image's patches are copied (or added back)
  in one pass. ``cpu_conv.py`` runs them on its blocks of images.
* max-pooling: the reference compares window by window with ``where``, allocating
  a temporary per offset; here one pass reads each pixel once.
* bias + ReLU, and the ReLU mask: one pass instead of two or three.
* Adam: the reference needs several full-size passes; here one pass updates
  m, v and the weights together.

``prange`` loops run on all cores (numba's threads); images in a batch are
independent, so splitting the batch axis needs no locks. ``cache=True`` keeps the
compiled machine code on disk, so only the very first run pays the compile time.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ..conv_arithmetic import output_size
from . import checks

# numba's own thread pool ("workqueue") rather than OpenMP, whose threads spin-wait
# after each parallel loop, against OpenBLAS's for the same cores (docs/performance.md).
# Set before the first parallel call.
numba.config.THREADING_LAYER = "workqueue"

_jit = numba.njit(parallel=True, cache=True, fastmath=False)

#: Rows per chunk of bias_relu_backward's column sums (the Dense layers' bias gradient).
BIAS_SUM_ROWS = 16


# ---- im2col / col2im ------------------------------------------------------------------------
@_jit
def _im2col(x, kh, kw, c, stride, cols):
    """x (N, H, W*C) -> cols (N, Ho, Wo, kh, kw*C); see reference.im2col.

    For a fixed output pixel and kernel row i, the kw pixels of the patch are
    neighbours in memory (channels-last), so each patch row is one contiguous run
    of kw*C numbers: copy runs, not single pixels.
    The run is sliced out first so that the copy loop indexes both sides with the
    loop counter alone: the compiler then turns it into vector copies (``src[start + e]``
    would need a check per element for a negative index; docs/performance.md).
    """
    n = x.shape[0]
    ho, wo = cols.shape[1], cols.shape[2]
    run = kw * c
    if run < 8:
        # Short runs (the first layer's: C = 1, runs of 3 numbers): a copy loop of 3
        # costs more to start than to run, so here the inner loop goes along an output
        # row instead (wo numbers, read every stride*C-th, written every kh*kw*C-th);
        # from runs of about 8 numbers on it is the slower one (docs/performance.md).
        # (One function with both loops, not two: cpu_conv._serial compiles a
        # single-threaded twin of this one, and a twin must not call a parallel kernel.)
        for b in prange(n):
            for oh in range(ho):
                for i in range(kh):
                    src = x[b, oh * stride + i]
                    for e in range(run):  # e: one number of a run (kernel column, channel)
                        dst = cols[b, oh, :, i, e]
                        for ow in range(wo):
                            dst[ow] = src[ow * stride * c + e]
        return
    for b in prange(n):
        for oh in range(ho):
            for ow in range(wo):
                start = ow * stride * c
                for i in range(kh):
                    src = x[b, oh * stride + i, start : start + run]
                    dst = cols[b, oh, ow, i]
                    for e in range(run):
                        dst[e] = src[e]


@_jit
def _col2im(dcols, kh, kw, c, stride, dx):
    """dcols (N, Ho, Wo, kh, kw*C) added back onto dx (N, H, W*C), zeroed first;
    the same contiguous runs as _im2col, with += (images in parallel: no races)."""
    n, ho, wo = dcols.shape[0], dcols.shape[1], dcols.shape[2]
    run = kw * c
    for b in prange(n):
        dx[b] = 0.0
        for oh in range(ho):
            for ow in range(wo):
                start = ow * stride * c
                for i in range(kh):
                    src = dcols[b, oh, ow, i]
                    dst = dx[b, oh * stride + i, start : start + run]
                    for e in range(run):
                        dst[e] += src[e]


# ---- max-pooling -------------------------------------------------------------------------------
@_jit
def _maxpool_forward(x, ph, pw, sh, sw, out, argmax):
    n, _, _, c = x.shape
    ho, wo = out.shape[1], out.shape[2]
    for b in prange(n):
        for oh in range(ho):
            for ow in range(wo):
                best = out[b, oh, ow]
                arg = argmax[b, oh, ow]
                first = x[b, oh * sh, ow * sw]
                for ch in range(c):
                    best[ch] = first[ch]
                    arg[ch] = 0
                for i in range(ph):
                    for j in range(pw):
                        if i == 0 and j == 0:
                            continue
                        row = x[b, oh * sh + i, ow * sw + j]
                        k = i * pw + j
                        for ch in range(c):
                            # as in reference.maxpool_forward: larger wins (strict: the
                            # first maximum keeps its place in a tie), and a NaN always
                            # wins (row[ch] != row[ch] only for NaN); this order of the
                            # two tests is the cheaper one (docs/performance.md).
                            if row[ch] > best[ch] or row[ch] != row[ch]:
                                best[ch] = row[ch]
                                arg[ch] = k


def maxpool_forward(x, ph, pw, sh, sw):
    """Same contract as ``reference.maxpool_forward``."""
    checks.float_array("maxpool_forward", "x", x, 4)
    checks.sizes("maxpool_forward", ph=ph, pw=pw, sh=sh, sw=sw)
    checks.pool_window("maxpool_forward", ph, pw)
    checks.window_fits("maxpool_forward", "x", x.shape, ph, pw)
    n, h, w, c = x.shape
    ho, wo = output_size(h, ph, sh), output_size(w, pw, sw)
    out = np.empty((n, ho, wo, c), dtype=x.dtype)
    argmax = np.empty((n, ho, wo, c), dtype=np.int8)
    _maxpool_forward(np.ascontiguousarray(x), ph, pw, sh, sw, out, argmax)
    return out, argmax


@_jit
def _maxpool_backward_scatter(dy, argmax, ph, pw, sh, sw, dx):
    """General case (windows may overlap): zero dx, then add each gradient to its winner."""
    n, ho, wo, c = dy.shape
    for b in prange(n):
        dx[b] = 0.0
        for oh in range(ho):
            for ow in range(wo):
                g = dy[b, oh, ow]
                arg = argmax[b, oh, ow]
                for ch in range(c):
                    k = arg[ch]
                    if 0 <= k < ph * pw:  # a corrupt argmax must not write outside dx
                        dx[b, oh * sh + k // pw, ow * sw + k % pw, ch] += g[ch]


@_jit
def _maxpool_backward_tiled(dy, argmax, ph, pw, dx):
    """Windows that tile the image (stride == pool): each pixel of dx belongs to at
    most one window, so it is written exactly once, with its window's gradient if it
    was the winner and 0 otherwise. No zeroing pass, no scattered writes."""
    n, ho, wo, c = dy.shape
    for b in prange(n):
        for oh in range(ho):
            for i in range(ph):
                for ow in range(wo):
                    g = dy[b, oh, ow]
                    arg = argmax[b, oh, ow]
                    for j in range(pw):
                        dst = dx[b, oh * ph + i, ow * pw + j]
                        k = i * pw + j
                        for ch in range(c):
                            dst[ch] = g[ch] if arg[ch] == k else 0.0
        # pixels of the last rows/columns that no window covered (floor: 11 -> 5)
        dx[b, ho * ph :] = 0.0
        dx[b, :, wo * pw :] = 0.0


def maxpool_backward(dy, argmax, x_shape, ph, pw, sh, sw):
    """Same contract as ``reference.maxpool_backward``."""
    checks.float_array("maxpool_backward", "dy", dy, 4)
    checks.sizes("maxpool_backward", ph=ph, pw=pw, sh=sh, sw=sw)
    checks.pool_window("maxpool_backward", ph, pw)
    x_shape = checks.image_shape("maxpool_backward", x_shape)
    checks.window_fits("maxpool_backward", "x_shape", x_shape, ph, pw)
    n, h, w, c = x_shape
    pooled = (n, output_size(h, ph, sh), output_size(w, pw, sw), c)
    checks.same_shape("maxpool_backward", "dy", dy, pooled, f"pooled, for x_shape {x_shape}")
    checks.argmax_array("maxpool_backward", argmax, dy.shape, "the shape of dy")
    dx = np.empty(x_shape, dtype=dy.dtype)
    dy = np.ascontiguousarray(dy)
    if (sh, sw) == (ph, pw):
        _maxpool_backward_tiled(dy, argmax, ph, pw, dx)
    else:
        _maxpool_backward_scatter(dy, argmax, ph, pw, sh, sw, dx)
    return dx


# ---- ReLU ------------------------------------------------------------------------------------------
# ReLU(NaN) is NaN, as np.maximum(NaN, 0) is: each comparison below is written so
# that a NaN fails it (every comparison with NaN is false) and so passes through;
# ``v > 0`` as the condition for keeping v would silently turn a NaN into 0. Backward
# routes the gradient through a NaN output too (PyTorch's rule: like max-pooling's
# winner, the NaN "won" over 0).
@_jit
def _bias_relu(y, bias, relu):
    """y (M, F) += bias, then max(., 0) if relu; in place, one pass."""
    m, f = y.shape
    for r in prange(m):
        row = y[r]
        for k in range(f):
            v = row[k] + bias[k]
            row[k] = 0.0 if (relu and v <= 0.0) else v


def bias_relu(y, bias, *, relu: bool):
    """Same contract as ``reference.bias_relu`` (in place on ``y``)."""
    checks.float_array("bias_relu", "y", y, 2)
    checks.writable("bias_relu", "y", y)
    if bias is not None:
        checks.float_array("bias_relu", "bias", bias, 1, like=y, like_name="y")
        checks.same_shape("bias_relu", "bias", bias, y.shape[1:], "(F,) for y of shape (M, F)")
    if bias is None:
        return relu_forward(y) if relu else y
    _bias_relu(y, bias, relu)
    return y


@_jit
def _relu_flat(z):
    for k in prange(z.size):
        if z[k] < 0.0:
            z[k] = 0.0


def relu_forward(z):
    """Same contract as ``reference.relu_forward`` (in place)."""
    checks.float_array("relu_forward", "z", z)
    checks.writable("relu_forward", "z", z)
    _relu_flat(z.reshape(-1))
    return z


@_jit
def _relu_backward(dy, y, dz):
    for k in prange(dy.size):
        dz[k] = 0.0 if y[k] <= 0.0 else dy[k]


def relu_backward(dy, y):
    """Same contract as ``reference.relu_backward``."""
    checks.float_array("relu_backward", "dy", dy)
    checks.float_array("relu_backward", "y", y, like=dy, like_name="dy")
    checks.same_shape("relu_backward", "y", y, dy.shape, "the shape of dy")
    dz = np.empty(dy.shape, dtype=dy.dtype)
    _relu_backward(
        np.ascontiguousarray(dy).reshape(-1), np.ascontiguousarray(y).reshape(-1), dz.reshape(-1)
    )
    return dz


@_jit
def _bias_relu_backward(dy, y, relu, dz, partial):
    """dz = dy where y > 0 or NaN, else 0 (or dz = dy if not relu), and per-chunk column
    sums of dz into partial (T, F).

    The rows are cut into T chunks, one per task, each summing into its own row of
    ``partial`` (in float64): no two threads ever write the same memory. T comes from
    the number of rows alone (see bias_relu_backward), so the sums round the same way
    whatever the thread count.
    """
    m, f = dy.shape
    tasks = partial.shape[0]
    chunk = (m + tasks - 1) // tasks
    for t in prange(tasks):
        acc = partial[t]
        acc[:] = 0.0
        for r in range(t * chunk, min(m, (t + 1) * chunk)):
            for k in range(f):
                v = 0.0 if (relu and y[r, k] <= 0.0) else dy[r, k]
                dz[r, k] = v
                acc[k] += v


def bias_relu_backward(dy, y, *, relu: bool, with_bias: bool):
    """Same contract as ``reference.bias_relu_backward``: one pass for mask and bias sum."""
    checks.float_array("bias_relu_backward", "dy", dy, 2)
    checks.float_array("bias_relu_backward", "y", y, 2, like=dy, like_name="dy")
    checks.same_shape("bias_relu_backward", "y", y, dy.shape, "the shape of dy")
    if not with_bias:
        return (relu_backward(dy, y) if relu else dy), None
    dy = np.ascontiguousarray(dy)
    dz = np.empty_like(dy)
    # a chunk per BIAS_SUM_ROWS rows, not per thread: the chunks' sums are then added
    # in the same order with 1 thread or 16, so the bias gradient rounds the same way
    tasks = max(1, -(-dy.shape[0] // BIAS_SUM_ROWS))
    partial = np.empty((tasks, dy.shape[1]), dtype=np.float64)
    _bias_relu_backward(dy, y, relu, dz, partial)
    return dz, partial.sum(axis=0).astype(dy.dtype)


# ---- Adam ----------------------------------------------------------------------------------------------
@_jit
def _adam(param, grad, m, v, lr_t, b1, b2, eps, tiny):
    # (1 - b1) etc. are computed once, in the array's precision: a float64 constant
    # here would turn the whole loop into slower float64 arithmetic.
    one = param.dtype.type(1.0)
    zero = param.dtype.type(0.0)
    c1, c2 = one - b1, one - b2
    for k in prange(param.size):
        gk = grad[k]
        mk = b1 * m[k] + c1 * gk
        vk = b2 * v[k] + c2 * (gk * gk)
        # Flush to zero moments below the smallest normal number (tiny): a dead unit's
        # m shrinks by beta_1 every step into the subnormal range, where x86 arithmetic
        # is 50-100x slower (docs/performance.md). Such an m moves its weight by less
        # than 1e-30; TensorFlow flushes them too (the CPU's flush-to-zero mode).
        # (A NaN fails both tests and is kept, as in the reference.)
        if abs(mk) < tiny:
            mk = zero
        if vk < tiny:
            vk = zero
        m[k] = mk
        v[k] = vk
        param[k] -= lr_t * (mk / (np.sqrt(vk) + eps))


def adam_update(param, grad, m, v, lr_t, beta_1, beta_2, epsilon):
    """The update of ``optimizers/adam.py`` (its reference lines), in place on param, m
    and v, in one pass; m and v values below the dtype's smallest normal number become
    0 (see _adam)."""
    checks.float_array("adam_update", "param", param)
    for name, a in (("grad", grad), ("m", m), ("v", v)):
        checks.float_array("adam_update", name, a, like=param, like_name="param")
        checks.same_shape("adam_update", name, a, param.shape, "the shape of param")
    for name, a in (("param", param), ("m", m), ("v", v)):
        checks.writable("adam_update", name, a)
    scalar = param.dtype.type  # every constant in the parameter's precision
    _adam(
        param.reshape(-1),
        np.ascontiguousarray(grad).reshape(-1),
        m.reshape(-1),
        v.reshape(-1),
        scalar(lr_t),
        scalar(beta_1),
        scalar(beta_2),
        scalar(epsilon),
        scalar(np.finfo(param.dtype).tiny),
    )
