"""Softmax cross-entropy: forward against log-sum-exp, gradient p - onehot, gradient check."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinycnn
from tinycnn import losses
from tinycnn.losses import SoftmaxCrossEntropy


def reference_loss(logits, labels):
    """mean_n (logsumexp(z_n) - z_n[t_n]), computed sample by sample with math.fsum."""
    total = 0.0
    for z, t in zip(logits.tolist(), labels.tolist(), strict=True):
        m = max(z)
        total += m + math.log(math.fsum(math.exp(v - m) for v in z)) - z[t]
    return total / len(labels)


@pytest.mark.parametrize(("n", "c"), [(1, 2), (5, 10), (16, 3)])
def test_forward_matches_reference(n, c, float64, backend_name):
    r = np.random.default_rng(n + c)
    logits = r.standard_normal((n, c)) * 3
    labels = r.integers(0, c, n)
    loss = SoftmaxCrossEntropy().forward(tinycnn.to_backend(logits), tinycnn.to_backend(labels))
    assert float(loss) == pytest.approx(reference_loss(logits, labels), rel=1e-13)


def test_known_values():
    # uniform logits over 4 classes: loss = log 4 whatever the label
    loss = SoftmaxCrossEntropy().forward(np.zeros((3, 4)), np.array([0, 1, 3]))
    assert float(loss) == pytest.approx(math.log(4), rel=1e-15)
    # logits (0, log 3): p = (1/4, 3/4)
    loss = SoftmaxCrossEntropy().forward(np.array([[0.0, math.log(3)]]), np.array([1]))
    assert float(loss) == pytest.approx(-math.log(0.75), rel=1e-14)


def test_large_logits_do_not_overflow():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 999.0]])
    fn = SoftmaxCrossEntropy()
    loss = float(fn.forward(logits, np.array([0, 2])))
    # sample 0: ~0; sample 1: logsumexp(1000, 999) - 999 = 1 + log(1 + e^-1)
    assert loss == pytest.approx((0.0 + 1.0 + math.log1p(math.exp(-1.0))) / 2, rel=1e-12)
    assert np.isfinite(fn.backward()).all()


def test_float32_loss_stays_float32():
    loss = SoftmaxCrossEntropy().forward(np.zeros((2, 3), dtype="float32"), np.array([0, 1]))
    assert loss.dtype == np.float32


def test_backward_is_p_minus_onehot_over_n(float64, backend_name):
    r = np.random.default_rng(1)
    logits = r.standard_normal((4, 5))
    labels = np.array([4, 0, 2, 2])
    fn = SoftmaxCrossEntropy()
    fn.forward(tinycnn.to_backend(logits), tinycnn.to_backend(labels))
    grad = tinycnn.to_numpy(fn.backward())
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    onehot = np.eye(5)[labels]
    np.testing.assert_allclose(grad, (p - onehot) / 4, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-16)  # each row sums to 0


def test_backward_does_not_change_between_calls():
    fn = SoftmaxCrossEntropy()
    fn.forward(np.array([[1.0, 2.0]]), np.array([0]))
    np.testing.assert_array_equal(fn.backward(), fn.backward())


def test_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match=r"SoftmaxCrossEntropy: backward\(\) called before"):
        SoftmaxCrossEntropy().backward()


@pytest.mark.parametrize(("n", "c"), [(1, 2), (6, 10), (3, 4)])
def test_gradcheck(n, c, float64, backend_name):
    r = np.random.default_rng(10 * n + c)
    logits = tinycnn.to_backend(r.standard_normal((n, c)))
    labels = tinycnn.to_backend(r.integers(0, c, n))
    report = tinycnn.gradcheck(SoftmaxCrossEntropy(), logits, labels)
    print(report)
    assert report.max_rel_error < 1e-6, str(report)


@pytest.mark.parametrize("name", ["sparse_categorical_crossentropy", "softmax_cross_entropy"])
def test_get_by_name(name):
    fn = losses.get(name)
    assert isinstance(fn, SoftmaxCrossEntropy)
    assert fn.get_config() == {"name": "sparse_categorical_crossentropy"}


def test_get_passes_objects_through_and_rejects_the_rest():
    fn = SoftmaxCrossEntropy()
    assert losses.get(fn) is fn
    with pytest.raises(ValueError, match=r"Unknown loss 'mse': expected one of"):
        losses.get("mse")
    with pytest.raises(TypeError, match=r"A loss needs forward\(\) and backward\(\); got int"):
        losses.get(3)
