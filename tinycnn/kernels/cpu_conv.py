"""Convolution on the CPU cores, a few images at a time, so its big matrix stays in cache.

The reference convolution (``reference.conv2d_forward``) unfolds the whole batch
into one im2col matrix and multiplies it once. For the seed network's second
convolution that matrix is (N*121, 576): 36 MB at batch 128, far more than a
core's cache (2 MB of L2 on the machine we measure). Every pass over it then goes
to main memory: im2col writes it, the matrix multiply reads it, backward unfolds
it again for ``dkernel`` and writes and reads its gradient ``dcols`` for ``dx``.
Measured, those passes cost about as much as the multiplications themselves.

Here the same arithmetic is done in a different order:

* the batch is split between the cores, one Python thread per core, each with its
  own share of the images;
* each thread walks through its images a *block* at a time: it unfolds a few
  images into a small im2col matrix that fits in its L2 cache, multiplies it
  straight away and moves on. The big matrix never exists.

A convolution followed by ReLU and max-pooling (``conv_relu_pool_*``, used by
models/fusion.py) goes one step further: each block's convolution output is pooled
while it is still in cache, so the full output never goes to memory at all, and
backward rebuilds its gradient from the pooled one block by block.

How a block is convolved is the job of one of two small classes: ``_Im2colConv``
(im2col and one GEMM, as the reference) or, for 3x3 kernels with many input
channels, ``_WinogradConv`` (Winograd's F(2x2, 3x3), winograd.py: 2.25x fewer
multiplies). ``_linear_part`` picks one per convolution; the block loops, threads
and fusions around them are the same for both.

The threads really run at the same time: NumPy's ``matmul`` and the compiled
kernels below (``nogil=True``) release Python's GIL. Meanwhile the BLAS library is
told to use one thread per call (through ``threadpoolctl``): otherwise each
thread's small matrix multiply would spread over all cores again and the threads
would queue for each other (measured: 1.5-2x slower than one big multiply).

The results equal the reference's up to rounding: ``dkernel`` and ``dbias`` are
summed block by block, and Winograd multiplies in another order (tests/kernels
checks both paths agree and that gradients pass the gradient checks). Numbers in
docs/performance.md.
"""

from __future__ import annotations

import contextlib
import os
import threading
import types
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from . import cpu_numba, winograd

#: Bytes of a block's largest work array: its im2col matrix, or its convolution
#: output if that is wider (6 images of the seed network's first convolution, whose
#: output is the wider). Smaller blocks stay closer to the core but make smaller, less
#: efficient matrix multiplies; benchmarks/conv_block_size.py measures the trade-off
#: (docs/performance.md has the numbers that chose this value).
BLOCK_BYTES = 1 << 20

#: 3x3 convolutions with at least this many input channels (and an even output
#: size) go through Winograd's F(2x2, 3x3) instead of im2col; with fewer channels
#: its 16 GEMMs are too thin to pay for the tile transforms (measured in
#: docs/performance.md). A huge value turns Winograd off.
WINOGRAD_MIN_CHANNELS = 32
#: Bytes of a Winograd block's largest work array, its transformed tiles (16 rows of
#: C numbers per 2x2 output tile): 5 images of the seed network's second convolution.
#: Measured flat within 1% from 512 to 896 KB, 3-6% slower at 256 KB or 1-2 MB
#: (``benchmarks/conv_block_size.py --winograd``).
WINOGRAD_BLOCK_BYTES = 1 << 19


def _serial(parallel_kernel):
    """A single-threaded twin of a cpu_numba kernel: the same Python source compiled
    without threads (its ``prange`` runs as ``range``) and without holding the GIL;
    here the parallelism comes from the Python threads instead.

    The twin gets its own name because numba's on-disk cache files are named after
    the function: under the same name, the two compilations would overwrite and
    load each other's machine code.
    """
    f = parallel_kernel.py_func
    twin = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial")
    twin.__qualname__ = f.__qualname__ + "_serial"
    return numba.njit(nogil=True, cache=True)(twin)


_im2col = _serial(cpu_numba._im2col)
_col2im = _serial(cpu_numba._col2im)
_bias_relu = _serial(cpu_numba._bias_relu)
_bias_relu_backward = _serial(cpu_numba._bias_relu_backward)
_maxpool_forward = _serial(cpu_numba._maxpool_forward)

_pool = {"executor": None, "size": 0, "pid": None}
_scratch = threading.local()  # each thread's work arrays, reused from call to call
_blas = {"lock": threading.Lock(), "users": 0}


def _work_array(name: str, rows: int, cols: int, dtype):
    """A (rows, cols) work array of the calling thread, reused while it is big enough."""
    arrays = _scratch.__dict__.setdefault("arrays", {})
    array = arrays.get(name)
    if array is None or array.dtype != dtype or array.size < rows * cols:
        array = arrays[name] = np.empty(rows * cols, dtype=dtype)
    return array[: rows * cols].reshape(rows, cols)


@contextlib.contextmanager
def _one_blas_thread():
    """Make every BLAS call single-threaded for a while, then restore the old counts.

    Counted, so that two convolutions running at once (say, two models trained in
    two threads) do not restore the count while the other still needs it at 1.
    """
    with _blas["lock"]:
        if "libs" not in _blas:  # finding the loaded BLAS libraries takes ~1 ms: do it once
            _blas["libs"] = ThreadpoolController().select(user_api="blas").lib_controllers
        if _blas["users"] == 0:
            _blas["saved"] = [lib.num_threads for lib in _blas["libs"]]
            for lib in _blas["libs"]:
                lib.set_num_threads(1)
        _blas["users"] += 1
    try:
        yield
    finally:
        with _blas["lock"]:
            _blas["users"] -= 1
            if _blas["users"] == 0:
                for lib, n in zip(_blas["libs"], _blas["saved"], strict=True):
                    lib.set_num_threads(n)


def _check_pool(threads: int) -> None:
    """Make sure the pool of helper threads (``threads`` - 1 of them: the calling
    thread works too) exists and belongs to this process (a process made by fork
    inherits the pool object but not its threads)."""
    if _pool["size"] == threads and _pool["pid"] == os.getpid():
        return
    if _pool["executor"] is not None and _pool["pid"] == os.getpid():
        _pool["executor"].shutdown()
    _pool.update(
        executor=ThreadPoolExecutor(threads - 1, thread_name_prefix="tinycnn-conv"),
        size=threads,
        pid=os.getpid(),
    )


def _split_batch(work, n: int) -> list:
    """Run ``work(first, stop)`` on as many contiguous shares of the n images as we
    have threads (numba's thread count, which tinycnn's users already set), and
    return what each share returned, in order."""
    threads = min(numba.get_num_threads(), n)
    if threads <= 1:
        return [work(0, n)]
    _check_pool(threads)
    bounds = [n * t // threads for t in range(threads + 1)]
    shares = list(zip(bounds[:-1], bounds[1:], strict=True))
    with _one_blas_thread():
        futures = [_pool["executor"].submit(work, *share) for share in shares[1:]]
        try:  # the calling thread takes the first share itself instead of waiting idle
            first = work(*shares[0])
        finally:  # never return (even with an error) while a thread still writes our arrays
            wait(futures)
        return [first, *(f.result() for f in futures)]


def _block_size(per_image_bytes: int, block_bytes: int) -> int:
    """Images per block: as many as keep a block's widest work array within block_bytes."""
    return max(1, block_bytes // per_image_bytes)


# ---- the linear part of a convolution, on one block of images -----------------------------------
# Two ways to compute the same thing; _linear_part picks one for each convolution.
class _Im2colConv:
    """z = im2col(x) @ kernel, the reference's arithmetic, on a block of images.

    x: (N, H, W, C); kernel: (kh, kw, C, F); outputs: the top-left (Ho, Wo).
    """

    def __init__(self, x, kernel, stride: int, ho: int, wo: int):
        self.x, self.stride, self.ho, self.wo = x, stride, ho, wo
        self.kernel_shape = kernel.shape
        kh, kw, c, f = kernel.shape
        self.taps = kh * kw * c
        self.w2 = np.ascontiguousarray(kernel).reshape(self.taps, f)  # (kh*kw*C, F)
        self.block = _block_size(ho * wo * max(self.taps, f) * x.itemsize, BLOCK_BYTES)

    def _unfold(self, s: int, e: int):
        """im2col of images s..e-1 into the calling thread's work array:
        ((e - s) * Ho * Wo, kh * kw * C)."""
        _, h, w, c = self.x.shape
        kh, kw, n = self.kernel_shape[0], self.kernel_shape[1], e - s
        cols = _work_array("cols", n * self.ho * self.wo, self.taps, self.x.dtype)
        _im2col(self.x[s:e].reshape(n, h, w * c), kh, kw, c, self.stride,
                cols.reshape(n, self.ho, self.wo, kh, kw * c))  # fmt: skip
        return cols

    def forward(self, s: int, e: int, z):
        """z ((e - s) * Ho * Wo, F) = the block's convolution, before bias."""
        np.matmul(self._unfold(s, e), self.w2, out=z)

    def new_kernel_grad(self):
        return np.zeros(self.w2.shape, dtype=self.x.dtype)

    def backward(self, s: int, e: int, dz, dkernel, dx):
        """Add the block's kernel gradient to dkernel; write its dx[s:e] if dx is given."""
        # unfolded again, not kept from the forward pass: cheap, and it is in cache
        dkernel += self._unfold(s, e).T @ dz
        if dx is not None:
            _, h, w, c = self.x.shape
            kh, kw, n = self.kernel_shape[0], self.kernel_shape[1], e - s
            dcols = _work_array("dcols", dz.shape[0], self.taps, self.x.dtype)
            np.matmul(dz, self.w2.T, out=dcols)
            _col2im(dcols.reshape(n, self.ho, self.wo, kh, kw * c), kh, kw, c, self.stride,
                    dx[s:e].reshape(n, h, w * c))  # fmt: skip

    def kernel_grad(self, dkernel):
        return dkernel.reshape(self.kernel_shape)


class _WinogradConv:
    """The same convolution by Winograd's F(2x2, 3x3) (see winograd.py): input tiles
    transformed, 16 GEMMs, output tiles transformed back; 2.25x fewer multiplies."""

    def __init__(self, x, kernel, ho: int, wo: int):
        self.x, self.ho, self.wo = x, ho, wo
        self.th, self.tw = ho // 2, wo // 2
        self.c, self.f = kernel.shape[2:]
        # U (16, C, F) and its transpose (16, F, C), in this thread's work arrays (valid
        # while this convolution runs): a fresh 256 KB array cost 64 page faults per
        # call here, 0.2 ms, against 30-40 us for the transform itself
        self.u = winograd.kernel_transform(
            kernel,
            out=_work_array("U", 16, self.c * self.f, kernel.dtype).reshape(16, self.c, self.f),
        )
        self.ut = _work_array("Ut", 16, self.c * self.f, kernel.dtype).reshape(16, self.f, self.c)
        np.copyto(self.ut, self.u.transpose(0, 2, 1))  # a view would do, but 1.5x slower GEMMs
        per_image = 16 * self.th * self.tw * max(self.c, self.f) * x.itemsize
        self.block = _block_size(per_image, WINOGRAD_BLOCK_BYTES)

    def _work(self, name: str, s: int, e: int, width: int):
        """A (16, (e - s) * Th * Tw, width) work array: one row per tile, per position."""
        rows = (e - s) * self.th * self.tw
        return _work_array(name, 16, rows * width, self.x.dtype).reshape(16, rows, width)

    def _input_tiles(self, s: int, e: int):
        v = self._work("winograd V", s, e, self.c)
        winograd.input_tiles(self.x[s:e], self.th, self.tw, v)
        return v

    def forward(self, s: int, e: int, z):
        m = self._work("winograd M", s, e, self.f)
        np.matmul(self._input_tiles(s, e), self.u, out=m)  # M[e] = V[e] @ U[e]
        winograd.output_tiles(m, z.reshape(e - s, self.ho, self.wo, self.f))

    def new_kernel_grad(self):
        return np.zeros(self.u.shape, dtype=self.x.dtype)  # dU

    def backward(self, s: int, e: int, dz, du, dx):
        v = self._input_tiles(s, e)  # recomputed, as im2col's columns are
        dm = self._work("winograd dM", s, e, self.f)
        winograd.output_grad_tiles(dz.reshape(e - s, self.ho, self.wo, self.f), dm)
        du_block = _work_array("winograd dU", 16, self.c * self.f, self.x.dtype)
        du += np.matmul(v.transpose(0, 2, 1), dm, out=du_block.reshape(self.u.shape))
        if dx is not None:
            dv = np.matmul(dm, self.ut, out=v)  # dV[e] = dM[e] @ U[e]^T; V is used up: reuse it
            winograd.input_grad_tiles(dv, self.th, self.tw, dx[s:e])

    def kernel_grad(self, du):
        return winograd.kernel_grad(du)


def conv_algorithm(kernel_shape, stride: int, out_hw) -> str:
    """ "winograd" or "im2col": how a convolution with this kernel (kh, kw, C, F), stride
    and computed output (Ho, Wo) runs here (benchmarks/profile_step.py shows it)."""
    if winograd.applies(kernel_shape, stride, out_hw, WINOGRAD_MIN_CHANNELS):
        return "winograd"
    return "im2col"


def _linear_part(x, kernel, stride: int, out_hw):
    """The fastest of the two for this convolution: Winograd where it applies."""
    if conv_algorithm(kernel.shape, stride, out_hw) == "winograd":
        return _WinogradConv(x, kernel, *out_hw)
    return _Im2colConv(x, kernel, stride, *out_hw)


# ---- the two block loops every convolution here shares ----------------------------------------
def _forward_blocks(x, kernel, stride: int, finish, into=None, out_hw=None):
    """Convolution block by block: for each block of images [s, e), compute the
    convolution into z ((e - s) * Ho * Wo, F) and hand it to ``finish(s, e, z)``,
    which adds the bias, applies the activation and stores the block's result.
    z is a work array, or the block's rows of ``into`` (N, Ho, Wo, F) if given.
    ``out_hw`` = (Ho, Wo) computes only the top-left Ho x Wo outputs (default: all)."""
    n, h, w, _ = x.shape
    kh, kw, _, f = kernel.shape
    ho, wo = out_hw or ((h - kh) // stride + 1, (w - kw) // stride + 1)
    conv = _linear_part(x, kernel, stride, (ho, wo))

    def work(first, stop):
        for s in range(first, stop, conv.block):
            e = min(s + conv.block, stop)
            if into is None:
                z = _work_array("z", (e - s) * ho * wo, f, x.dtype)
            else:
                z = into[s:e].reshape(-1, f)
            conv.forward(s, e, z)
            finish(s, e, z)

    _split_batch(work, n)


def _backward_blocks(x, kernel, stride: int, out_hw, start_grad, input_grad: bool):
    """Gradients of a convolution block by block. ``start_grad(s, e, dz, dbias)`` fills
    dz ((e - s) * Ho * Wo, F) with the gradient with respect to the convolution's
    output (before bias and activation) and adds its column sums to dbias (F,).
    ``out_hw`` = (Ho, Wo): the top-left outputs that have a gradient (all others' is 0).

    Returns ``(dkernel, dbias, dx)`` (dx None unless ``input_grad``).
    """
    n = x.shape[0]
    f = kernel.shape[3]
    (ho, wo) = out_hw
    conv = _linear_part(x, kernel, stride, out_hw)
    dx = np.empty(x.shape, dtype=x.dtype) if input_grad else None

    def work(first, stop):
        # this share's kernel and bias gradients, summed block by block (the kernel's in
        # x's dtype: a float64 sum cost 10 us per block to convert, for no measurable gain
        # over the float32 rounding inside each block's GEMM)
        dkernel, dbias = conv.new_kernel_grad(), np.zeros(f, dtype=np.float64)
        for s in range(first, stop, conv.block):
            e = min(s + conv.block, stop)
            dz = _work_array("dz", (e - s) * ho * wo, f, x.dtype)
            start_grad(s, e, dz, dbias)
            conv.backward(s, e, dz, dkernel, dx)
        return dkernel, dbias

    shares = _split_batch(work, n)
    dkernel = conv.kernel_grad(sum(k for k, _ in shares))
    return dkernel, sum(b for _, b in shares).astype(x.dtype), dx


# ---- Conv2D ---------------------------------------------------------------------------------
def conv2d_forward(x, kernel, bias, relu: bool, stride: int = 1):
    """Same contract as ``reference.conv2d_forward``: y (N, Ho, Wo, F)."""
    x = np.ascontiguousarray(x)
    n, h, w, _ = x.shape
    kh, kw, _, f = kernel.shape
    y = np.empty((n, (h - kh) // stride + 1, (w - kw) // stride + 1, f), dtype=x.dtype)
    bias = np.zeros(f, dtype=x.dtype) if bias is None else bias

    def finish(s, e, z):  # z is y's block
        _bias_relu(z, bias, relu)

    _forward_blocks(x, kernel, stride, finish, into=y)
    return y


def conv2d_backward(x, kernel, y, dy, relu: bool, with_bias: bool, stride: int, input_grad: bool):
    """Same contract as ``reference.conv2d_backward``: ``(dkernel, dbias, dx)``."""
    dy = np.ascontiguousarray(dy)
    f = kernel.shape[3]

    def start_grad(s, e, dz, dbias):
        # the gradient before the ReLU, and its column sums (the bias gradient)
        sums = _work_array("bias sums", 1, f, np.float64)
        rows = dz.shape[0]
        _bias_relu_backward(dy[s:e].reshape(rows, f), y[s:e].reshape(rows, f), relu, dz, sums)
        dbias += sums[0]

    dkernel, dbias, dx = _backward_blocks(
        np.ascontiguousarray(x), kernel, stride, y.shape[1:3], start_grad, input_grad
    )
    return dkernel, (dbias if with_bias else None), dx


# ---- Conv2D(ReLU) + MaxPooling2D in one pass --------------------------------------------------
@numba.njit(nogil=True, cache=True)
def _unpool_relu(dy, argmax, out, ph, pw, dz, dbias):
    """Backward of ReLU + max-pooling whose windows tile the image (stride = pool).

    dy, argmax, out: (n, Hp, Wp, F). dz (n, Hp*ph, Wp*pw, F), the outputs the windows
    cover, receives dy at each window's winner if that window's output was positive
    (ReLU), 0 everywhere else; dbias (F,) adds up the same gradients.
    """
    n, hp_n, wp_n, f_n = dy.shape
    zero = dz.dtype.type(0.0)
    for b in range(n):
        for hp in range(hp_n):
            for wp in range(wp_n):
                g, arg, best = dy[b, hp, wp], argmax[b, hp, wp], out[b, hp, wp]
                for f in range(f_n):
                    if best[f] > zero:
                        dbias[f] += g[f]
                for k in range(ph * pw):
                    dst = dz[b, hp * ph + k // pw, wp * pw + k % pw]
                    for f in range(f_n):
                        dst[f] = g[f] if (arg[f] == k and best[f] > zero) else zero


def pooled_region(ho: int, wo: int, ph: int, pw: int) -> tuple[int, int]:
    """The rows and columns of a (Ho, Wo) convolution output that ph x pw pooling
    windows (stride = pool size) cover: the rest are never read, and get no gradient,
    so conv_relu_pool_* computes only these."""
    return ho // ph * ph, wo // pw * pw


def conv_relu_pool_forward(x, kernel, bias, ph: int, pw: int):
    """Same contract as ``reference.conv_relu_pool_forward``: ``(out, argmax)``.

    Each block's convolution output z is pooled while it is still in cache: the
    full (N, Ho, Wo, F) output is never written to memory. Only the outputs that
    some pooling window reads are computed: with an odd Ho (11 in the seed
    network's second convolution) the last row and column are never pooled, so
    computing them would be 17% wasted work, in backward too.
    """
    x = np.ascontiguousarray(x)
    n, h, w, _ = x.shape
    kh, kw, _, f = kernel.shape
    ho, wo = pooled_region(h - kh + 1, w - kw + 1, ph, pw)
    out = np.empty((n, ho // ph, wo // pw, f), dtype=x.dtype)
    argmax = np.empty(out.shape, dtype=np.int8)
    bias = np.zeros(f, dtype=x.dtype) if bias is None else bias

    def finish(s, e, z):
        _bias_relu(z, bias, True)
        _maxpool_forward(z.reshape(e - s, ho, wo, f), ph, pw, ph, pw, out[s:e], argmax[s:e])

    _forward_blocks(x, kernel, 1, finish, out_hw=(ho, wo))
    return out, argmax


def conv_relu_pool_backward(x, kernel, dy, out, argmax, ph: int, pw: int, input_grad: bool):
    """Same contract as ``reference.conv_relu_pool_backward``: ``(dkernel, dbias, dx)``."""
    dy = np.ascontiguousarray(dy)
    x = np.ascontiguousarray(x)
    kh, kw, _, f = kernel.shape
    ho, wo = pooled_region(x.shape[1] - kh + 1, x.shape[2] - kw + 1, ph, pw)

    def start_grad(s, e, dz, dbias):
        _unpool_relu(dy[s:e], argmax[s:e], out[s:e], ph, pw, dz.reshape(e - s, ho, wo, f), dbias)

    return _backward_blocks(x, kernel, 1, (ho, wo), start_grad, input_grad)
