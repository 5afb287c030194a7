"""AveragePooling2D and GlobalAveragePooling2D: forward and backward against naive loops
(TensorFlow's 'same': divide by the real pixels), gradient checks, PyTorch cross-checks,
and a small Sequential model that trains, summarises and round-trips through a file."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinycnn
from tinycnn.layers import (
    AveragePooling2D,
    AvgPool2D,
    Conv2D,
    Dense,
    GlobalAveragePooling2D,
    GlobalAvgPool2D,
)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def same_pads(size, pool, stride):
    """TensorFlow's 'same' rule: ceil(size / stride) outputs, the odd pixel at the end."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + pool - size, 0)
    return total // 2, total - total // 2


def window_slices(h, w, pool, stride, padding):
    """Yield (i, j, rows, cols): each output pixel and the real input pixels of its window."""
    (ph, pw), (sh, sw) = pair(pool), pair(stride)
    top = same_pads(h, ph, sh)[0] if padding == "same" else 0
    left = same_pads(w, pw, sw)[0] if padding == "same" else 0
    if padding == "same":
        ho, wo = math.ceil(h / sh), math.ceil(w / sw)
    else:
        ho, wo = (h - ph) // sh + 1, (w - pw) // sw + 1
    for i in range(ho):
        for j in range(wo):
            r0, c0 = i * sh - top, j * sw - left
            yield i, j, slice(max(r0, 0), min(r0 + ph, h)), slice(max(c0, 0), min(c0 + pw, w))


def naive_avgpool(x, pool, stride, padding="valid"):
    """The mean of the real pixels of every window, with explicit loops (TF's 'same')."""
    n, h, w, c = x.shape
    windows = list(window_slices(h, w, pool, stride, padding))
    ho, wo = windows[-1][0] + 1, windows[-1][1] + 1
    y = np.empty((n, ho, wo, c), dtype=x.dtype)
    for i, j, rows, cols in windows:
        y[:, i, j, :] = x[:, rows, cols, :].mean(axis=(1, 2))
    return y


def naive_avgpool_backward(x_shape, dy, pool, stride, padding="valid"):
    """dy / (real pixels) added to every real pixel of each window."""
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for i, j, rows, cols in window_slices(x_shape[1], x_shape[2], pool, stride, padding):
        count = (rows.stop - rows.start) * (cols.stop - cols.start)
        dx[:, rows, cols, :] += dy[:, i, j, None, None, :] / count
    return dx


# (H, W) even and odd; (pool, stride): non-overlapping, overlapping, pool 3 stride 2,
# windows that are not square, tiling the image or not.
SIZES = [(6, 6), (7, 5)]
WINDOWS = [(2, 2), (2, 1), (3, 2), ((2, 3), (2, 3)), ((3, 2), (1, 2)), ((2, 3), (2, 1))]


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize(("pool", "stride"), WINDOWS)
@pytest.mark.parametrize(("h", "w"), SIZES)
def test_forward_and_backward_match_naive_loops(h, w, pool, stride, padding, float64, backend_name):
    rng = np.random.default_rng(h * w)
    x = rng.standard_normal((2, h, w, 3))
    layer = AveragePooling2D(pool, strides=stride, padding=padding)
    y = tinycnn.to_numpy(layer.forward(tinycnn.to_backend(x), training=True))
    expected = naive_avgpool(x, pool, stride, padding)
    assert y.shape == expected.shape == (2, *layer.compute_output_shape((h, w, 3)))
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-14)
    dy = rng.standard_normal(y.shape)
    dx = tinycnn.to_numpy(layer.backward(tinycnn.to_backend(dy)))
    assert dx.shape == x.shape
    np.testing.assert_allclose(
        dx, naive_avgpool_backward(x.shape, dy, pool, stride, padding), rtol=1e-13, atol=1e-14
    )


def test_known_values_and_same_divides_by_real_pixels():
    x = np.array([[1, 2, 5, 0], [3, 4, 1, 1], [0, 0, 7, 8], [9, 0, 6, 2]], dtype="float32")
    y = AveragePooling2D(2).forward(x.reshape(1, 4, 4, 1))
    np.testing.assert_array_equal(y[0, :, :, 0], [[2.5, 1.75], [2.25, 5.75]])
    # 3x3 of ones, 2x2 'same' pool: the padding is at the bottom and right (TF); every
    # window holds 4, 2 or 1 real pixels, all ones, so every mean is exactly 1 (zero
    # padding counted in would give 0.5 and 0.25 at the edges).
    ones = np.ones((1, 3, 3, 1), dtype="float32")
    y = AveragePooling2D(2, padding="same").forward(ones)
    assert y.shape == (1, 2, 2, 1)
    np.testing.assert_array_equal(y, np.ones((1, 2, 2, 1)))
    x = np.arange(9, dtype="float32").reshape(1, 3, 3, 1)
    y = AveragePooling2D(2, padding="same").forward(x)
    np.testing.assert_array_equal(y[0, :, :, 0], [[2, 3.5], [6.5, 8]])


@pytest.mark.parametrize(
    ("input_shape", "kwargs", "expected"),
    [
        ((26, 26, 8), {}, (13, 13, 8)),
        ((11, 11, 2), {}, (5, 5, 2)),  # floor: the last partial window is dropped
        ((11, 11, 2), {"padding": "SAME"}, (6, 6, 2)),  # ceil with 'same'; any case, as Keras
        ((7, 5, 1), {"pool_size": 3, "strides": 2}, (3, 2, 1)),
        ((7, 5, 1), {"pool_size": 3, "strides": 2, "padding": "same"}, (4, 3, 1)),
        ((6, 9, 1), {"pool_size": (2, 3)}, (3, 3, 1)),
    ],
)
def test_output_shape(input_shape, kwargs, expected):
    layer = AveragePooling2D(**kwargs)
    assert layer.compute_output_shape(input_shape) == expected
    assert layer.forward(np.zeros((1, *input_shape), dtype="float32")).shape == (1, *expected)


def test_arguments_as_keras_and_aliases():
    assert AveragePooling2D(3).strides == (3, 3)  # strides default to pool_size
    assert AveragePooling2D((2, 3), strides=(1, 2)).get_config() == {
        "name": None,
        "trainable": True,
        "pool_size": [2, 3],
        "strides": [1, 2],
        "padding": "valid",
    }
    assert AvgPool2D is AveragePooling2D and GlobalAvgPool2D is GlobalAveragePooling2D
    assert AveragePooling2D().param_shapes((4, 4, 1)) == {}
    assert GlobalAveragePooling2D().param_shapes((4, 4, 1)) == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pool_size": 0}, "pool_size must be a positive int"),
        ({"strides": (1, 2, 3)}, "strides must be a positive int"),
        ({"padding": "full"}, "padding must be 'valid' or 'same'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AveragePooling2D(**kwargs)


def test_bad_input_shapes():
    with pytest.raises(ValueError, match="3x3 pool is larger than the 2x4 input"):
        AveragePooling2D(3).forward(np.zeros((1, 2, 4, 1), dtype="float32"))
    with pytest.raises(ValueError, match="channel axis"):
        GlobalAveragePooling2D().forward(np.zeros((1, 4, 4), dtype="float32"))


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize(("pool", "stride"), WINDOWS)
@pytest.mark.parametrize(("h", "w"), SIZES)
def test_gradcheck(h, w, pool, stride, padding, float64, backend_name):
    x = tinycnn.to_backend(np.random.default_rng(h + w).standard_normal((2, h, w, 3)))
    layer = AveragePooling2D(pool, strides=stride, padding=padding)
    layer.name = "average_pooling2d"
    report = tinycnn.gradcheck(layer, x)
    assert [r.name for r in report.results] == ["x"]
    assert report.max_rel_error < 1e-6, str(report)


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_global_average_pooling_forward_backward_gradcheck(h, w, float64, backend_name):
    rng = np.random.default_rng(h)
    x = rng.standard_normal((2, h, w, 3))
    layer = GlobalAveragePooling2D()
    assert layer.compute_output_shape((h, w, 3)) == (3,)
    y = tinycnn.to_numpy(layer.forward(tinycnn.to_backend(x), training=True))
    np.testing.assert_allclose(y, x.mean(axis=(1, 2)), rtol=1e-14)
    dy = rng.standard_normal((2, 3))
    dx = tinycnn.to_numpy(layer.backward(tinycnn.to_backend(dy)))
    np.testing.assert_allclose(dx, np.broadcast_to(dy[:, None, None, :] / (h * w), x.shape))
    layer.name = "global_average_pooling2d"
    report = tinycnn.gradcheck(layer, tinycnn.to_backend(x))
    assert report.max_rel_error < 1e-6, str(report)


# torch pads symmetrically: where TF's 'same' padding is even on both axes it is
# torch's padding=(total/2); odd totals are covered by the naive loops above.
@pytest.mark.torch
@pytest.mark.parametrize(
    ("size", "pool", "stride", "padding"),
    [
        ((7, 8), 2, 2, "valid"),
        ((7, 8), (2, 3), (1, 2), "valid"),
        ((7, 9), 3, 1, "same"),  # total padding 2 on both axes: one pixel each side
        ((7, 9), (3, 5), (2, 2), "same"),  # totals 2 and 4
    ],
)
def test_matches_pytorch(size, pool, stride, padding, float64):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, *size, 3))
    layer = AveragePooling2D(pool, strides=stride, padding=padding)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    if padding == "same":
        pads = [same_pads(n, k, s) for n, k, s in zip(size, pair(pool), pair(stride), strict=True)]
        assert all(before == after for before, after in pads)  # torch pads symmetrically
        torch_padding = tuple(before for before, _ in pads)
    else:
        torch_padding = 0
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    yt = torch.nn.functional.avg_pool2d(
        xt, pair(pool), pair(stride), padding=torch_padding, count_include_pad=False
    )
    (yt * torch.tensor(dy.transpose(0, 3, 1, 2))).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-13)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-13)


@pytest.mark.torch
def test_global_average_pooling_matches_pytorch(float64):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(6).standard_normal((2, 5, 7, 4))
    y = GlobalAveragePooling2D().forward(x)
    yt = torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x.transpose(0, 3, 1, 2)), 1)
    np.testing.assert_allclose(y, yt.numpy()[:, :, 0, 0], rtol=1e-14)


# ---- in a Sequential model ----------------------------------------------------------------
def small_model(seed=0):
    return tinycnn.Sequential(
        [
            Conv2D(4, 3, activation="relu", padding="same", input_shape=(7, 7, 1)),
            AveragePooling2D(2, padding="same"),
            GlobalAveragePooling2D(),
            Dense(3),
        ],
        seed=seed,
    )


def test_summary_shows_the_output_shapes():
    model = small_model()
    assert model.output_shapes() == [(7, 7, 4), (4, 4, 4), (4,), (3,)]
    lines = []
    model.summary(print_fn=lines.append)
    rows = [line.rstrip() for line in lines[4:11:2]]  # the fields are cut like Keras's
    assert rows == [
        "conv2d (Conv2D)              (None, 7, 7, 4)           40",
        "average_pooling2d (AveragePo (None, 4, 4, 4)           0",
        "global_average_pooling2d (Gl (None, 4)                 0",
        "dense (Dense)                (None, 3)                 15",
    ]
    assert model.count_params() == 4 * 9 + 4 + 4 * 3 + 3


def test_fit_lowers_the_loss_and_save_load_round_trips(tmp_path, backend_name):
    rng = np.random.default_rng(0)
    x = rng.random((32, 7, 7, 1), dtype=np.float32)
    labels = rng.integers(0, 3, 32)
    # learnable through a global average: the class is how bright the image is
    x += labels[:, None, None, None].astype(np.float32)
    model = small_model()
    model.compile(optimizer=tinycnn.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    x_b = tinycnn.to_backend(x)
    loss_before = model.evaluate(x_b, labels, return_dict=True)["loss"]
    model.fit(x_b, labels, epochs=10, batch_size=8, verbose=0, seed=0)
    loss_after = model.evaluate(x_b, labels, return_dict=True)["loss"]
    assert loss_after < 0.8 * loss_before

    path = tmp_path / "avgpool.npz"
    model.save(path)
    loaded = tinycnn.load_model(path)
    assert [type(layer).__name__ for layer in loaded.layers] == [
        "Conv2D",
        "AveragePooling2D",
        "GlobalAveragePooling2D",
        "Dense",
    ]
    assert loaded.layers[1].get_config() == model.layers[1].get_config()
    np.testing.assert_array_equal(
        tinycnn.to_numpy(loaded.predict(tinycnn.to_backend(x, loaded_backend(loaded)))),
        tinycnn.to_numpy(model.predict(x_b)),
    )


def loaded_backend(model):
    return tinycnn.backend.backend_of(model.layers[0].params["kernel"])
