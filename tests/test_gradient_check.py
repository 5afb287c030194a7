"""The gradient checker: correct code passes with the defaults, wrong code fails with them.

Every check below uses gradcheck's defaults (h, tol, max_elements) unless it says why not.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import tinycnn
from tinycnn import gradient_check
from tinycnn.backend import get_array_module
from tinycnn.gradient_check import element_errors, numerical_gradient, rel_error
from tinycnn.layers import (
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPooling2D,
    ReLU,
)
from tinycnn.losses import SoftmaxCrossEntropy

SEED_NETWORK_ARRAYS = [
    "x",
    "conv2d/kernel",
    "conv2d/bias",
    "conv2d_1/kernel",
    "conv2d_1/bias",
    "dense/kernel",
    "dense/bias",
    "dense_1/kernel",
    "dense_1/bias",
]


# ---- layers a student might write (the current contract: _forward / _backward) -------------------
class LeakyReLU(Layer):
    """y = x for x > 0, slope * x otherwise. ``backward_slope`` plants a bug when it differs."""

    def __init__(self, slope=0.1, backward_slope=None, name=None):
        super().__init__(name=name)
        self.slope = slope
        self.backward_slope = slope if backward_slope is None else backward_slope

    def _forward(self, x, training):
        self.cache = x
        return np.where(x > 0, x, self.slope * x)

    def _backward(self, dy, input_grad):
        return np.where(self.cache > 0, dy, self.backward_slope * dy)


class BiasNotSummedDense(Dense):
    """The bias gradient of the first sample only: the batch sum forgotten."""

    def _backward(self, dy, input_grad):
        dx = super()._backward(dy, input_grad)
        self.grads["bias"] = dy[0].copy()
        return dx


class KernelOnePercentOffConv(Conv2D):
    """Every kernel gradient 1% too large."""

    def _backward(self, dy, input_grad):
        dx = super()._backward(dy, input_grad)
        self.grads["kernel"] = self.grads["kernel"] * 1.01
        return dx


class CornerForgottenConv(Conv2D):
    """dL/dx right except at one border pixel, the bottom-right corner of the first image
    (a col2im that stops one row and column short, for one channel)."""

    def _backward(self, dy, input_grad):
        dx = super()._backward(dy, input_grad)
        if dx is not None:
            dx[0, -1, -1, 0] = 0.0
        return dx


class OneElementOffFlatten(Flatten):
    """dL/dx 1% off in one element only."""

    def _backward(self, dy, input_grad):
        dx = super()._backward(dy, input_grad).copy()
        dx[3, 7, 2, 1] *= 1.01
        return dx


class WrongDense(Dense):
    """Dense whose kernel gradient forgets the batch sum: a typical bug."""

    def _backward(self, dy, input_grad):
        dx = super()._backward(dy, input_grad)
        x, _ = self.cache
        self.grads["kernel"] = x[:1].T @ dy[:1]
        return dx


def normal(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- the seed network -------------------------------------------------------------------------------
def seed_network_and_data():
    """fashion_mnist_cnn(seed=0), built in float32 as a student builds it, and two images."""
    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    return model, x, np.array([3, 7])


def test_seed_network_passes_with_the_defaults():
    """The issue's goal: the whole seed network on 2 images, defaults, in well under a minute.

    Before: FAILED (conv2d/kernel 0.52 at h = 1e-4, steps across ReLU and pool kinks),
    a TypeError for the float32 model, and about 0.8 h for a full check.
    """
    model, x, labels = seed_network_and_data()
    before = model.get_weights()
    report = tinycnn.gradcheck(model, x, labels)
    print(report)
    assert report.ok, str(report)
    assert [r.name for r in report.results] == SEED_NETWORK_ARRAYS
    assert report.max_rel_error < 1e-6
    assert report.seconds < 60, f"took {report.seconds:.1f} s"
    # a sample of each large array, every element of the small ones, a direction over all
    assert [r.checked for r in report.results] == [200, 200, 64, 200, 64, 200, 200, 200, 10]
    assert report.total == 1568 + 862_410
    assert all(not np.isnan(r.directional_error) for r in report.results)
    # the first layer's bias shifts 1352 pre-activations per filter at once: some of its
    # elements sit within h = 1e-5 of a ReLU kink and are measured again with h / 10
    assert report["conv2d/bias"].remeasured > 3
    assert report.skipped <= 0.02 * report.checked
    assert "checked a float64 copy of model 'sequential'" in str(report)
    assert f", {report.seconds:.1f} s)" in str(report).splitlines()[0]
    # the model itself is untouched: still float32, same weights
    for got, want in zip(model.get_weights(), before, strict=True):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)


@pytest.mark.gpu
def test_seed_network_passes_on_cupy(float64):
    model, x, labels = seed_network_and_data()
    with tinycnn.use_backend("cupy"):
        model.to("cupy")
        report = tinycnn.gradcheck(model, tinycnn.to_backend(x), tinycnn.to_backend(labels))
    print(report)
    assert report.ok and report.max_rel_error < 1e-6, str(report)
    # and the analytic gradients are those of NumPy (same weights, same images)
    r = np.random.default_rng(0)
    x, labels = r.random((2, 28, 28, 1)), np.array([3, 7])
    grads = {}
    for name in ("numpy", "cupy"):
        with tinycnn.use_backend(name):
            model = tinycnn.models.fashion_mnist_cnn(seed=0)
            fn = SoftmaxCrossEntropy()
            fn.forward(model.forward(tinycnn.to_backend(x)), tinycnn.to_backend(labels))
            dx = model.backward(fn.backward())
            grads[name] = [dx] + [layer.grads[k] for layer in model.layers for k in layer.params]
    for got, expected in zip(grads["cupy"], grads["numpy"], strict=True):
        np.testing.assert_allclose(
            tinycnn.to_numpy(got), tinycnn.to_numpy(expected), rtol=1e-9, atol=1e-15
        )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_small_network_every_element(seed, make_small_model, float64):
    """Conv(4)-Pool-Conv(3)-Pool-Flatten-Dense(6, relu)-Dense(4), every element of every array.

    For seeds 0 and 2 a first-layer filter has a pre-activation about 5e-5 from zero, so
    moving its bias by h = 1e-4 (10 times the default step) crosses the ReLU kink: the
    checker sees the ReLU mask change and measures that element again with h / 10.
    """
    model = make_small_model(seed)
    x = np.random.default_rng(seed).random((3, 14, 14, 2))
    report = tinycnn.gradcheck(model, x, np.array([0, 1, 3]), h=1e-4, max_elements=None)
    print(report)
    assert report.ok and report.max_rel_error < 1e-6, str(report)
    assert report.checked == report.total == x.size + model.count_params()
    if seed in (0, 2):
        assert report["conv2d/bias"].remeasured >= 1


# ---- what used to fail on correct code -------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_flatten_on_a_large_input_passes(seed, float64):
    """(8, 12, 12, 4) = 4608 elements: summing y * G first, the rounding of the sum
    (1e-16 * 3700) divided by 2h gave errors of 3e-6 to 1.5e-5: FAILED for a reshape."""
    report = tinycnn.gradcheck(Flatten(name="flatten"), normal((8, 12, 12, 4), seed), seed=seed)
    print(report)
    assert report.ok and report.max_rel_error < 1e-8, str(report)
    assert report["x"].checked == 200 and report["x"].total == 4608


def test_a_correct_student_leaky_relu_passes():
    report = tinycnn.gradcheck(LeakyReLU(0.1, name="leaky"), normal((8, 12, 12, 4), 1))
    print(report)
    assert report.ok and report.max_rel_error < 1e-8, str(report)
    assert report["x"].skipped == 0


def test_elements_on_a_kink_are_skipped_and_counted():
    """x = 0 exactly sits on the LeakyReLU's kink: no step avoids it. The checker sees
    f(x + h) - f(x) != f(x) - f(x - h) (the two half steps disagree) and skips the
    element, from the forward pass alone. A few such elements pass; too many fail."""
    x = normal((8, 12, 12, 4), 2)
    x.reshape(-1)[::40] = 0.0  # 2.5% of the elements
    report = tinycnn.gradcheck(LeakyReLU(0.1), x)
    print(report)
    assert report.ok, str(report)
    assert 0 < report["x"].skipped <= 0.1 * report["x"].checked
    assert f"{report['x'].skipped} skipped (on a kink at every step)" in str(report)
    x.reshape(-1)[::3] = 0.0  # a third of them
    report = tinycnn.gradcheck(LeakyReLU(0.1), x)
    print(report)
    assert not report.ok and report.too_many_skipped == ["x"]
    assert report.max_rel_error < 1e-6  # what was compared agrees; the verdict is the skips
    assert "INCONCLUSIVE" in str(report) and "sit on a kink" in str(report)
    assert str(report).splitlines()[1].split()[:2] == ["x", "INCONCLUSIVE"]


def test_a_custom_layer_may_declare_its_kinks():
    """With ``kink_pattern`` the checker knows on which side of the kink x = 0 lies (the
    side backward uses): those elements are measured one-sided instead of skipped."""

    class DeclaredLeakyReLU(LeakyReLU):
        def kink_pattern(self, x, y):
            return x > 0

    x = normal((8, 12, 12, 4), 2)
    x.reshape(-1)[::3] = 0.0
    report = tinycnn.gradcheck(DeclaredLeakyReLU(0.1), x)
    print(report)
    assert report.ok and report.max_rel_error < 1e-8, str(report)
    assert report["x"].skipped == 0 and report["x"].remeasured > 50


def test_relu_near_its_kink_is_measured_again_with_a_smaller_step(float64):
    """Elements 3e-7 from 0 (within h = 1e-6): the ReLU mask of x + h or x - h differs,
    so they are measured again with h / 10 (3e-7 away is then out of reach)."""
    x = normal((6, 50), 3)
    x[:, :5] = 3e-7
    report = tinycnn.gradcheck(ReLU(name="re_lu"), x, max_elements=None)
    print(report)
    assert report.ok and report.max_rel_error < 1e-8, str(report)
    assert report["x"].remeasured == 30 and report["x"].skipped == 0


def test_relu_exactly_on_its_kink_is_measured_on_one_side(float64):
    """At x = 0 exactly, x + h turns the unit on and x - h keeps it off: the pattern shows
    that the base point is on the 'off' side, whose slope (0) backward returns, and the
    one-sided difference from x, x - h, x - 2h measures it."""
    x = normal((6, 50), 4)
    x[:, ::10] = 0.0
    report = tinycnn.gradcheck(ReLU(name="re_lu"), x, max_elements=None)
    print(report)
    assert report.ok and report.max_rel_error < 1e-8, str(report)
    assert report["x"].remeasured == 30 and report["x"].skipped == 0


def test_images_with_a_black_background_are_inconclusive(make_small_model, float64):
    """Zero pixels under zero biases put whole regions exactly on ReLU kinks and max-pool
    ties: moving such a pixel either way turns some units on, so its derivative is not
    defined. The check skips those elements and, with too many, says INCONCLUSIVE."""
    model = make_small_model(1)
    x = np.random.default_rng(1).random((3, 14, 14, 2))
    x[:, :, :7] = 0.0  # the left half black
    report = tinycnn.gradcheck(model, x, np.array([0, 1, 3]), max_elements=50)
    print(report)
    assert not report.ok and report.verdict == "INCONCLUSIVE"
    assert report.max_rel_error < 1e-6  # what could be compared agrees
    assert "x" in report.too_many_skipped and "numpy.random.rand" in str(report)


# ---- what must still fail -----------------------------------------------------------------------
def test_leaky_relu_with_a_wrong_negative_slope_fails():
    report = tinycnn.gradcheck(
        LeakyReLU(0.1, backward_slope=0.2, name="leaky"), normal((8, 12, 12, 4), 1)
    )
    print(report)
    assert not report.ok and "FAILED" in str(report)
    assert report["x"].max_rel_error == pytest.approx(0.1 / 0.3, rel=1e-6)  # |0.2 - 0.1| / 0.3


def test_bias_gradient_not_summed_over_the_batch_fails(float64):
    report = tinycnn.gradcheck(BiasNotSummedDense(5, name="dense"), normal((4, 3)))
    print(report)
    assert not report.ok
    assert report["bias"].max_rel_error > 0.1
    assert report["x"].max_rel_error < 1e-8 and report["kernel"].max_rel_error < 1e-8


def test_bias_gradient_not_summed_fails_inside_a_model(make_small_model, float64):
    model = make_small_model(0)
    model.layers[-1] = BiasNotSummedDense(4, name="dense_1")
    model.layers[-1].build((6,), rng=0)
    report = tinycnn.gradcheck(model, np.random.default_rng(0).random((3, 14, 14, 2)),
                               np.array([0, 1, 3]))  # fmt: skip
    print(report)
    assert not report.ok
    assert report["dense_1/bias"].max_rel_error > 0.1
    assert report["dense_1/kernel"].max_rel_error < 1e-6


def test_a_one_percent_error_in_one_gradient_fails(float64):
    layer = KernelOnePercentOffConv(4, 3, activation="relu", name="conv")
    report = tinycnn.gradcheck(layer, normal((2, 8, 8, 3), 4))
    print(report)
    assert not report.ok
    assert report["kernel"].max_rel_error == pytest.approx(0.01 / 2.01, rel=1e-3)
    assert report["x"].max_rel_error < 1e-6 and report["bias"].max_rel_error < 1e-6


def test_a_one_percent_error_in_one_element_fails():
    """4608 elements, 200 sampled: the directional derivative over all of them sees it."""
    x = normal((8, 12, 12, 4), 5)
    report = tinycnn.gradcheck(OneElementOffFlatten(), x)
    print(report)
    assert not report.ok
    assert report["x"].directional_error > 1e-5


def test_one_wrong_border_element_fails(float64):
    """3072 input elements, 200 sampled: the corner pixel is found by the directional check."""
    x = normal((4, 16, 16, 3), 6)
    report = tinycnn.gradcheck(CornerForgottenConv(4, 3, name="conv"), x)
    print(report)
    assert not report.ok
    assert report["x"].directional_error > 1e-4
    assert report["kernel"].max_rel_error < 1e-6


def test_one_wrong_border_element_fails_inside_a_model(float64):
    model = tinycnn.Sequential(
        [CornerForgottenConv(4, 3, activation="relu"), Flatten(), Dense(3)], seed=0
    )
    x = np.random.default_rng(0).random((2, 12, 12, 2))
    report = tinycnn.gradcheck(model, x, np.array([0, 2]))
    print(report)
    assert not report.ok
    assert report["x"].max_rel_error > 1e-4
    assert report["dense/kernel"].max_rel_error < 1e-6


def test_a_wrong_kernel_gradient_fails(float64):
    report = tinycnn.gradcheck(WrongDense(2, name="dense"), normal((4, 3)))
    print(report)
    assert not report.ok
    assert report["kernel"].max_rel_error > 0.01
    assert report["x"].max_rel_error < 1e-6 and report["bias"].max_rel_error < 1e-6
    assert "FAILED" in str(report) and "kernel" in str(report)


def test_a_wrong_layer_fails_inside_a_model(float64):
    model = tinycnn.Sequential(
        [Dense(5, activation="relu", input_shape=(3,)), WrongDense(2)], seed=0
    )
    report = tinycnn.gradcheck(model, normal((4, 3)), np.array([0, 1, 1, 0]))
    print(report)
    assert report["wrong_dense/kernel"].max_rel_error > 0.01
    assert report["dense/kernel"].max_rel_error < 1e-6


def test_a_wrong_loss_gradient_fails(float64):
    class DoubledLoss(SoftmaxCrossEntropy):
        def backward(self):
            return 2 * super().backward()

    logits = normal((3, 4))
    report = tinycnn.gradcheck(DoubledLoss(), logits, np.array([0, 1, 2]))
    assert report.max_rel_error == pytest.approx(1 / 3, rel=1e-4)  # |2g - g| / (|2g| + |g|)


# ---- float32 objects, Dropout, the signature, the report ------------------------------------------
def test_a_float32_layer_is_checked_as_a_float64_copy():
    """The README's low-level snippet builds a layer on float32 data: gradcheck(layer, x)
    used to raise 'gradcheck needs float64 arrays'. Now it checks a float64 copy."""
    x = np.random.default_rng(7).standard_normal((4, 6)).astype("float32")
    layer = Dense(3, activation="relu", name="dense")
    y = layer.forward(x, training=True)
    kernel, cache = layer.params["kernel"].copy(), layer.cache
    report = tinycnn.gradcheck(layer, x)
    print(report)
    assert report.ok and report.max_rel_error < 1e-6, str(report)
    assert "checked a float64 copy of Dense layer 'dense' (the layer is untouched)" in str(report)
    assert "x (float32) cast to float64" in str(report)
    assert layer.dtype == "float32" and layer.params["kernel"].dtype == np.float32
    np.testing.assert_array_equal(layer.params["kernel"], kernel)
    assert layer.cache is cache and y.dtype == np.float32


def test_a_float64_layer_is_checked_in_place(float64):
    layer = Dense(3, name="dense")
    report = tinycnn.gradcheck(layer, normal((4, 6)))
    assert "copy" not in str(report)
    assert layer.built and layer.params["kernel"].dtype == np.float64


class Counting(Layer):
    """y = x * c, where the non-trainable weight c grows by 1 with every training forward
    pass (as a moving average moves with every batch). Its backward is right."""

    def build(self, input_shape):
        self.add_weight("c", (1,), initializer="ones", trainable=False)

    def forward(self, x, training=False):
        c = self.params["c"].copy()
        if training:
            self.params["c"] += 1.0
        self.cache = (x, c)
        return x * c

    def backward(self, dy):
        x, c = self.cache
        self.grads["c"] = (dy * x).sum().reshape(1)  # dL/dc, for the check of c
        return dy * c


def test_a_weight_the_forward_moves_is_the_same_for_every_evaluation(float64):
    """Before: each of the check's forward passes saw a larger c, so every difference
    mixed two functions (INCONCLUSIVE: most elements taken for kinks and skipped), and
    the layer came back with another c."""
    layer = Counting(name="counting")
    layer.build((3,), rng=0)
    layer.params["c"][...] = 2.5
    report = tinycnn.gradcheck(layer, normal((4, 3), 1), training=True)
    print(report)
    assert report.ok and report.max_rel_error < 1e-8, str(report)
    assert [r.name for r in report.results] == ["x", "c"]
    assert layer.params["c"].tolist() == [2.5]  # put back after the check


def test_a_model_with_batch_normalization_is_left_as_it_was(float64):
    """gradcheck(model, x, labels, training=True): thousands of training forward passes,
    and the moving averages end bit for bit where they started (float64: no copy)."""
    L = tinycnn.layers
    model = tinycnn.Sequential(
        [L.Dense(6, input_shape=(5,)), L.BatchNormalization(), L.ReLU(), L.Dense(3)], seed=0
    )
    model.build((5,))
    bn = model.layers[1]
    bn.set_weights([np.full(6, 1.5), np.full(6, 0.1), np.full(6, 0.3), np.full(6, 2.0)])
    before = model.get_weights()
    report = tinycnn.gradcheck(
        model, normal((6, 5), 2), np.array([0, 1, 2, 0, 1, 2]), training=True
    )
    print(report)
    assert report.ok, str(report)
    for was, now in zip(before, model.get_weights(), strict=True):
        assert np.array_equal(was, now)  # bit-identical; before: moving averages moved


def test_smooth_built_in_layers_are_not_taken_for_kinks(float64):
    """The bend test (f(x + h) - 2 f(x) + f(x - h) beyond rounding) is for layers whose
    kinks nobody declares. A smooth curve bends too, by f'' h^2: before, it flagged all
    180 elements of x of a BatchNormalization in training mode as kinks (re-measured
    with h / 10), and most of a tanh Dense's. A built-in layer's kinks are its patterns."""
    bn = tinycnn.layers.BatchNormalization()
    bn.build((3, 3, 5), rng=0)
    report = tinycnn.gradcheck(bn, normal((4, 3, 3, 5)), training=True)
    dense = tinycnn.gradcheck(tinycnn.layers.Dense(4, activation="tanh"), normal((3, 6)))
    for r in (*report.results, *dense.results):
        assert (r.remeasured, r.skipped) == (0, 0), r.line()
    assert report.ok and dense.ok and report.max_rel_error < 1e-8
    assert gradient_check.kinks_declared(bn) and not gradient_check.kinks_declared(LeakyReLU())


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_in_training_uses_one_fixed_mask(rate, float64):
    """A plain Dropout draws a new mask on each call; the check fixes one for all of them."""
    layer = Dropout(rate, seed=1, name="dropout")
    report = tinycnn.gradcheck(layer, normal((5, 8), 7), training=True)
    print(report)
    assert report.ok and report.max_rel_error < 1e-8, str(report)
    assert "Dropout: one fixed mask for every evaluation" in str(report)
    assert 0 < float((layer.cache == 0).mean()) < 1  # some dropped, some kept
    assert layer.noise_key is None  # put back


def test_dropout_in_a_model_in_training(float64):
    model = tinycnn.Sequential(
        [Dense(6, activation="relu", input_shape=(4,)), Dropout(0.5), Dense(3)], seed=0
    )
    report = tinycnn.gradcheck(model, normal((5, 4), 8), np.array([0, 1, 2, 1, 0]), training=True)
    print(report)
    assert report.ok and report.max_rel_error < 1e-6, str(report)
    assert "one fixed mask" in str(report)


def test_signature_shows_the_options():
    parameters = inspect.signature(tinycnn.gradcheck).parameters
    for name in ("h", "tol", "max_elements", "training", "seed"):
        assert name in parameters
    assert parameters["tol"].default == 1e-6 and parameters["max_elements"].default == 200
    assert not any(p.kind == p.VAR_KEYWORD for p in parameters.values())
    assert "max_elements" in tinycnn.gradcheck.__doc__


def test_report_lists_every_array_and_reads_well(float64):
    report = tinycnn.gradcheck(Dense(4, name="dense_7"), normal((2, 3), 1))
    lines = str(report).splitlines()
    assert lines[0].startswith("Gradient check of Dense layer 'dense_7': OK (tol 1e-06, h 1e-06, ")
    assert [line.split()[:3] for line in lines[1:7:2]] == [
        [n, "OK", "max"] for n in ("x", "kernel", "bias")
    ]
    assert "max error 0 over all 6 elements; whole-array direction check 0" in lines[1]
    assert "over all 12 elements;" in lines[3]
    assert lines[2].split()[:2] == ["worst", "element"] and "analytic" in lines[2]
    assert lines[7:] == ["  (an error of 0: analytic and numeric agree within rounding)"]
    assert report["kernel"].name == "kernel" and report.tol == 1e-6 and report.h == 1e-6
    assert report.checked == report.total == 6 + 12 + 4 and report.skipped == 0


def test_progress_bar_for_slow_checks(monkeypatch, capsys, float64):
    tinycnn.gradcheck(Dense(4), normal((2, 3)))
    assert "gradcheck" not in capsys.readouterr().err  # fast: no bar
    monkeypatch.setattr(gradient_check.check, "PROGRESS_DELAY", 0.0)  # read there
    tinycnn.gradcheck(Dense(4, name="dense"), normal((2, 3)))
    assert "gradcheck Dense layer 'dense'" in capsys.readouterr().err


# ---- the pieces -------------------------------------------------------------------------------------
def test_numerical_gradient_of_a_known_function():
    # f(a) = sum(a^3): df/da = 3 a^2; central differences err by h^2 * f''' / 6 = h^2
    a = np.array([[1.0, -2.0], [0.5, 3.0]])
    before = a.copy()
    grad = numerical_gradient(lambda: float((a**3).sum()), a, h=1e-4)
    np.testing.assert_allclose(grad, 3 * before**2, rtol=0, atol=2e-8)
    np.testing.assert_array_equal(a, before)  # every element was put back
    part = numerical_gradient(lambda: float((a**3).sum()), a, h=1e-4, indices=[1, 2])
    assert np.isnan(part.reshape(-1)[[0, 3]]).all()
    np.testing.assert_allclose(part.reshape(-1)[[1, 2]], [12.0, 0.75], rtol=1e-7)


def test_rel_error_is_cs231n_formula():
    np.testing.assert_allclose(
        rel_error(np.array([1.0, 0.0, 1e-9]), np.array([1.1, 0.0, 0.0])), [0.1 / 2.1, 0.0, 0.1]
    )


def test_element_errors_use_the_array_scale_and_forgive_rounding():
    a = np.array([1.0, 1e-6, 0.5])
    n = np.array([1.0 + 1e-9, 2e-6, 0.5 + 3e-12])
    errors = element_errors(a, n, rounding=np.array([0.0, 0.0, 1e-11]), floor=1e-3)
    # 1e-9 / 2; 1e-6 against the floor 1e-3, not against its own size; 3e-12 is rounding
    np.testing.assert_allclose(errors, [1e-9 / (2 + 1e-9), 1e-3, 0.0], rtol=1e-6)


def test_sample_indices():
    r = np.random.default_rng(0)
    np.testing.assert_array_equal(gradient_check.sample_indices(10, None, r), np.arange(10))
    np.testing.assert_array_equal(gradient_check.sample_indices(10, 20, r), np.arange(10))
    picked = gradient_check.sample_indices(1000, 20, r)
    assert len(picked) == 20 and len(set(picked.tolist())) == 20 and (np.diff(picked) > 0).all()


# ---- found by trying the library as a student (issue 12 review) -------------------------------------
def bn_dropout_model():
    """Conv-BN-ReLU-Pool-Flatten-Dense-BN-Dropout-Dense(softmax), float64, seeded."""
    with tinycnn.use_floatx("float64"):
        return tinycnn.Sequential(
            [
                Conv2D(4, 3, input_shape=(8, 8, 1)),
                BatchNormalization(),
                ReLU(),
                MaxPooling2D(2),
                Flatten(),
                Dense(8),
                BatchNormalization(),
                Dropout(0.3),
                Dense(3, activation="softmax"),
            ],
            seed=0,
        )


@pytest.mark.parametrize("training", [False, True])
def test_a_model_with_batch_norm_and_dropout_passes_with_the_defaults(training):
    """BatchNormalization in training normalises over 4 samples: a strongly curved loss.
    Before: the model step h = 1e-4 left a truncation error (h^2 f''' / 6) of 2.7e-6 on
    dense/kernel: FAILED for correct code with training=True. h = 1e-5 makes it 100 times
    smaller (8e-7 at most here, conv2d/kernel), and the rounding it adds is excused by
    the error measure. (With h = 1e-4: 9e-5.)"""
    model = bn_dropout_model()
    x = normal((4, 8, 8, 1), 1)
    report = tinycnn.gradcheck(model, x, np.array([0, 1, 2, 0]), training=training)
    print(report)
    assert report.ok and report.max_rel_error < 1e-6, str(report)
    old = tinycnn.gradcheck(model, x, np.array([0, 1, 2, 0]), training=training, h=1e-4)
    assert old.ok == (not training)  # the old default step fails correct code in training
    assert report.h == gradient_check.SCALAR_H
    assert report.skipped == 0
    # a wrong gradient is still caught: the moving-average scaling of dgamma doubled
    bn = model.layers[1]
    right = type(bn)._backward

    def wrong(self, dy, input_grad):
        dx = right(self, dy, input_grad)
        self.grads["gamma"] = self.grads["gamma"] * 1.01
        return dx

    type(bn)._backward = wrong
    try:
        assert not tinycnn.gradcheck(model, x, np.array([0, 1, 2, 0]), training=training).ok
    finally:
        type(bn)._backward = right


def test_a_wrong_element_outside_the_sample_is_pointed_at():
    """Only the directional derivative sees an element outside the sample: the report
    says so, and how to find it (before: a worst element that agrees, nothing else)."""

    class OneWrong(Layer):
        def forward(self, x, training=False):
            return 2 * x

        def backward(self, dy):
            dx = 2 * dy
            dx[-1, -1, -1, -1] *= 1.5  # one element, (almost surely) not sampled
            return dx

    x = normal((8, 12, 12, 4), 0)
    report = tinycnn.gradcheck(OneWrong(), x, max_elements=50)
    text = str(report)
    print(text)
    assert not report.ok and report["x"].element_error == 0
    assert "x's 50 sampled elements agree" in text and "max_elements=None" in text
    assert text.splitlines()[1].split()[:5] == ["x", "FAILED", "max", "error", "0"]
    direction = f"whole-array direction check {report['x'].directional_error:.1e}"
    assert f"over 50 of 4608 elements (sampled); {direction}" in text
    full = tinycnn.gradcheck(OneWrong(), x, max_elements=None)
    assert full["x"].worst_index == (7, 11, 11, 3)


def test_a_kink_pattern_with_the_wrong_signature_says_how_to_write_it():
    class Abs(Layer):
        def forward(self, x, training=False):
            self.cache = x
            return abs(x)

        def backward(self, dy):
            return dy * get_array_module(dy).sign(self.cache)

        def kink_pattern(self, x):  # forgot y
            return x > 0

    with pytest.raises(TypeError, match=r"kink_pattern\(self, x, y\)"):
        tinycnn.gradcheck(Abs(), normal((2, 3)))

    Abs.kink_pattern = lambda self, x, y: 0
    with pytest.raises(TypeError, match="must return an array"):
        tinycnn.gradcheck(Abs(), normal((2, 3)))


# ---- gradcheck and a weight the forward pass replaces ------------------------------------------
class CountingScale(Layer):
    """y = x * scale + steps: ``steps`` (not trainable) counts the training forward passes,
    and the forward replaces the array (``self.params["steps"] = ... + 1``), as a student
    writes it, rather than updating it in place as BatchNormalization does."""

    def build(self, input_shape):
        self.add_weight("scale", (input_shape[-1],), initializer="ones")
        self.add_weight("steps", (1,), initializer="zeros", trainable=False)

    def forward(self, x, training=False):
        if training:
            self.params["steps"] = self.params["steps"] + 1.0
        self.cache = x
        return x * self.params["scale"] + self.params["steps"]

    def backward(self, dy):
        self.grads["scale"] = (dy * self.cache).reshape(-1, dy.shape[-1]).sum(axis=0)
        return dy * self.params["scale"]


def test_gradcheck_puts_back_a_weight_the_forward_replaced(float64):
    """mutant gc-no-rebind-non-trainable: restoring only the old array in place leaves the
    new one in params, so every evaluation sees one more step (y moves by 1 between the
    two sides of a central difference) and the layer ends with steps != 0."""
    layer = CountingScale()
    x = np.random.default_rng(0).standard_normal((3, 4))
    layer.build(x.shape[1:])
    report = tinycnn.gradcheck(layer, x, training=True)
    assert report.ok and report.max_rel_error < 1e-6, str(report)
    assert layer.params["steps"].tolist() == [0.0]  # the caller's layer as it was
