"""Winograd's minimal filtering F(2x2, 3x3): a 3x3 convolution with 2.25x fewer multiplies.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2015). A 3x3
convolution computes each 2x2 tile of its output from a 4x4 tile ``d`` of its input
(neighbouring tiles overlap by two pixels). Done directly that costs 2*2*3*3 = 36
multiplies per tile and channel pair; Winograd's identity does it with 16:

    Y = A^T [ (G g G^T)  *  (B^T d B) ] A          (* : element by element)
          2x4    4x4          4x4        4x2

with ``g`` the 3x3 kernel and the small constant matrices ``BT``, ``G``, ``AT`` below.
The identity is exact (a polynomial-interpolation argument: Lavin & Gray, section
4); the numbers differ from the direct sum only in rounding.

For many channels (C in, F out) the element-by-element product becomes 16 matrix
multiplies: for each of the 16 positions ``e`` of a 4x4 tile,

    M[e] = V[e] @ U[e]     V[e]: (tiles, C) transformed input,  U[e]: (C, F) kernel

so a convolution turns into cheap tile transforms (additions only) around 16 GEMMs
that together do 16*C*F multiply-adds per 2x2 output tile, instead of the 36*C*F
of im2col's one GEMM. For the seed network's second convolution that is the
bulk of a training step (docs/performance.md has the measurements).

Backward is the same algebra transposed (every step above is linear):

    dM = A dY A^T                  the output gradient, per tile      (2x2 -> 4x4)
    dU[e] = V[e]^T @ dM[e]         dkernel = G^T dU G                  (4x4 -> 3x3)
    dV[e] = dM[e] @ U[e]^T         dx tile = B dV B^T, added onto dx   (4x4 tiles overlap)

This module holds the math: the matrices, the kernel transforms, and the tile
transforms as compiled loops (each 2-D transform is a 1-D transform of the rows,
then of the columns). ``cpu_conv.py`` runs them block by block on all cores.
``tile_transform`` is the readable matrix form of the same transforms; the tests
check that the loops agree with it and that convolutions agree with im2col's.
"""

from __future__ import annotations

import numba
import numpy as np

from . import checks

#: Input transform: V = BT d BT^T turns a 4x4 input tile d into the Winograd domain.
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
#: Kernel transform: U = G g G^T turns a 3x3 kernel g into a 4x4 one.
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
#: Output transform: Y = AT M AT^T turns a 4x4 product M into a 2x2 output tile.
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def applies(kernel_shape, stride: int, out_hw, channels_min: int) -> bool:
    """True when a convolution can go through F(2x2, 3x3): a 3x3 kernel, stride 1, an
    output of whole 2x2 tiles, and at least ``channels_min`` input channels (with few
    channels the 16 GEMMs are too thin to pay for the transforms)."""
    kh, kw, c, _ = kernel_shape
    ho, wo = out_hw
    return (kh, kw) == (3, 3) and stride == 1 and ho % 2 == 0 and wo % 2 == 0 and c >= channels_min


# ---- the readable form ---------------------------------------------------------------------
def tile_transform(left, tiles, right_t):
    """``left @ tile @ right_t.T`` for every tile and channel: tiles (..., a, b, C).

    For example ``tile_transform(BT, d, BT)`` is the input transform BT d BT^T of 4x4
    tiles d (..., 4, 4, C): what the compiled loops below compute, written plainly.
    """
    return np.einsum("ia,...abc,jb->...ijc", left, tiles, right_t)


def kernel_transform(kernel, out=None):
    """U (16, C, F) from kernel (3, 3, C, F): U[e] is position e = 4*i + j of G g G^T.
    ``out`` may supply U's array (16, C, F)."""
    checks.float_array("kernel_transform", "kernel", kernel, 4)
    checks.same_shape("kernel_transform", "kernel", kernel, (3, 3, *kernel.shape[2:]), "3x3")
    c, f = kernel.shape[2:]
    if out is not None:
        checks.float_array("kernel_transform", "out", out, like=kernel, like_name="kernel")
        checks.same_shape("kernel_transform", "out", out, (16, c, f), "(16, C, F)")
        checks.writable("kernel_transform", "out", out)
    u = np.empty((16, c, f), dtype=kernel.dtype) if out is None else out
    g = np.ascontiguousarray(kernel).reshape(3, 3, c * f)
    _sandwich(G.astype(kernel.dtype), g, u.reshape(4, 4, c * f))
    return u


def kernel_grad(du):
    """dkernel (3, 3, C, F) from dU (16, C, F): G^T dU G, the transpose of
    :func:`kernel_transform`."""
    checks.float_array("kernel_grad", "du", du, 3)
    checks.same_shape("kernel_grad", "du", du, (16, *du.shape[1:]), "(16, C, F)")
    c, f = du.shape[1:]
    dkernel = np.empty((3, 3, c * f), dtype=du.dtype)
    _sandwich(G.T.astype(du.dtype), np.ascontiguousarray(du).reshape(4, 4, c * f), dkernel)
    return dkernel.reshape(3, 3, c, f)


@numba.njit(nogil=True, cache=True)
def _sandwich(left, middle, out):
    """out[i, j] = sum over a, b of left[i, a] * middle[a, b] * left[j, b]: the matrix
    product left @ middle @ left.T for each of the C*F kernels at once.

    left: (p, q); middle: (q, q, C*F); out: (p, p, C*F). (``np.einsum`` does the same,
    many times slower: docs/performance.md.)
    """
    p, q = left.shape
    for i in range(p):
        for j in range(p):
            o = out[i, j]
            o[:] = 0.0
            for a in range(q):
                for b in range(q):
                    weight = left[i, a] * left[j, b]
                    if weight != 0.0:  # G is mostly zeros
                        src = middle[a, b]
                        for k in range(o.shape[0]):
                            o[k] += weight * src[k]


# ---- the 1-D transforms, one C-vector at a time ------------------------------------------------
# Each applies one of the matrices to 4 (or 2) vectors of C numbers: written out,
# since the matrices are mostly 0 and +-1 and the loops then only add and subtract.
# The outputs o* are always other arrays than the inputs.
@numba.njit(nogil=True, cache=True, inline="always")
def _bt(d0, d1, d2, d3, o0, o1, o2, o3):
    """(o0..o3) = BT @ (d0..d3)."""
    for k in range(d0.shape[0]):
        o0[k] = d0[k] - d2[k]
        o1[k] = d1[k] + d2[k]
        o2[k] = d2[k] - d1[k]
        o3[k] = d1[k] - d3[k]


@numba.njit(nogil=True, cache=True, inline="always")
def _b(v0, v1, v2, v3, o0, o1, o2, o3):
    """(o0..o3) = BT.T @ (v0..v3)."""
    for k in range(v0.shape[0]):
        o0[k] = v0[k]
        o1[k] = v1[k] - v2[k] + v3[k]
        o2[k] = v2[k] - v0[k] + v1[k]
        o3[k] = -v3[k]


@numba.njit(nogil=True, cache=True, inline="always")
def _at(m0, m1, m2, m3, o0, o1):
    """(o0, o1) = AT @ (m0..m3)."""
    for k in range(m0.shape[0]):
        o0[k] = m0[k] + m1[k] + m2[k]
        o1[k] = m1[k] - m2[k] - m3[k]


@numba.njit(nogil=True, cache=True, inline="always")
def _a(y0, y1, o0, o1, o2, o3):
    """(o0..o3) = AT.T @ (y0, y1)."""
    for k in range(y0.shape[0]):
        o0[k] = y0[k]
        o1[k] = y0[k] + y1[k]
        o2[k] = y0[k] - y1[k]
        o3[k] = -y1[k]


# ---- the 2-D tile transforms: rows first (into tmp), then columns --------------------------------
# Each compiled loop below has an entry point of the same name without the underscore
# (at the end of this file) that checks its arguments first: see checks.py for why.
# cpu_conv.py, which makes all the arrays itself, calls the loops directly.
@numba.njit(nogil=True, cache=True)
def _input_tiles(x, th, tw, v):
    """V = BT d BT^T for the Th x Tw tiles d (4x4, two pixels apart) of each image.

    x: (n, H, W, C); v: (16, n*Th*Tw, C) receives tile t = (b*Th + i)*Tw + j, the
    one whose output is rows 2i..2i+1, columns 2j..2j+1, at positions e = 4*r + c.
    """
    n, c_n = x.shape[0], x.shape[3]
    tmp = np.empty((4, 4, c_n), dtype=v.dtype)
    for b in range(n):
        for i in range(th):
            for j in range(tw):
                t = (b * th + i) * tw + j
                for r in range(4):  # each row of the tile: d[r] BT^T
                    row = x[b, 2 * i + r]
                    _bt(row[2 * j], row[2 * j + 1], row[2 * j + 2], row[2 * j + 3],
                        tmp[r, 0], tmp[r, 1], tmp[r, 2], tmp[r, 3])  # fmt: skip
                for c in range(4):  # then each column: BT (d BT^T)
                    _bt(tmp[0, c], tmp[1, c], tmp[2, c], tmp[3, c],
                        v[c, t], v[4 + c, t], v[8 + c, t], v[12 + c, t])  # fmt: skip


@numba.njit(nogil=True, cache=True)
def _output_tiles(m, y):
    """Y = AT M AT^T for each tile: m (16, n*Th*Tw, F) -> y (n, 2*Th, 2*Tw, F)."""
    n, th, tw, f_n = y.shape[0], y.shape[1] // 2, y.shape[2] // 2, y.shape[3]
    tmp = np.empty((4, 2, f_n), dtype=y.dtype)
    for b in range(n):
        for i in range(th):
            for j in range(tw):
                t = (b * th + i) * tw + j
                for r in range(4):
                    _at(m[4 * r, t], m[4 * r + 1, t], m[4 * r + 2, t], m[4 * r + 3, t],
                        tmp[r, 0], tmp[r, 1])  # fmt: skip
                for c in range(2):
                    _at(tmp[0, c], tmp[1, c], tmp[2, c], tmp[3, c],
                        y[b, 2 * i, 2 * j + c], y[b, 2 * i + 1, 2 * j + c])  # fmt: skip


@numba.njit(nogil=True, cache=True)
def _output_grad_tiles(dy, dm):
    """dM = AT^T dY AT for each 2x2 tile of dy (n, 2*Th, 2*Tw, F) -> dm (16, n*Th*Tw, F)."""
    n, th, tw, f_n = dy.shape[0], dy.shape[1] // 2, dy.shape[2] // 2, dy.shape[3]
    tmp = np.empty((2, 4, f_n), dtype=dm.dtype)
    for b in range(n):
        for i in range(th):
            for j in range(tw):
                t = (b * th + i) * tw + j
                for r in range(2):
                    row = dy[b, 2 * i + r]
                    _a(row[2 * j], row[2 * j + 1], tmp[r, 0], tmp[r, 1], tmp[r, 2], tmp[r, 3])
                for c in range(4):
                    _a(tmp[0, c], tmp[1, c], dm[c, t], dm[4 + c, t], dm[8 + c, t], dm[12 + c, t])


@numba.njit(nogil=True, cache=True)
def _input_grad_tiles(dv, th, tw, dx):
    """dx = sum over tiles of BT^T dV BT, each added onto its 4x4 place (tiles overlap).

    dv: (16, n*Th*Tw, C); dx: (n, H, W, C), zeroed first (pixels no tile covers get 0).
    """
    n, c_n = dx.shape[0], dx.shape[3]
    tmp = np.empty((4, 4, c_n), dtype=dx.dtype)
    out = np.empty((4, c_n), dtype=dx.dtype)
    for b in range(n):
        dx[b] = 0.0
        for i in range(th):
            for j in range(tw):
                t = (b * th + i) * tw + j
                for c in range(4):  # columns first: BT^T dV
                    _b(dv[c, t], dv[4 + c, t], dv[8 + c, t], dv[12 + c, t],
                       tmp[0, c], tmp[1, c], tmp[2, c], tmp[3, c])  # fmt: skip
                for r in range(4):  # then rows: (BT^T dV) BT, added onto dx's row
                    _b(tmp[r, 0], tmp[r, 1], tmp[r, 2], tmp[r, 3], out[0], out[1], out[2], out[3])
                    row = dx[b, 2 * i + r]
                    for q in range(4):
                        dst, src = row[2 * j + q], out[q]
                        for k in range(c_n):
                            dst[k] += src[k]


# ---- the tile transforms' entry points: the arguments checked, then the loop ----------------
def _tiles_of(kernel: str, name: str, images, th: int, tw: int, tiles, tiles_name: str):
    """images (n, H, W, C) split into th x tw 4x4 tiles, two pixels apart, and the
    (16, n*th*tw, C) array of their positions."""
    checks.float_array(kernel, name, images, 4)
    checks.float_array(kernel, tiles_name, tiles, 3, like=images, like_name=name)
    checks.sizes(kernel, th=th, tw=tw)
    n, h, w, c = images.shape
    if h < 2 * th + 2 or w < 2 * tw + 2:
        raise ValueError(
            f"{kernel}: {th}x{tw} tiles need images of at least {2 * th + 2}x{2 * tw + 2} "
            f"pixels; {name} has shape {images.shape}."
        )
    checks.same_shape(kernel, tiles_name, tiles, (16, n * th * tw, c),
                      f"(16, n*th*tw, C) for {name} {images.shape}")  # fmt: skip


def _outputs_of(kernel: str, name: str, y, m, m_name: str):
    """y (n, 2*Th, 2*Tw, F), whole 2x2 tiles, and the (16, n*Th*Tw, F) array of them."""
    checks.float_array(kernel, name, y, 4)
    checks.float_array(kernel, m_name, m, 3, like=y, like_name=name)
    n, h, w, f = y.shape
    if h % 2 or w % 2:
        raise ValueError(f"{kernel}: {name} must be whole 2x2 tiles, got shape {y.shape}.")
    checks.same_shape(kernel, m_name, m, (16, n * (h // 2) * (w // 2), f),
                      f"(16, n*Th*Tw, F) for {name} {y.shape}")  # fmt: skip


def input_tiles(x, th, tw, v):
    """V = BT d BT^T for the Th x Tw tiles d of each image of x (n, H, W, C) into
    v (16, n*Th*Tw, C); see :func:`_input_tiles`."""
    _tiles_of("input_tiles", "x", x, th, tw, v, "v")
    checks.writable("input_tiles", "v", v)
    _input_tiles(x, th, tw, v)


def output_tiles(m, y):
    """Y = AT M AT^T for each tile: m (16, n*Th*Tw, F) -> y (n, 2*Th, 2*Tw, F)."""
    _outputs_of("output_tiles", "y", y, m, "m")
    checks.writable("output_tiles", "y", y)
    _output_tiles(m, y)


def output_grad_tiles(dy, dm):
    """dM = AT^T dY AT for each 2x2 tile of dy (n, 2*Th, 2*Tw, F) -> dm (16, n*Th*Tw, F)."""
    _outputs_of("output_grad_tiles", "dy", dy, dm, "dm")
    checks.writable("output_grad_tiles", "dm", dm)
    _output_grad_tiles(dy, dm)


def input_grad_tiles(dv, th, tw, dx):
    """dx (n, H, W, C) = the tiles BT^T dV BT of dv (16, n*Th*Tw, C), added up in place."""
    _tiles_of("input_grad_tiles", "dx", dx, th, tw, dv, "dv")
    checks.writable("input_grad_tiles", "dx", dx)
    _input_grad_tiles(dv, th, tw, dx)
