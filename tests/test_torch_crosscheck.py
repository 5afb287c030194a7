"""Cross-check against PyTorch, in float64: forward outputs, every gradient, optimizer paths.

Layouts differ, numbers must not:
* images: tinycnn (and Keras) are channels-last NHWC; torch is NCHW: permute(0, 3, 1, 2).
* conv kernels: Keras (kh, kw, c_in, c_out); torch (c_out, c_in, kh, kw): transpose(3, 2, 0, 1).
* Dense kernels: Keras (in, out), so torch computes x @ W + b with W as it is.
* Flatten: Keras flattens each sample in (H, W, C) order, so the torch model permutes back to
  NHWC before flattening; otherwise the first Dense layer would see its inputs shuffled.
* padding='same': torch's padding='same' splits an odd total the other way (and does not
  allow strides), so the torch side pads explicitly with F.pad by TensorFlow's rule: the
  extra pixel goes bottom/right.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinycnn
from tinycnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D, ReLU
from tinycnn.losses import SoftmaxCrossEntropy
from tinycnn.optimizers import SGD, Adam

torch = pytest.importorskip("torch", reason="the PyTorch cross-check needs torch (tinycnn[torch])")
F = torch.nn.functional

pytestmark = pytest.mark.torch

RTOL, ATOL = 1e-10, 1e-12


def tf_pads(size, k, stride):
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def leaf(array):
    return torch.tensor(np.array(tinycnn.to_numpy(array), dtype="float64"), requires_grad=True)


class TorchTwin:
    """The same network in PyTorch, with the weights of a list of tinycnn layers.

    ``params`` holds, per tinycnn layer, torch leaf tensors in torch's layout.
    """

    def __init__(self, layers):
        self.layers = list(layers)
        self.params = []
        for layer in self.layers:
            p = {}
            if isinstance(layer, Conv2D):
                p["kernel"] = leaf(tinycnn.to_numpy(layer.params["kernel"]).transpose(3, 2, 0, 1))
            elif isinstance(layer, Dense):
                p["kernel"] = leaf(layer.params["kernel"])
            if "bias" in layer.params:
                p["bias"] = leaf(layer.params["bias"])
            self.params.append(p)

    def __call__(self, x):
        """x: torch NHWC (or (N, D)); returns NHWC (or (N, D)) like tinycnn."""
        h = x.permute(0, 3, 1, 2) if x.dim() == 4 else x  # NHWC -> NCHW
        for layer, p in zip(self.layers, self.params, strict=True):
            if isinstance(layer, Conv2D):
                (kh, kw), s = layer.kernel_size, layer.strides[0]
                if layer.padding == "same":
                    (pt, pb), (pl, pr) = tf_pads(h.shape[2], kh, s), tf_pads(h.shape[3], kw, s)
                    h = F.pad(h, (pl, pr, pt, pb))
                h = F.conv2d(h, p["kernel"], p.get("bias"), stride=s)
            elif isinstance(layer, MaxPooling2D):
                (ph, pw), (sh, sw) = layer.pool_size, layer.strides
                if layer.padding == "same":
                    (pt, pb), (pl, pr) = tf_pads(h.shape[2], ph, sh), tf_pads(h.shape[3], pw, sw)
                    h = F.pad(h, (pl, pr, pt, pb), value=-math.inf)
                h = F.max_pool2d(h, (ph, pw), (sh, sw))
            elif isinstance(layer, Flatten):
                h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # Keras order: (H, W, C)
            elif isinstance(layer, Dense):
                h = h @ p["kernel"] + p["bias"] if "bias" in p else h @ p["kernel"]
            elif isinstance(layer, (ReLU, Dropout)):
                pass
            else:  # pragma: no cover
                raise TypeError(type(layer))
            if isinstance(layer, ReLU) or getattr(layer, "activation", None) == "relu":
                h = torch.relu(h)
        return h.permute(0, 2, 3, 1) if h.dim() == 4 else h

    def grads_keras_layout(self):
        """Parameter gradients as tinycnn stores them, in get_weights order."""
        out = []
        for layer, p in zip(self.layers, self.params, strict=True):
            for key in layer.params:
                g = p[key].grad.numpy()
                out.append(g.transpose(2, 3, 1, 0) if g.ndim == 4 else g)
        return out

    def weights_keras_layout(self):
        out = []
        for layer, p in zip(self.layers, self.params, strict=True):
            for key in layer.params:
                w = p[key].detach().numpy()
                out.append(w.transpose(2, 3, 1, 0) if w.ndim == 4 else w)
        return out

    def parameters(self):
        return [t for p in self.params for t in p.values()]


class MaxDiff:
    """assert_allclose that remembers the largest absolute difference, for the report."""

    def __init__(self):
        self.worst = 0.0

    def __call__(self, got, expected, what=""):
        got, expected = tinycnn.to_numpy(got), np.asarray(expected)
        assert got.shape == expected.shape, what
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=what)
        self.worst = max(self.worst, float(np.abs(got - expected).max(initial=0.0)))


def check_layer_against_torch(layer, x):
    """Forward and backward of one built layer vs its torch twin, with a random dy."""
    close = MaxDiff()
    twin = TorchTwin([layer])
    y = layer.forward(tinycnn.to_backend(x), training=True)
    dy = np.random.default_rng(99).standard_normal(tuple(y.shape))
    dx = layer.backward(tinycnn.to_backend(dy))
    xt = torch.tensor(x, requires_grad=True)
    yt = twin(xt)
    (yt * torch.tensor(dy)).sum().backward()
    close(y, yt.detach().numpy(), "y")
    close(dx, xt.grad.numpy(), "dx")
    for key, g in zip(layer.params, twin.grads_keras_layout(), strict=True):
        close(layer.grads[key], g, key)
    print(f"{layer._label()}: max abs diff vs torch {close.worst:.2e}")
    return close.worst


# ---- layers ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "shape"),
    [
        ({"filters": 4, "kernel_size": 3}, (2, 7, 6, 3)),
        ({"filters": 4, "kernel_size": 3, "padding": "same"}, (2, 7, 6, 3)),
        ({"filters": 5, "kernel_size": 3, "strides": 2}, (2, 9, 8, 2)),
        ({"filters": 5, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 8, 7, 2)),
        ({"filters": 2, "kernel_size": 2, "padding": "same", "activation": "relu"}, (3, 5, 5, 1)),
        ({"filters": 3, "kernel_size": (2, 3), "use_bias": False}, (1, 6, 6, 4)),
    ],
)
def test_conv2d(kwargs, shape, float64, backend_name, kernel_path):
    layer = Conv2D(**kwargs, name="conv2d")
    layer.build(shape[1:], rng=1)
    if layer.use_bias:
        layer.params["bias"] = tinycnn.to_backend(np.linspace(-0.3, 0.3, layer.filters))
    check_layer_against_torch(layer, np.random.default_rng(2).standard_normal(shape))


@pytest.mark.parametrize(
    ("kwargs", "shape"),
    [
        ({"pool_size": 2}, (2, 6, 6, 3)),
        ({"pool_size": 2}, (2, 7, 5, 2)),
        ({"pool_size": 2, "strides": 1}, (2, 5, 5, 2)),
        ({"pool_size": 3, "strides": 2}, (2, 7, 7, 2)),
        ({"pool_size": 2, "padding": "same"}, (2, 7, 5, 2)),
        ({"pool_size": 3, "strides": 2, "padding": "same"}, (1, 8, 7, 2)),
        ({"pool_size": (2, 3)}, (2, 7, 9, 2)),  # not square: window offsets i * pw + j
        ({"pool_size": (3, 2), "strides": (1, 2)}, (1, 7, 6, 2)),
    ],
)
def test_max_pooling(kwargs, shape, tie_free, float64, backend_name, kernel_path):
    layer = MaxPooling2D(**kwargs, name="max_pooling2d")
    check_layer_against_torch(layer, tie_free(shape, seed=5))


@pytest.mark.parametrize("activation", [None, "relu"])
def test_dense(activation, float64, backend_name, kernel_path):
    layer = Dense(7, activation=activation, name="dense")
    layer.build((5,), rng=3)
    layer.params["bias"] = tinycnn.to_backend(np.linspace(-0.2, 0.2, 7))
    check_layer_against_torch(layer, np.random.default_rng(4).standard_normal((6, 5)))


def test_relu(kink_free, float64, backend_name, kernel_path):
    check_layer_against_torch(ReLU(name="re_lu"), kink_free((2, 4, 3, 2), seed=6))


def test_flatten_order(float64, backend_name):
    check_layer_against_torch(
        Flatten(name="flatten"), np.random.default_rng(7).standard_normal((2, 3, 4, 5))
    )


@pytest.mark.parametrize(("n", "c"), [(1, 10), (8, 10), (5, 3)])
def test_softmax_cross_entropy(n, c, float64, backend_name):
    r = np.random.default_rng(n)
    logits, labels = r.standard_normal((n, c)) * 2, r.integers(0, c, n)
    fn = SoftmaxCrossEntropy()
    loss = fn.forward(tinycnn.to_backend(logits), tinycnn.to_backend(labels))
    grad = fn.backward()
    lt = torch.tensor(logits, requires_grad=True)
    loss_t = F.cross_entropy(lt, torch.tensor(labels))
    loss_t.backward()
    close = MaxDiff()
    close(np.asarray(float(loss)), loss_t.detach().numpy(), "loss")
    close(grad, lt.grad.numpy(), "dlogits")
    print(f"SoftmaxCrossEntropy: max abs diff vs torch {close.worst:.2e}")


# ---- the whole seed network --------------------------------------------------------------------
def check_network_against_torch(model, x, labels):
    """Logits, loss, dL/dx and every parameter gradient of ``model`` vs its torch twin."""
    if not model.built:
        model.build(model.input_shape)
    twin = TorchTwin(model.layers)
    fn = SoftmaxCrossEntropy()
    where = tinycnn.backend.backend_of(model.layers[0].params["kernel"])
    logits = model.forward(tinycnn.to_backend(x, where), training=True)
    loss = fn.forward(logits, tinycnn.to_backend(labels, where))
    dx = model.backward(fn.backward())
    xt = torch.tensor(x, requires_grad=True)
    logits_t = twin(xt)
    loss_t = F.cross_entropy(logits_t, torch.tensor(labels))
    loss_t.backward()
    close = MaxDiff()
    close(logits, logits_t.detach().numpy(), "logits")
    close(np.asarray(float(loss)), loss_t.detach().numpy(), "loss")
    close(dx, xt.grad.numpy(), "dx")
    names = [f"{layer.name}/{k}" for layer in model.layers for k in layer.params]
    grads = [layer.grads[k] for layer in model.layers for k in layer.params]
    for name, got, expected in zip(names, grads, twin.grads_keras_layout(), strict=True):
        close(got, expected, name)
    print(f"seed network: max abs diff vs torch {close.worst:.2e} (loss {float(loss):.6f})")
    return close.worst


def test_seed_network(float64, kernel_path):
    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    r = np.random.default_rng(0)
    check_network_against_torch(model, r.random((4, 28, 28, 1)), r.integers(0, 10, 4))


@pytest.mark.gpu
def test_seed_network_on_cupy(float64):
    with tinycnn.use_backend("cupy"):
        model = tinycnn.models.fashion_mnist_cnn(seed=0)
        model.build(model.input_shape)
    assert tinycnn.backend.backend_of(model.layers[0].params["kernel"]) == "cupy"
    r = np.random.default_rng(0)
    check_network_against_torch(model, r.random((4, 28, 28, 1)), r.integers(0, 10, 4))


# ---- optimizer trajectories ---------------------------------------------------------------------
def torch_optimizer(name, params):
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.1)
    if name == "momentum":
        return torch.optim.SGD(params, lr=0.1, momentum=0.9)
    if name == "nesterov":
        return torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    return torch.optim.Adam(params, lr=0.01, betas=(0.9, 0.999), eps=1e-7)


def tinycnn_optimizer(name):
    return {
        "sgd": lambda: SGD(0.1),
        "momentum": lambda: SGD(0.1, momentum=0.9),
        "nesterov": lambda: SGD(0.1, momentum=0.9, nesterov=True),
        "adam": lambda: Adam(0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    }[name]()


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
def test_optimizer_trajectory(name, make_small_model, float64, backend_name):
    """Five steps on the small network: every parameter matches torch.optim after each step.

    Each side computes its own gradients on the same batch. SGD's momentum forms are the
    same update (Keras' v = -lr * torch's buffer). Adam differs in where epsilon goes:
    tinycnn (Keras) divides by sqrt(v_t) + eps, torch by sqrt(v_t / (1 - beta_2^t)) + eps,
    i.e. by (sqrt(v_t) + eps * sqrt(1 - beta_2^t)) / sqrt(1 - beta_2^t). Setting torch's eps
    to eps / sqrt(1 - beta_2^t) before step t makes the two updates identical.
    """
    model = make_small_model(seed=0)
    model.build(model.input_shape)
    twin = TorchTwin(model.layers)
    opt, opt_t = tinycnn_optimizer(name), torch_optimizer(name, twin.parameters())
    r = np.random.default_rng(1)
    x, labels = r.random((4, 14, 14, 2)), r.integers(0, 4, 4)
    xb, yb = tinycnn.to_backend(x), tinycnn.to_backend(labels)
    fn, close = SoftmaxCrossEntropy(), MaxDiff()
    start = [w.copy() for w in model.get_weights()]
    for t in range(1, 6):
        fn.forward(model.forward(xb, training=True), yb)
        model.backward(fn.backward(), input_grad=False)
        opt.step(model.layers)

        opt_t.zero_grad()
        F.cross_entropy(twin(torch.tensor(x)), torch.tensor(labels)).backward()
        if name == "adam":
            for group in opt_t.param_groups:
                group["eps"] = 1e-7 / math.sqrt(1 - 0.999**t)
        opt_t.step()
        for k, (got, expected) in enumerate(
            zip(model.get_weights(), twin.weights_keras_layout(), strict=True)
        ):
            close(got, expected, f"step {t}, weight {k}")
    moved = max(float(np.abs(a - b).max()) for a, b in zip(model.get_weights(), start, strict=True))
    assert moved > 1e-3  # the trajectory went somewhere
    print(f"{name}: max abs diff vs torch.optim over 5 steps {close.worst:.2e} (moved {moved:.3f})")


def test_adam_without_the_epsilon_correction_differs(make_small_model, float64):
    """The epsilon placement matters: with torch's eps left at 1e-7 the paths diverge a bit
    (so the correction in the test above is doing something)."""
    model = make_small_model(seed=0)
    model.build(model.input_shape)
    twin = TorchTwin(model.layers)
    # tiny gradients make sqrt(v) comparable to epsilon
    x, labels = np.full((1, 14, 14, 2), 1e-3), np.array([0])
    opt, opt_t = tinycnn_optimizer("adam"), torch_optimizer("adam", twin.parameters())
    fn = SoftmaxCrossEntropy()
    fn.forward(model.forward(x, training=True), labels)
    model.backward(fn.backward(), input_grad=False)
    opt.step(model.layers)
    F.cross_entropy(twin(torch.tensor(x)), torch.tensor(labels)).backward()
    opt_t.step()
    worst = max(
        float(np.abs(a - b).max())
        for a, b in zip(model.get_weights(), twin.weights_keras_layout(), strict=True)
    )
    assert worst > 1e-6
