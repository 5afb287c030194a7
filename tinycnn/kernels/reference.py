"""Readable reference kernels, written once against the array module ``xp``.

They run unchanged on NumPy and CuPy. The fast CPU kernels in ``cpu_numba.py``
compute exactly the same thing and are tested against these.

All images are channels-last, ``(N, H, W, C)``, as in Keras.
"""

from __future__ import annotations

from ..backend import get_array_module
from ..conv_arithmetic import output_size


def im2col(x, kh: int, kw: int, stride: int = 1):
    """Unfold every (kh, kw) patch of ``x`` into one row of a matrix.

    Args:
        x: images of shape ``(N, H, W, C)`` (already padded if padding is wanted).
    Returns:
        ``cols`` of shape ``(N * Ho * Wo, kh * kw * C)``: row ``(n, oh, ow)`` holds the
        patch whose top-left corner is input pixel ``(oh * stride, ow * stride)``,
        ordered ``(i, j, c)`` like the rows of a Keras kernel ``(kh, kw, C, F)``
        reshaped to ``(kh * kw * C, F)``. Convolution is then one matrix multiply:
        ``y = cols @ kernel.reshape(-1, F)``.

    Instead of looping over the Ho * Wo output pixels, we loop over the kh * kw kernel
    offsets (9 for a 3x3 kernel): for a fixed offset (i, j), output pixel (oh, ow)
    reads input pixel (oh * stride + i, ow * stride + j), so all output pixels at once
    read the strided slice ``x[:, i : i + stride*Ho : stride, j : j + stride*Wo : stride]``.
    That is 9 big slice copies instead of millions of tiny ones.
    """
    xp = get_array_module(x)
    n, h, w, c = x.shape
    ho, wo = output_size(h, kh, stride), output_size(w, kw, stride)
    cols = xp.empty((n, ho, wo, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = x[
                :, i : i + stride * ho : stride, j : j + stride * wo : stride
            ]
    return cols.reshape(n * ho * wo, kh * kw * c)


def col2im(dcols, x_shape, kh: int, kw: int, stride: int = 1):
    """The adjoint of :func:`im2col`: add every row of ``dcols`` back onto its patch.

    Args:
        dcols: gradient w.r.t. the columns, shape ``(N * Ho * Wo, kh * kw * C)``.
        x_shape: ``(N, H, W, C)``, the shape of the (padded) input of im2col.
    Returns:
        ``dx`` of shape ``x_shape``. A pixel covered by several patches receives the
        sum of their gradients: the same offset loop as im2col, with ``+=``.
        (``np.add.at`` would do it in one line but is an order of magnitude slower.)
    """
    xp = get_array_module(dcols)
    n, h, w, c = x_shape
    ho, wo = output_size(h, kh, stride), output_size(w, kw, stride)
    dcols = dcols.reshape(n, ho, wo, kh, kw, c)
    dx = xp.zeros(x_shape, dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, i : i + stride * ho : stride, j : j + stride * wo : stride] += dcols[
                :, :, :, i, j
            ]
    return dx


def maxpool_forward(x, ph: int, pw: int, sh: int, sw: int):
    """Max over each (ph, pw) window, moving by (sh, sw).

    Args:
        x: ``(N, H, W, C)``.
    Returns:
        ``(out, argmax)``: ``out`` of shape ``(N, Ho, Wo, C)`` with Ho = (H - ph) // sh + 1
        (floor: a last partial window is dropped, so 11 -> 5), and ``argmax`` (int8, same
        shape) the offset ``i * pw + j`` inside each window where the maximum sits; the
        first one wins a tie, as in Keras and PyTorch.

    NaN and inf are handled as ``np.max`` and PyTorch do: +-inf compare like any
    number, and a window with a NaN anywhere in it has the maximum NaN, its argmax
    pointing at the (last) NaN, as PyTorch's does, so that the gradient goes there.

    Same idea as im2col: loop over the ph * pw offsets, each a strided slice of x.
    """
    xp = get_array_module(x)
    n, h, w, c = x.shape
    ho, wo = output_size(h, ph, sh), output_size(w, pw, sw)
    out = None
    argmax = xp.zeros((n, ho, wo, c), dtype=xp.int8)
    for i in range(ph):
        for j in range(pw):
            window = x[:, i : i + sh * ho : sh, j : j + sw * wo : sw]
            if out is None:
                out = window.copy()
                continue
            # strictly greater: the first maximum keeps its place; and a NaN always wins
            # (">" alone would let a NaN through only as a window's first value)
            better = (window > out) | xp.isnan(window)
            out = xp.where(better, window, out)
            argmax = xp.where(better, xp.int8(i * pw + j), argmax)
    return out, argmax


def maxpool_backward(dy, argmax, x_shape, ph: int, pw: int, sh: int, sw: int):
    """Route each output gradient to the input pixel that won its window.

    Args:
        dy: ``(N, Ho, Wo, C)``; argmax: from :func:`maxpool_forward`; x_shape: ``(N, H, W, C)``.
    Returns:
        ``dx`` of shape ``x_shape``, zero wherever a pixel was not a maximum.
    """
    xp = get_array_module(dy)
    ho, wo = dy.shape[1:3]
    dx = xp.zeros(x_shape, dtype=dy.dtype)
    zero = xp.zeros((), dtype=dy.dtype)
    for i in range(ph):
        for j in range(pw):
            # += because windows overlap when the stride is smaller than the pool
            dx[:, i : i + sh * ho : sh, j : j + sw * wo : sw] += xp.where(
                argmax == i * pw + j, dy, zero
            )
    return dx


def bias_relu(y, bias, *, relu: bool):
    """In place on a fresh 2-D matmul result ``y`` (M, F): add ``bias`` (F,) if given,
    then apply ReLU if ``relu``. Returns ``y``."""
    xp = get_array_module(y)
    if bias is not None:
        y += bias
    if relu:
        xp.maximum(y, 0, out=y)
    return y


def bias_relu_backward(dy, y, *, relu: bool, with_bias: bool):
    """The backward of :func:`bias_relu`. ``dy``, ``y``: (M, F).

    Returns ``(dz, dbias)``: dz = :func:`relu_backward` (dy, y) if ``relu`` (the
    gradient before the ReLU), and dbias = dz summed over the rows (every row added
    the same bias), or None without a bias.
    """
    dz = relu_backward(dy, y) if relu else dy
    return dz, (dz.sum(axis=0) if with_bias else None)


def relu_forward(z):
    """max(z, 0), computed in place: ``z`` is a fresh array nobody else holds.
    ReLU(NaN) is NaN: ``maximum`` keeps a NaN (``where(z > 0, z, 0)`` would make it 0)."""
    xp = get_array_module(z)
    return xp.maximum(z, 0, out=z)


def relu_backward(dy, y):
    """dL/dz = dL/dy where the unit was active (y > 0), else 0.

    A NaN output counts as active: the gradient goes through it (PyTorch's rule; as
    in max-pooling, the NaN won the max(z, 0)). A select, not ``dy * (y > 0)``: an
    inf in dy at an inactive unit gives 0, not inf * 0 = NaN.
    """
    xp = get_array_module(dy)
    return xp.where(y <= 0, xp.zeros((), dtype=dy.dtype), dy)


def conv_relu_pool_forward(x, kernel, bias, ph: int, pw: int):
    """Conv2D (stride 1, 'valid', ReLU) followed by MaxPooling2D (stride = pool), composed
    from the kernels here: the reference for the fused fast kernel.

    Args:
        x: ``(N, H, W, C)``; kernel: ``(kh, kw, C, F)``; bias: ``(F,)`` or None.
    Returns:
        ``(out, argmax)`` of the pooling, each ``(N, Hp, Wp, F)``.
    """
    y = conv2d_forward(x, kernel, bias, stride=1, relu=True)
    return maxpool_forward(y, ph, pw, ph, pw)


def conv_relu_pool_backward(x, kernel, dy, out, argmax, ph: int, pw: int, *, input_grad: bool):
    """Gradients of :func:`conv_relu_pool_forward` from the pooled gradient ``dy``.

    Returns ``(dkernel, dbias, dx)`` (``dx`` is None unless ``input_grad``).
    Convolution outputs no pooling window reads (a last odd row or column) get the
    gradient 0, which the matrix products below still multiply by every weight: a
    NaN weight then makes the gradient of their inputs NaN too, where the fast kernel,
    which skips those outputs, leaves it finite.
    """
    n, h, w, _ = x.shape
    kh, kw, _, f = kernel.shape
    conv_shape = (n, output_size(h, kh, 1), output_size(w, kw, 1), f)
    # ReLU's mask at the winners is out's (the pooled value is the winner's value)
    dz = maxpool_backward(relu_backward(dy, out), argmax, conv_shape, ph, pw, ph, pw)
    dz = dz.reshape(-1, f)
    dkernel, dx = _conv2d_backward_linear(x, kernel, dz, 1, input_grad)
    return dkernel, dz.sum(axis=0), dx


def conv2d_forward(x, kernel, bias, *, stride: int, relu: bool):
    """Convolution (no padding: pad ``x`` first) + bias + optional ReLU, as im2col
    followed by one matrix multiply (see layers/conv2d.py for the idea).

    Args:
        x: ``(N, H, W, C)``; kernel: ``(kh, kw, C, F)``; bias: ``(F,)`` or None.
    Returns:
        ``y`` of shape ``(N, Ho, Wo, F)``, after the ReLU if ``relu``.
    """
    n = x.shape[0]
    kh, kw, _, f = kernel.shape
    cols = im2col(x, kh, kw, stride)  # (N*Ho*Wo, kh*kw*C)
    y = bias_relu(cols @ kernel.reshape(-1, f), bias, relu=relu)  # (N*Ho*Wo, F)
    ho, wo = output_size(x.shape[1], kh, stride), output_size(x.shape[2], kw, stride)
    return y.reshape(n, ho, wo, f)


def conv2d_backward(
    x, kernel, y, dy, *, stride: int, relu: bool, with_bias: bool, input_grad: bool
):
    """Gradients of :func:`conv2d_forward`, from its input ``x``, its output ``y`` and
    the gradient ``dy`` of the loss with respect to ``y`` (both ``(N, Ho, Wo, F)``).

    Returns ``(dkernel, dbias, dx)``: ``dbias`` is None without a bias, ``dx``
    (shaped like ``x``) is None unless ``input_grad``. The columns are unfolded again
    rather than kept from the forward pass: a cheap pass instead of holding a matrix
    kh*kw times the size of ``x`` in memory between the two passes.
    """
    f = kernel.shape[3]
    dz, dbias = bias_relu_backward(
        dy.reshape(-1, f), y.reshape(-1, f), relu=relu, with_bias=with_bias
    )
    dkernel, dx = _conv2d_backward_linear(x, kernel, dz, stride, input_grad)
    return dkernel, dbias, dx


def _conv2d_backward_linear(x, kernel, dz, stride: int, input_grad: bool):
    """The convolution's own (linear) part of backward, from ``dz`` (N*Ho*Wo, F), the
    gradient with respect to its output before bias and activation.

    Returns ``(dkernel, dx)``, ``dx`` None unless ``input_grad``.
    """
    kh, kw, _, f = kernel.shape
    cols = im2col(x, kh, kw, stride)  # (N*Ho*Wo, kh*kw*C)
    dkernel = (cols.T @ dz).reshape(kernel.shape)  # (kh, kw, C, F)
    dx = None
    if input_grad:
        dcols = dz @ kernel.reshape(-1, f).T  # (N*Ho*Wo, kh*kw*C)
        dx = col2im(dcols, x.shape, kh, kw, stride)
    return dkernel, dx
