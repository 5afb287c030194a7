"""The bug zoo: wrong solutions of the exercises, each one mistake students really make.

Every function below is a solution from exercise_solutions.py with one thing changed,
registered with ``@bug(check, mistake)``. test_bug_zoo.py runs each through its check
(several seeds) and requires the report to fail; zoo_table.py prints the table of
mistakes, checks and the first line of each report.
"""

from __future__ import annotations

from dataclasses import dataclass

import exercise_solutions as good
import numpy as np

ZOO: list[Bug] = []


@dataclass
class Bug:
    """One wrong implementation: its id (the function name), the check that must catch
    it, the mistake in words, and the function."""

    id: str
    check: str
    mistake: str
    fn: object


def bug(check: str, mistake: str):
    def register(fn):
        ZOO.append(Bug(fn.__name__, check, mistake, fn))
        return fn

    return register


def _windows(n, ho, wo):
    for b in range(n):
        for oh in range(ho):
            for ow in range(wo):
                yield b, oh, ow


# ---- im2col -------------------------------------------------------------------------------
@bug("check_im2col", "columns in (c, i, j) order instead of (i, j, c)")
def im2col_columns_cij(x, kh, kw, stride):
    n, h, w, c = x.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    rows = [
        x[b, oh * stride : oh * stride + kh, ow * stride : ow * stride + kw, :]
        .transpose(2, 0, 1)
        .reshape(-1)
        for b, oh, ow in _windows(n, ho, wo)
    ]
    return np.array(rows)


@bug("check_im2col", "rows in (n, ow, oh) order: the output pixels transposed")
def im2col_rows_transposed(x, kh, kw, stride):
    n, h, w, c = x.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    cols = good.im2col(x, kh, kw, stride).reshape(n, ho, wo, -1)
    return cols.transpose(0, 2, 1, 3).reshape(n * ho * wo, -1)


@bug("check_im2col", "window start not multiplied by the stride")
def im2col_start_ignores_stride(x, kh, kw, stride):
    n, h, w, c = x.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    rows = [x[b, oh : oh + kh, ow : ow + kw, :].reshape(-1) for b, oh, ow in _windows(n, ho, wo)]
    return np.array(rows)


@bug("check_im2col", "output size (H - kh) // stride, without the + 1")
def im2col_size_off_by_one(x, kh, kw, stride):
    n, h, w, c = x.shape
    ho, wo = (h - kh) // stride, (w - kw) // stride
    rows = [
        x[b, oh * stride : oh * stride + kh, ow * stride : ow * stride + kw, :].reshape(-1)
        for b, oh, ow in _windows(n, ho, wo)
    ]
    return np.array(rows).reshape(n * ho * wo, kh * kw * c)


@bug("check_im2col", "right only for square windows: kh used for the width too")
def im2col_square_windows_only(x, kh, kw, stride):
    n, h, w, c = x.shape
    ho, wo = (h - kh) // stride + 1, (w - kh) // stride + 1
    rows = [
        x[b, oh * stride : oh * stride + kh, ow * stride : ow * stride + kh, :].reshape(-1)
        for b, oh, ow in _windows(n, ho, wo)
    ]
    return np.array(rows)


# ---- conv2d forward -----------------------------------------------------------------------
@bug("check_conv2d_forward", "kernel flipped: a true convolution, not Keras's cross-correlation")
def conv_forward_flipped_kernel(x, kernel, bias, stride, padding):
    return good.conv2d_forward(x, kernel[::-1, ::-1], bias, stride, padding)


@bug("check_conv2d_forward", "'same' padding off by one when the total is odd (extra pixel first)")
def conv_forward_same_extra_pixel_first(x, kernel, bias, stride, padding):
    kh, kw, _, f = kernel.shape
    if padding == "same":
        (t, b), (l, r) = (
            good.same_padding(x.shape[1], kh, stride),
            good.same_padding(x.shape[2], kw, stride),
        )
        x = np.pad(x, ((0, 0), (b, t), (r, l), (0, 0)))
    return good.conv2d_forward(x, kernel, bias, stride, "valid")


@bug("check_conv2d_forward", "'same' padding as k // 2 pixels on every side")
def conv_forward_same_k_half(x, kernel, bias, stride, padding):
    kh, kw, _, _ = kernel.shape
    if padding == "same":
        x = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    return good.conv2d_forward(x, kernel, bias, stride, "valid")


@bug("check_conv2d_forward", "'same' padding computed as for stride 1 (total k - 1)")
def conv_forward_same_ignores_stride(x, kernel, bias, stride, padding):
    kh, kw, _, _ = kernel.shape
    if padding == "same":
        pads = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in (kh, kw)]
        x = np.pad(x, ((0, 0), *pads, (0, 0)))
    return good.conv2d_forward(x, kernel, bias, stride, "valid")


@bug("check_conv2d_forward", "bias forgotten")
def conv_forward_no_bias(x, kernel, bias, stride, padding):
    return good.conv2d_forward(x, kernel, np.zeros_like(bias), stride, padding)


@bug("check_conv2d_forward", "H and W swapped: the image transposed to reuse code, the kernel not")
def conv_forward_transposed_hw(x, kernel, bias, stride, padding):
    y = good.conv2d_forward(x.transpose(0, 2, 1, 3), kernel, bias, stride, padding)
    return y.transpose(0, 2, 1, 3)


# ---- conv2d backward ----------------------------------------------------------------------
def _conv_backward(
    x, kernel, dy, stride, padding, col2im=good.col2im, crop=True, pad_x=True, pad_for=good.pad_for
):
    kh, kw, _, f = kernel.shape
    xp, ((top, bottom), (left, right)) = pad_for(x, kh, kw, stride, padding)
    d = dy.reshape(-1, f)
    dkernel = (good.im2col(xp if pad_x else x, kh, kw, stride).T @ d).reshape(kernel.shape)
    dxp = col2im(d @ kernel.reshape(-1, f).T, xp.shape, kh, kw, stride)
    dx = dxp[:, top : xp.shape[1] - bottom, left : xp.shape[2] - right] if crop else dxp
    return dx, dkernel, d.sum(axis=0)


def _col2im_assign(dcols, x_shape, kh, kw, stride):
    n, h, w, c = x_shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    dx = np.zeros(x_shape)
    for row, (b, oh, ow) in enumerate(_windows(n, ho, wo)):
        top, left = oh * stride, ow * stride
        dx[b, top : top + kh, left : left + kw, :] = dcols[row].reshape(kh, kw, c)
    return dx


def _col2im_no_stride(dcols, x_shape, kh, kw, stride):
    n, h, w, c = x_shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    dx = np.zeros(x_shape)
    for row, (b, oh, ow) in enumerate(_windows(n, ho, wo)):
        dx[b, oh : oh + kh, ow : ow + kw, :] += dcols[row].reshape(kh, kw, c)
    return dx


@bug("check_conv2d_backward", "`=` instead of `+=` in col2im (overlapping windows)")
def conv_backward_col2im_assign(x, kernel, dy, stride, padding):
    return _conv_backward(x, kernel, dy, stride, padding, col2im=_col2im_assign)


@bug("check_conv2d_backward", "stride ignored in col2im (windows put back at stride 1)")
def conv_backward_col2im_no_stride(x, kernel, dy, stride, padding):
    return _conv_backward(x, kernel, dy, stride, padding, col2im=_col2im_no_stride)


@bug("check_conv2d_backward", "bias gradient averaged instead of summed")
def conv_backward_dbias_mean(x, kernel, dy, stride, padding):
    dx, dkernel, _ = good.conv2d_backward(x, kernel, dy, stride, padding)
    return dx, dkernel, dy.reshape(-1, kernel.shape[3]).mean(axis=0)


@bug("check_conv2d_backward", "dx not cropped: the padding's gradient returned too")
def conv_backward_no_crop(x, kernel, dy, stride, padding):
    return _conv_backward(x, kernel, dy, stride, padding, crop=False)


@bug("check_conv2d_backward", "dkernel = (dy.T @ cols) reshaped, without transposing")
def conv_backward_dkernel_transpose(x, kernel, dy, stride, padding):
    kh, kw, _, f = kernel.shape
    dx, _, dbias = good.conv2d_backward(x, kernel, dy, stride, padding)
    xp, _ = good.pad_for(x, kh, kw, stride, padding)
    dkernel = (dy.reshape(-1, f).T @ good.im2col(xp, kh, kw, stride)).reshape(kernel.shape)
    return dx, dkernel, dbias


@bug("check_conv2d_backward", "dkernel from the unpadded input")
def conv_backward_dkernel_unpadded(x, kernel, dy, stride, padding):
    return _conv_backward(x, kernel, dy, stride, padding, pad_x=False)


@bug("check_conv2d_backward", "dx with the kernel flipped (the backward of a true convolution)")
def conv_backward_dx_flipped(x, kernel, dy, stride, padding):
    dx, _, _ = good.conv2d_backward(x, kernel[::-1, ::-1], dy, stride, padding)
    _, dkernel, dbias = good.conv2d_backward(x, kernel, dy, stride, padding)
    return dx, dkernel, dbias


def _pad_extra_pixel_first(x, kh, kw, stride, padding):
    """good.pad_for with each (before, after) unpacked the wrong way round."""
    if padding == "valid":
        return x, ((0, 0), (0, 0))
    (bottom, top), (right, left) = (
        good.same_padding(x.shape[1], kh, stride),
        good.same_padding(x.shape[2], kw, stride),
    )
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0))), ((top, bottom), (left, right))


@bug("check_conv2d_backward", "'same' padding's extra pixel first in backward (forward right)")
def conv_backward_same_extra_pixel_first(x, kernel, dy, stride, padding):
    return _conv_backward(x, kernel, dy, stride, padding, pad_for=_pad_extra_pixel_first)


# ---- max-pooling --------------------------------------------------------------------------
@bug("check_maxpool_forward", "stride taken equal to pool_size (the stride argument ignored)")
def maxpool_forward_stride_is_pool(x, pool_size, stride):
    return good.maxpool_forward(x, pool_size, pool_size)


@bug("check_maxpool_forward", "a last partial window kept (ceil instead of floor)")
def maxpool_forward_ceil(x, pool_size, stride):
    n, h, w, c = x.shape
    ho, wo = -(-(h - pool_size) // stride) + 1, -(-(w - pool_size) // stride) + 1
    y = np.empty((n, ho, wo, c))
    for oh in range(ho):
        for ow in range(wo):
            win = x[:, oh * stride : oh * stride + pool_size, ow * stride : ow * stride + pool_size]
            y[:, oh, ow, :] = win.max(axis=(1, 2))
    return y


def _maxpool_backward(x, dy, pool_size, stride, route):
    n, _, _, c = x.shape
    _, ho, wo, _ = dy.shape
    dx = np.zeros_like(x)
    for b, oh, ow in _windows(n, ho, wo):
        for ch in range(c):
            top, left = oh * stride, ow * stride
            win = x[b, top : top + pool_size, left : left + pool_size, ch]
            route(dx[b, top : top + pool_size, left : left + pool_size, ch], win, dy[b, oh, ow, ch])
    return dx


@bug("check_maxpool_backward", "gradient sent to every tied maximum (mask = window == max)")
def maxpool_backward_all_ties(x, dy, pool_size, stride):
    def route(d, win, g):
        d += (win == win.max()) * g

    return _maxpool_backward(x, dy, pool_size, stride, route)


@bug("check_maxpool_backward", "the last maximum wins a tie (>= instead of >)")
def maxpool_backward_last_tie(x, dy, pool_size, stride):
    def route(d, win, g):
        flat = win.ravel()
        k = len(flat) - 1 - int(np.argmax(flat[::-1]))
        d[np.unravel_index(k, win.shape)] += g

    return _maxpool_backward(x, dy, pool_size, stride, route)


@bug("check_maxpool_backward", "`=` instead of `+=` where windows overlap")
def maxpool_backward_assign(x, dy, pool_size, stride):
    def route(d, win, g):
        d[np.unravel_index(np.argmax(win), win.shape)] = g

    return _maxpool_backward(x, dy, pool_size, stride, route)


@bug("check_maxpool_backward", "stride ignored in backward (windows taken at stride = pool_size)")
def maxpool_backward_stride_is_pool(x, dy, pool_size, stride):
    n, _, _, c = x.shape
    _, ho, wo, _ = dy.shape
    dx = np.zeros_like(x)
    for b, oh, ow in _windows(n, ho, wo):
        for ch in range(c):
            top, left = oh * pool_size, ow * pool_size
            win = x[b, top : top + pool_size, left : left + pool_size, ch]
            if win.size:
                i, j = np.unravel_index(np.argmax(win), win.shape)
                dx[b, top + i, left + j, ch] += dy[b, oh, ow, ch]
    return dx


@bug("check_maxpool_backward", "dy spread evenly over the window (average pooling's gradient)")
def maxpool_backward_average(x, dy, pool_size, stride):
    def route(d, win, g):
        d += g / win.size

    return _maxpool_backward(x, dy, pool_size, stride, route)


@bug("check_maxpool_backward", "stride forgotten for the columns only (window left = ow)")
def maxpool_backward_column_stride_forgotten(x, dy, pool_size, stride):
    n, _, _, c = x.shape
    _, ho, wo, _ = dy.shape
    dx = np.zeros_like(x)
    for b, oh, ow in _windows(n, ho, wo):
        for ch in range(c):
            top, left = oh * stride, ow
            win = x[b, top : top + pool_size, left : left + pool_size, ch]
            i, j = np.unravel_index(np.argmax(win), win.shape)
            dx[b, top + i, left + j, ch] += dy[b, oh, ow, ch]
    return dx


# ---- dense --------------------------------------------------------------------------------
@bug("check_dense_backward", "bias gradient averaged over the batch instead of summed")
def dense_backward_dbias_mean(x, kernel, dy):
    return dy @ kernel.T, x.T @ dy, dy.mean(axis=0)


@bug("check_dense_backward", "dkernel divided by N (the loss's mean already did it)")
def dense_backward_dkernel_over_n(x, kernel, dy):
    return dy @ kernel.T, x.T @ dy / x.shape[0], dy.sum(axis=0)


@bug("check_dense_backward", "dx = dy @ kernel: the transpose of the kernel missing")
def dense_backward_dx_no_transpose(x, kernel, dy):
    return dy @ kernel, x.T @ dy, dy.sum(axis=0)


@bug("check_dense_backward", "dkernel = dy.T @ x: transposed")
def dense_backward_dkernel_transposed(x, kernel, dy):
    return dy @ kernel.T, dy.T @ x, dy.sum(axis=0)


@bug("check_dense_backward", "dx returned as float32 (to save memory)")
def dense_backward_dx_float32(x, kernel, dy):
    dx, dkernel, dbias = good.dense_backward(x, kernel, dy)
    return dx.astype(np.float32), dkernel, dbias


# ---- softmax cross-entropy ----------------------------------------------------------------
@bug("check_softmax_cross_entropy", "softmax without subtracting the maximum (overflows near 1e3)")
def softmax_no_max_shift(logits, labels):
    n = logits.shape[0]
    exp = np.exp(logits)
    p = exp / exp.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(n), labels]).mean()
    p[np.arange(n), labels] -= 1
    return loss, p / n


@bug("check_softmax_cross_entropy", "loss as -log(softmax) (log of a probability rounded to 0)")
def softmax_log_of_probability(logits, labels):
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(n), labels]).mean()
    p[np.arange(n), labels] -= 1
    return loss, p / n


@bug("check_softmax_cross_entropy", "loss summed over the batch, not averaged")
def softmax_loss_summed(logits, labels):
    loss, dlogits = good.softmax_cross_entropy(logits, labels)
    return loss * logits.shape[0], dlogits


@bug("check_softmax_cross_entropy", "dlogits not divided by N")
def softmax_dlogits_not_averaged(logits, labels):
    loss, dlogits = good.softmax_cross_entropy(logits, labels)
    return loss, dlogits * logits.shape[0]


@bug("check_softmax_cross_entropy", "dlogits divided by N twice")
def softmax_dlogits_over_n_twice(logits, labels):
    loss, dlogits = good.softmax_cross_entropy(logits, labels)
    return loss, dlogits / logits.shape[0]


@bug("check_softmax_cross_entropy", "one-hot off by one (labels - 1)")
def softmax_one_hot_off_by_one(logits, labels):
    return good.softmax_cross_entropy(logits, (labels - 1) % logits.shape[1])


@bug("check_softmax_cross_entropy", "softmax over the batch axis (axis=0) instead of the classes")
def softmax_wrong_axis(logits, labels):
    n = logits.shape[0]
    shifted = logits - logits.max(axis=0, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=0, keepdims=True)
    loss = -np.log(p[np.arange(n), labels]).mean()
    p[np.arange(n), labels] -= 1
    return loss, p / n


@bug("check_softmax_cross_entropy", "loss as the entropy -sum(p log p), the labels unused")
def softmax_entropy_loss(logits, labels):
    _, dlogits = good.softmax_cross_entropy(logits, labels)
    log_p = good.log_softmax(logits)
    return -(np.exp(log_p) * log_p).sum(axis=1).mean(), dlogits


@bug("check_softmax_cross_entropy", "loss at the predicted class (argmax), not the label")
def softmax_loss_at_prediction(logits, labels):
    _, dlogits = good.softmax_cross_entropy(logits, labels)
    log_p = good.log_softmax(logits)
    return -log_p[np.arange(len(labels)), logits.argmax(axis=1)].mean(), dlogits


# ---- Adam ---------------------------------------------------------------------------------
@bug("check_adam_step", "no bias correction (lr used as it is)")
def adam_no_bias_correction(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon):
    m = beta_1 * m + (1 - beta_1) * grad
    v = beta_2 * v + (1 - beta_2) * grad**2
    return param - learning_rate * m / (np.sqrt(v) + epsilon), m, v


@bug("check_adam_step", "epsilon inside the square root")
def adam_epsilon_inside_sqrt(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon):
    m = beta_1 * m + (1 - beta_1) * grad
    v = beta_2 * v + (1 - beta_2) * grad**2
    lr_t = learning_rate * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    return param - lr_t * m / np.sqrt(v + epsilon), m, v


@bug("check_adam_step", "PyTorch's epsilon placement: added to sqrt of the corrected v")
def adam_pytorch_epsilon(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon):
    m = beta_1 * m + (1 - beta_1) * grad
    v = beta_2 * v + (1 - beta_2) * grad**2
    m_hat, v_hat = m / (1 - beta_1**t), v / (1 - beta_2**t)
    return param - learning_rate * m_hat / (np.sqrt(v_hat) + epsilon), m, v


@bug("check_adam_step", "m and v updated but the old ones returned")
def adam_old_moments_returned(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon):
    new_param, _, _ = good.adam_step(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon)
    return new_param, m, v


@bug("check_adam_step", "t counted from 0 (step t uses t - 1)")
def adam_t_from_zero(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon):
    with np.errstate(all="ignore"):
        return good.adam_step(param, grad, m, v, t - 1, learning_rate, beta_1, beta_2, epsilon)


@bug("check_adam_step", "v accumulates the gradient, not its square")
def adam_v_not_squared(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon):
    m = beta_1 * m + (1 - beta_1) * grad
    v = beta_2 * v + (1 - beta_2) * np.abs(grad)
    lr_t = learning_rate * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    return param - lr_t * m / (np.sqrt(v) + epsilon), m, v
