"""Fast CPU kernels, compiled by numba, for the work NumPy cannot do in one pass.

Each function here computes exactly what its namesake in ``reference.py`` computes
(the tests check that they agree), but as one compiled loop over memory instead of
several NumPy passes with temporaries. Why each one pays off (measured by
``benchmarks/profile_step.py``, see docs/performance.md):

* im2col / col2im: the reference does 9 strided slice copies, each a separate pass;
  here each image's patches are copied (or added back) in one pass, in parallel.
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

# numba's own thread pool ("workqueue") rather than OpenMP: OpenMP threads spin-wait
# after each parallel loop and then fight OpenBLAS's threads for the same two cores
# (measured: max-pooling 8.4 ms with OpenMP vs 0.8 ms with workqueue, batch 128).
# Set before the first parallel call.
numba.config.THREADING_LAYER = "workqueue"

_jit = numba.njit(parallel=True, cache=True, fastmath=False)


# ---- im2col / col2im ------------------------------------------------------------------------
@_jit
def _im2col(x, kh, kw, c, stride, cols):
    """x (N, H, W*C) -> cols (N, Ho, Wo, kh, kw*C); see reference.im2col.

    For a fixed output pixel and kernel row i, the kw pixels of the patch are
    neighbours in memory (channels-last), so each patch row is one contiguous run
    of kw*C numbers: copy runs, not single pixels.
    The run is sliced out first so that the copy loop indexes both sides with the
    loop counter alone: the compiler then turns it into vector copies (indexing
    ``src[start + e]`` instead was 2x slower: a possibly negative index needs a check).
    """
    n = x.shape[0]
    ho, wo = cols.shape[1], cols.shape[2]
    run = kw * c
    if run < 8:
        # Short runs (the first layer's: C = 1, runs of 3 numbers): a copy loop of 3
        # costs more to start than to run, so here the inner loop goes along an output
        # row instead (wo numbers, read every stride*C-th, written every kh*kw*C-th).
        # 2.5x faster for the first layer (4 vs 10 us per image; a training step 1%
        # faster at batch 64 and 128); slower from runs of about 8 numbers on.
        # (One function with both loops, not two: _serial compiles a single-threaded
        # twin of this one, and a twin must not call a parallel kernel.)
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


def im2col(x, kh, kw, stride=1, out=None):
    """Same contract as ``reference.im2col``; ``out`` may supply the result buffer."""
    n, h, w, c = x.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    x = np.ascontiguousarray(x)
    if out is None:
        out = np.empty((n * ho * wo, kh * kw * c), dtype=x.dtype)
    _im2col(x.reshape(n, h, w * c), kh, kw, c, stride, out.reshape(n, ho, wo, kh, kw * c))
    return out


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


def col2im(dcols, x_shape, kh, kw, stride=1):
    """Same contract as ``reference.col2im``."""
    n, h, w, c = x_shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    dx = np.empty(x_shape, dtype=dcols.dtype)
    dcols = np.ascontiguousarray(dcols).reshape(n, ho, wo, kh, kw * c)
    _col2im(dcols, kh, kw, c, stride, dx.reshape(n, h, w * c))
    return dx


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
                            if row[ch] > best[ch]:  # strict: the first maximum wins ties
                                best[ch] = row[ch]
                                arg[ch] = k


def maxpool_forward(x, ph, pw, sh, sw):
    """Same contract as ``reference.maxpool_forward``."""
    n, h, w, c = x.shape
    ho, wo = (h - ph) // sh + 1, (w - pw) // sw + 1
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
    dx = np.empty(x_shape, dtype=dy.dtype)
    dy = np.ascontiguousarray(dy)
    if (sh, sw) == (ph, pw):
        _maxpool_backward_tiled(dy, argmax, ph, pw, dx)
    else:
        _maxpool_backward_scatter(dy, argmax, ph, pw, sh, sw, dx)
    return dx


# ---- ReLU ------------------------------------------------------------------------------------------
@_jit
def _bias_relu(y, bias, relu):
    """y (M, F) += bias, then max(., 0) if relu; in place, one pass."""
    m, f = y.shape
    for r in prange(m):
        row = y[r]
        for k in range(f):
            v = row[k] + bias[k]
            row[k] = v if (v > 0.0 or not relu) else 0.0


def bias_relu(y, bias, relu: bool):
    """Same contract as ``reference.bias_relu`` (in place on ``y``)."""
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
    _relu_flat(z.reshape(-1))
    return z


@_jit
def _relu_backward(dy, y, dz):
    for k in prange(dy.size):
        dz[k] = dy[k] if y[k] > 0.0 else 0.0


def relu_backward(dy, y):
    """Same contract as ``reference.relu_backward``."""
    dz = np.empty(np.broadcast_shapes(dy.shape, y.shape), dtype=dy.dtype)
    _relu_backward(
        np.ascontiguousarray(dy).reshape(-1), np.ascontiguousarray(y).reshape(-1), dz.reshape(-1)
    )
    return dz


@_jit
def _bias_relu_backward(dy, y, relu, dz, partial):
    """dz = dy * (y > 0) (or dy), and per-chunk column sums of dz into partial (T, F).

    The rows are cut into T chunks, one per task, each summing into its own row of
    ``partial`` (in float64): no two threads ever write the same memory.
    """
    m, f = dy.shape
    tasks = partial.shape[0]
    chunk = (m + tasks - 1) // tasks
    for t in prange(tasks):
        acc = partial[t]
        acc[:] = 0.0
        for r in range(t * chunk, min(m, (t + 1) * chunk)):
            for k in range(f):
                v = dy[r, k] if (not relu or y[r, k] > 0.0) else 0.0
                dz[r, k] = v
                acc[k] += v


def bias_relu_backward(dy, y, relu: bool, with_bias: bool, out=None):
    """Same contract as ``reference.bias_relu_backward``: one pass for mask and bias sum."""
    if not with_bias:
        return (relu_backward(dy, y) if relu else dy), None
    dy = np.ascontiguousarray(dy)
    dz = np.empty_like(dy) if out is None else out
    partial = np.empty((4 * numba.get_num_threads(), dy.shape[1]), dtype=np.float64)
    _bias_relu_backward(dy, y, relu, dz, partial)
    return dz, partial.sum(axis=0).astype(dy.dtype)


# ---- Adam ----------------------------------------------------------------------------------------------
@_jit
def _adam(p, g, m, v, lr_t, b1, b2, eps, tiny):
    # (1 - b1) etc. are computed once, in the array's precision: a float64 constant
    # here would turn the whole loop into slower float64 arithmetic.
    one = p.dtype.type(1.0)
    zero = p.dtype.type(0.0)
    c1, c2 = one - b1, one - b2
    for k in prange(p.size):
        gk = g[k]
        mk = b1 * m[k] + c1 * gk
        vk = b2 * v[k] + c2 * (gk * gk)
        # Flush to zero moments that fall below the smallest normal number (tiny).
        # A weight whose gradient stays 0 (a dead ReLU unit's) has its m shrink by
        # beta_1 every step, through the subnormal range: x86 CPUs compute with
        # subnormal numbers 50-100x slower. Measured on the seed network: after one
        # epoch 14% of the dense layer's m was subnormal, and this update took 3.0
        # instead of 0.8 ms. Such an m moves its weight by less than 1e-30 anyway
        # (TensorFlow flushes them too: it runs with the CPU's flush-to-zero mode).
        if abs(mk) < tiny:
            mk = zero
        if vk < tiny:
            vk = zero
        m[k] = mk
        v[k] = vk
        p[k] -= lr_t * (mk / (np.sqrt(vk) + eps))


def adam_update(param, grad, m, v, lr_t, beta_1, beta_2, epsilon):
    """Same contract as ``reference.adam_update`` (in place on param, m, v), except that
    m and v values below the dtype's smallest normal number become 0 (see _adam)."""
    t = param.dtype.type
    _adam(
        param.reshape(-1),
        np.ascontiguousarray(grad).reshape(-1),
        m.reshape(-1),
        v.reshape(-1),
        t(lr_t),
        t(beta_1),
        t(beta_2),
        t(epsilon),
        t(np.finfo(param.dtype).tiny),
    )
