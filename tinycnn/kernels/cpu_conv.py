"""Convolution on the CPU cores, a few images at a time, so its big matrix stays in cache.

The reference convolution (``reference.conv2d_forward``) unfolds the whole batch
into one im2col matrix and multiplies it once. For the seed network's second
convolution that matrix is (N*121, 576): 36 MB at batch 128, far more than a
core's cache (2 MB of L2 on the machine we measure). Every pass over it then goes
to main memory: im2col writes it, the matrix multiply reads it, backward unfolds
it again for ``dkernel`` and writes and reads its gradient ``dcols`` for ``dx``.
Those passes cost about as much as the multiplications themselves (docs/performance.md).

Here the same arithmetic is done in a different order:

* the batch is cut into *shares* of images, and the cores' Python threads (one per
  core) take shares until none is left;
* a share is done a *block* at a time: a few images are unfolded into a small im2col
  matrix that fits in the core's L2 cache, multiplied straight away, and so on.
  The big matrix never exists.

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
would queue for each other.

The results equal the reference's up to rounding: ``dkernel`` and ``dbias`` are
summed block by block, and Winograd multiplies in another order (tests/kernels
checks both paths agree and that gradients pass the gradient checks). Numbers in
docs/performance.md.

The rounding does not depend on the thread count, though: shares and blocks are cut
from the batch size alone, each share sums its own gradients, and the shares' sums
are added in share order at the end. Threads decide only *who* computes a share,
never what is added to what, so the same seeds train the same weights with 1 thread
or 16 (tests/test_determinism.py).
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

from ..conv_arithmetic import output_size
from . import checks, cpu_numba, winograd

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
#: Chosen with ``benchmarks/conv_block_size.py --winograd`` (docs/performance.md).
WINOGRAD_BLOCK_BYTES = 1 << 19

#: Images per share, at least: the batch is cut into a power of two of shares (so that
#: 2, 4, 8... threads get equal work) of at least this many images each, and no more
#: than MAX_SHARES. More shares keep more threads busy; each share costs one more
#: partial kernel gradient to add up (256 KB for the seed network's second
#: convolution). Both are chosen from the batch size alone, never from the thread
#: count: that is what makes the results independent of it (see _shares).
#: Blocks are cut within shares, to about the sizes above (_blocks): at batch 32 to
#: 128 each share is 8 images, one block of 8 in the seed network's first
#: convolution, two of 4 in its second (as fast as the block sizes' own 6 and 5
#: images: docs/performance.md).
SHARE_IMAGES = 8
MAX_SHARES = 16


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

_helper_threads = {"executor": None, "size": 0, "pid": None}  # see _ensure_helper_threads
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


def _ensure_helper_threads(threads: int) -> None:
    """Make sure the helper threads (``threads`` - 1 of them: the calling thread works
    too) exist and belong to this process (a process made by fork inherits the
    executor object but not its threads)."""
    helpers = _helper_threads
    if helpers["size"] == threads and helpers["pid"] == os.getpid():
        return
    if helpers["executor"] is not None and helpers["pid"] == os.getpid():
        helpers["executor"].shutdown()
    helpers.update(
        executor=ThreadPoolExecutor(threads - 1, thread_name_prefix="tinycnn-conv"),
        size=threads,
        pid=os.getpid(),
    )


def _shares(n: int) -> list:
    """The n images of a batch cut into contiguous shares [first, stop), in order.

    Only n decides the cut, never the thread count: each share sums its own kernel
    and bias gradients and the shares' sums are added in share order (_SumInOrder),
    so every number is rounded the same way whether one thread does all the shares or
    eight threads share them. (Cut by thread count, as it once was, 1 and 2 threads
    trained different weights: docs/performance.md.)
    """
    count = 1
    while count < MAX_SHARES and 2 * count * SHARE_IMAGES <= n:
        count *= 2
    bounds = [n * j // count for j in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _blocks(first: int, stop: int, block: int) -> list:
    """Images [first, stop) cut into blocks of about ``block`` images, all of nearly
    the same size: 16 images at 5 a block make 5 + 5 + 6, not 5 + 5 + 5 + 1 (a thin
    matrix multiply is slow) nor 4 + 4 + 4 + 4 (each block costs some overhead)."""
    if stop <= first:
        return []
    count = max(1, round((stop - first) / block))
    bounds = [first + (stop - first) * k // count for k in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _run_shares(work, shares: list) -> None:
    """Run ``work(share, first, stop)`` for every share (first, stop) = shares[share].

    As many threads as numba's thread count (which tinycnn's users already set) and
    the shares allow; each takes the next share nobody has taken yet, so a thread
    slowed down by another program does fewer shares instead of holding up the rest.
    Which thread does a share changes no number (see _shares).
    """
    threads = min(numba.get_num_threads(), len(shares))
    todo, lock = iter(range(len(shares))), threading.Lock()

    def take_shares():
        while True:
            with lock:
                share = next(todo, None)
            if share is None:
                return
            work(share, *shares[share])

    # one BLAS thread even when we run alone: OpenBLAS cuts a long inner dimension
    # into pieces differently with 1 thread and with several (so rounds differently)
    with _one_blas_thread():
        if threads <= 1:
            take_shares()
            return
        _ensure_helper_threads(numba.get_num_threads())
        executor = _helper_threads["executor"]
        futures = [executor.submit(take_shares) for _ in range(threads - 1)]
        try:  # the calling thread takes shares too instead of waiting idle
            take_shares()
        finally:  # never return (even with an error) while a thread still writes our arrays
            wait(futures)
        for future in futures:
            future.result()  # a helper thread's error, raised here


class _SumInOrder:
    """Adds up the shares' sums, ``stack[0] + stack[1] + ...`` left to right into
    ``stack[0]``, for each stack (an array with one row per share): the same additions,
    so the same rounding, whichever thread computed which share.

    A share is added as soon as every share before it is in (``done(share)``), by the
    thread that completes that run: while its numbers are still in the cache (added all
    at the end, they went through main memory: docs/performance.md).
    """

    def __init__(self, *stacks):
        self.stacks, self.finished, self.added = stacks, set(), 0
        self.lock = threading.Lock()

    def done(self, share: int) -> None:
        with self.lock:
            self.finished.add(share)
            while self.added in self.finished:
                if self.added > 0:  # (share 0's sums are where the others go)
                    for stack in self.stacks:
                        stack[0] += stack[self.added]
                self.added += 1

    def totals(self):
        """stack[0] of each stack, once every share is done."""
        assert self.added == len(self.stacks[0]), "a share is missing"
        return [stack[0] for stack in self.stacks]


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

    def _unfold(self, begin: int, end: int):
        """im2col of images begin..end-1 into the calling thread's work array:
        ((end - begin) * Ho * Wo, kh * kw * C)."""
        _, h, w, c = self.x.shape
        kh, kw, n = self.kernel_shape[0], self.kernel_shape[1], end - begin
        cols = _work_array("cols", n * self.ho * self.wo, self.taps, self.x.dtype)
        _im2col(self.x[begin:end].reshape(n, h, w * c), kh, kw, c, self.stride,
                cols.reshape(n, self.ho, self.wo, kh, kw * c))  # fmt: skip
        return cols

    def forward(self, begin: int, end: int, z):
        """z ((end - begin) * Ho * Wo, F) = the block's convolution, before bias."""
        np.matmul(self._unfold(begin, end), self.w2, out=z)

    def new_kernel_grads(self, count: int):
        """(count, kh*kw*C, F): a kernel gradient per share, in a work array."""
        return _work_array("kernel grads", count, self.w2.size, self.x.dtype).reshape(
            count, *self.w2.shape
        )

    def backward(self, begin: int, end: int, dz, dkernel, dx, add: bool):
        """Add the block's kernel gradient to dkernel (write it there if not ``add``);
        write its dx[begin:end] if dx is given."""
        # unfolded again, not kept from the forward pass: cheap, and it is in cache
        cols = self._unfold(begin, end)
        if add:
            dkernel += cols.T @ dz
        else:
            np.matmul(cols.T, dz, out=dkernel)
        if dx is not None:
            _, h, w, c = self.x.shape
            kh, kw, n = self.kernel_shape[0], self.kernel_shape[1], end - begin
            dcols = _work_array("dcols", dz.shape[0], self.taps, self.x.dtype)
            np.matmul(dz, self.w2.T, out=dcols)
            _col2im(dcols.reshape(n, self.ho, self.wo, kh, kw * c), kh, kw, c, self.stride,
                    dx[begin:end].reshape(n, h, w * c))  # fmt: skip

    def kernel_grad(self, dkernel):
        return dkernel.reshape(self.kernel_shape).copy()  # a copy: dkernel is a work array


class _WinogradConv:
    """The same convolution by Winograd's F(2x2, 3x3) (see winograd.py): input tiles
    transformed, 16 GEMMs, output tiles transformed back; 2.25x fewer multiplies.

    It calls the compiled tile transforms (``winograd._input_tiles`` etc.) without
    their entry points' argument checks: it makes every array itself, in the right
    shape, and the checks, four calls a block, would cost about 1% of a training step.
    """

    def __init__(self, x, kernel, ho: int, wo: int):
        self.x, self.ho, self.wo = x, ho, wo
        self.th, self.tw = ho // 2, wo // 2
        self.c, self.f = kernel.shape[2:]
        # U (16, C, F) and its transpose (16, F, C), in this thread's work arrays (valid
        # while this convolution runs): a fresh array each call cost more in page faults
        # than the transform itself (docs/performance.md)
        self.u = winograd.kernel_transform(
            kernel,
            out=_work_array("U", 16, self.c * self.f, kernel.dtype).reshape(16, self.c, self.f),
        )
        self.ut = _work_array("Ut", 16, self.c * self.f, kernel.dtype).reshape(16, self.f, self.c)
        np.copyto(self.ut, self.u.transpose(0, 2, 1))  # a view would do, but slows the GEMMs
        per_image = 16 * self.th * self.tw * max(self.c, self.f) * x.itemsize
        self.block = _block_size(per_image, WINOGRAD_BLOCK_BYTES)

    def _work(self, name: str, begin: int, end: int, width: int):
        """A (16, (end - begin) * Th * Tw, width) work array: one row per tile, per position."""
        rows = (end - begin) * self.th * self.tw
        return _work_array(name, 16, rows * width, self.x.dtype).reshape(16, rows, width)

    def _input_tiles(self, begin: int, end: int):
        v = self._work("winograd V", begin, end, self.c)
        winograd._input_tiles(self.x[begin:end], self.th, self.tw, v)
        return v

    def forward(self, begin: int, end: int, z):
        m = self._work("winograd M", begin, end, self.f)
        np.matmul(self._input_tiles(begin, end), self.u, out=m)  # M[e] = V[e] @ U[e]
        winograd._output_tiles(m, z.reshape(end - begin, self.ho, self.wo, self.f))

    def new_kernel_grads(self, count: int):
        """(count, 16, C, F): a dU per share, in a work array."""
        return _work_array("kernel grads", count, self.u.size, self.x.dtype).reshape(
            count, *self.u.shape
        )

    def backward(self, begin: int, end: int, dz, du, dx, add: bool):
        v = self._input_tiles(begin, end)  # recomputed, as im2col's columns are
        dm = self._work("winograd dM", begin, end, self.f)
        winograd._output_grad_tiles(dz.reshape(end - begin, self.ho, self.wo, self.f), dm)
        vt = v.transpose(0, 2, 1)
        if add:  # dU[e] += V[e]^T @ dM[e]
            du_block = _work_array("winograd dU", 16, self.c * self.f, self.x.dtype)
            du += np.matmul(vt, dm, out=du_block.reshape(self.u.shape))
        else:
            np.matmul(vt, dm, out=du)
        if dx is not None:
            dv = np.matmul(dm, self.ut, out=v)  # dV[e] = dM[e] @ U[e]^T; V is used up: reuse it
            winograd._input_grad_tiles(dv, self.th, self.tw, dx[begin:end])

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
    """Convolution block by block: for each block of images [begin, end), compute the
    convolution into z ((end - begin) * Ho * Wo, F) and hand it to ``finish(begin, end, z)``,
    which adds the bias, applies the activation and stores the block's result.
    z is a work array, or the block's rows of ``into`` (N, Ho, Wo, F) if given.
    ``out_hw`` = (Ho, Wo) computes only the top-left Ho x Wo outputs (default: all)."""
    n, h, w, _ = x.shape
    kh, kw, _, f = kernel.shape
    ho, wo = out_hw or (output_size(h, kh, stride), output_size(w, kw, stride))
    conv = _linear_part(x, kernel, stride, (ho, wo))

    def work(_, first, stop):
        for begin, end in _blocks(first, stop, conv.block):
            if into is None:
                z = _work_array("z", (end - begin) * ho * wo, f, x.dtype)
            else:
                z = into[begin:end].reshape(-1, f)
            conv.forward(begin, end, z)
            finish(begin, end, z)

    _run_shares(work, _shares(n))


def _backward_blocks(x, kernel, stride: int, out_hw, start_grad, input_grad: bool):
    """Gradients of a convolution block by block. ``start_grad(begin, end, dz, dbias)`` fills
    dz ((end - begin) * Ho * Wo, F) with the gradient with respect to the convolution's
    output (before bias and activation) and adds its column sums to dbias (F,).
    ``out_hw`` = (Ho, Wo): the top-left outputs that have a gradient (all others' is 0).

    Returns ``(dkernel, dbias, dx)`` (dx None unless ``input_grad``).
    """
    n = x.shape[0]
    f = kernel.shape[3]
    (ho, wo) = out_hw
    conv = _linear_part(x, kernel, stride, out_hw)
    dx = np.empty(x.shape, dtype=x.dtype) if input_grad else None

    # each share's kernel and bias gradients, summed block by block (the kernel's in
    # x's dtype: a float64 sum would cost a conversion per block and keep no accuracy
    # that the float32 GEMM inside each block has not already rounded away)
    shares = _shares(n)
    dkernels = conv.new_kernel_grads(len(shares))
    dbiases = np.zeros((len(shares), f), dtype=np.float64)
    sums = _SumInOrder(dkernels, dbiases)

    def work(share, first, stop):
        blocks = _blocks(first, stop, conv.block)
        if not blocks:  # an empty batch
            dkernels[share] = 0.0
        for k, (begin, end) in enumerate(blocks):
            dz = _work_array("dz", (end - begin) * ho * wo, f, x.dtype)
            start_grad(begin, end, dz, dbiases[share])
            conv.backward(begin, end, dz, dkernels[share], dx, add=k > 0)  # the first block writes
        sums.done(share)

    _run_shares(work, shares)
    dkernel, dbias = sums.totals()
    return conv.kernel_grad(dkernel), dbias.astype(x.dtype), dx


# ---- Conv2D ---------------------------------------------------------------------------------
def conv2d_forward(x, kernel, bias, *, stride: int, relu: bool):
    """Same contract as ``reference.conv2d_forward``: y (N, Ho, Wo, F)."""
    checks.conv2d("conv2d_forward", x, kernel, bias, stride)
    x = np.ascontiguousarray(x)
    n, h, w, _ = x.shape
    kh, kw, _, f = kernel.shape
    y = np.empty((n, output_size(h, kh, stride), output_size(w, kw, stride), f), dtype=x.dtype)
    bias = np.zeros(f, dtype=x.dtype) if bias is None else bias

    def finish(begin, end, z):  # z is y's block
        _bias_relu(z, bias, relu)

    _forward_blocks(x, kernel, stride, finish, into=y)
    return y


def conv2d_backward(
    x, kernel, y, dy, *, stride: int, relu: bool, with_bias: bool, input_grad: bool
):
    """Same contract as ``reference.conv2d_backward``: ``(dkernel, dbias, dx)``."""
    checks.conv2d_backward("conv2d_backward", x, kernel, y, dy, stride)
    dy = np.ascontiguousarray(dy)
    f = kernel.shape[3]

    def start_grad(begin, end, dz, dbias):
        # the gradient before the ReLU, and its column sums (the bias gradient)
        sums = _work_array("bias sums", 1, f, np.float64)
        rows = dz.shape[0]
        dy_rows, y_rows = dy[begin:end].reshape(rows, f), y[begin:end].reshape(rows, f)
        _bias_relu_backward(dy_rows, y_rows, relu, dz, sums)
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
    or NaN (ReLU: see cpu_numba's ReLU), 0 everywhere else; dbias (F,) adds up the
    same gradients.
    """
    n, hp_n, wp_n, f_n = dy.shape
    zero = dz.dtype.type(0.0)
    for b in range(n):
        for hp in range(hp_n):
            for wp in range(wp_n):
                g, arg, best = dy[b, hp, wp], argmax[b, hp, wp], out[b, hp, wp]
                for f in range(f_n):
                    if not (best[f] <= zero):
                        dbias[f] += g[f]
                for k in range(ph * pw):
                    dst = dz[b, hp * ph + k // pw, wp * pw + k % pw]
                    for f in range(f_n):
                        dst[f] = g[f] if (arg[f] == k and not (best[f] <= zero)) else zero


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
    checks.conv_relu_pool("conv_relu_pool_forward", x, kernel, bias, ph, pw)
    x = np.ascontiguousarray(x)
    n, h, w, _ = x.shape
    kh, kw, _, f = kernel.shape
    ho, wo = pooled_region(output_size(h, kh, 1), output_size(w, kw, 1), ph, pw)
    out = np.empty((n, ho // ph, wo // pw, f), dtype=x.dtype)
    argmax = np.empty(out.shape, dtype=np.int8)
    bias = np.zeros(f, dtype=x.dtype) if bias is None else bias

    def finish(begin, end, z):
        _bias_relu(z, bias, True)
        z = z.reshape(end - begin, ho, wo, f)
        _maxpool_forward(z, ph, pw, ph, pw, out[begin:end], argmax[begin:end])

    _forward_blocks(x, kernel, 1, finish, out_hw=(ho, wo))
    return out, argmax


def conv_relu_pool_backward(x, kernel, dy, out, argmax, ph: int, pw: int, *, input_grad: bool):
    """Same contract as ``reference.conv_relu_pool_backward``: ``(dkernel, dbias, dx)``."""
    checks.conv_relu_pool_backward("conv_relu_pool_backward", x, kernel, dy, out, argmax, ph, pw)
    dy = np.ascontiguousarray(dy)
    x = np.ascontiguousarray(x)
    kh, kw, _, f = kernel.shape
    ho, wo = pooled_region(output_size(x.shape[1], kh, 1), output_size(x.shape[2], kw, 1), ph, pw)

    def start_grad(begin, end, dz, dbias):
        dz = dz.reshape(end - begin, ho, wo, f)
        _unpool_relu(dy[begin:end], argmax[begin:end], out[begin:end], ph, pw, dz, dbias)

    return _backward_blocks(x, kernel, 1, (ho, wo), start_grad, input_grad)
