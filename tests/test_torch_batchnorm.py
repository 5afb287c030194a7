"""BatchNormalization against PyTorch (BatchNorm2d / BatchNorm1d), in float64 (the Keras
cross-check is in tests/layers/test_batch_normalization.py).

Conventions that differ, numbers that must not:
* torch's momentum is the weight of the NEW value: Keras's momentum=0.99 is torch's 0.01.
* torch normalises with the biased batch variance, as Keras, but keeps the UNBIASED one,
  var * M / (M - 1), in running_var. So each step's increment of running_var, scaled by
  (M - 1) / M, must equal the increment of tinycnn's moving_variance.
* torch is channels-first: (N, H, W, C) -> (N, C, H, W) with permute(0, 3, 1, 2).
"""

from __future__ import annotations

import numpy as np
import pytest

from tinycnn.layers import BatchNormalization

torch = pytest.importorskip("torch", reason="the PyTorch cross-check needs torch (tinycnn[torch])")

pytestmark = pytest.mark.torch

MOMENTUM, EPS, STEPS = 0.99, 1e-3, 3


def batches(shape, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) * (k + 1.5) + k - 1 for k in range(STEPS)]


def torch_layout(x):
    """(N, H, W, C) -> (N, C, H, W); (N, D) stays."""
    return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x


def from_torch(t):
    a = t.detach().numpy()
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a


def twins(channels, ndim, seed=0):
    """A tinycnn layer and a torch layer with the same (not trivial) gamma and beta."""
    rng = np.random.default_rng(seed)
    gamma, beta = rng.uniform(0.5, 2.0, channels), rng.standard_normal(channels)
    ours = BatchNormalization()
    ours.build((channels,) if ndim == 2 else (3, 3, channels))
    ours.set_weights([gamma, beta, np.zeros(channels), np.ones(channels)])
    cls = torch.nn.BatchNorm2d if ndim == 4 else torch.nn.BatchNorm1d
    theirs = cls(channels, eps=EPS, momentum=1 - MOMENTUM, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(gamma))
        theirs.bias.copy_(torch.from_numpy(beta))
    return ours, theirs


@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (10, 7)])
def test_training_steps_match_torch(shape, float64):
    ours, theirs = twins(shape[-1], len(shape))
    count = int(np.prod(shape[:-1]))  # M
    rng = np.random.default_rng(1)
    moving_var, running_var = np.ones(shape[-1]), np.ones(shape[-1])
    for x in batches(shape):
        dy = rng.standard_normal(shape)
        y = ours.forward(x, training=True)
        dx = ours.backward(dy)
        xt = torch.tensor(torch_layout(x), requires_grad=True)
        theirs.train()
        yt = theirs(xt)
        yt.backward(torch.from_numpy(torch_layout(dy).copy()))
        np.testing.assert_allclose(y, from_torch(yt), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(dx, from_torch(xt.grad), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours.grads["gamma"], theirs.weight.grad.numpy(), rtol=1e-11)
        np.testing.assert_allclose(ours.grads["beta"], theirs.bias.grad.numpy(), rtol=1e-11)
        theirs.weight.grad = theirs.bias.grad = None
        np.testing.assert_allclose(ours.params["moving_mean"], theirs.running_mean, rtol=1e-13)
        # torch's increment is of the unbiased variance, tinycnn's (and Keras's) of the biased
        increment = theirs.running_var.numpy() - MOMENTUM * running_var
        np.testing.assert_allclose(
            ours.params["moving_variance"] - MOMENTUM * moving_var,
            increment * (count - 1) / count,
            rtol=1e-11,
        )
        moving_var = ours.params["moving_variance"].copy()
        running_var = theirs.running_var.numpy().copy()


@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (10, 7)])
def test_inference_matches_torch_eval(shape, float64):
    ours, theirs = twins(shape[-1], len(shape), seed=2)
    for x in batches(shape):  # move the moving averages away from 0 and 1 first
        ours.forward(x, training=True)
    with torch.no_grad():  # torch's running stats := tinycnn's (see the module doc)
        theirs.running_mean.copy_(torch.from_numpy(ours.params["moving_mean"]))
        theirs.running_var.copy_(torch.from_numpy(ours.params["moving_variance"]))
    theirs.eval()
    x = batches(shape, seed=5)[0]
    dy = np.random.default_rng(3).standard_normal(shape)
    y = ours.forward(x, training=False)
    dx = ours.backward(dy)
    xt = torch.tensor(torch_layout(x), requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(torch_layout(dy).copy()))
    np.testing.assert_allclose(y, from_torch(yt), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, from_torch(xt.grad), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ours.grads["gamma"], theirs.weight.grad.numpy(), rtol=1e-11)
    np.testing.assert_allclose(ours.grads["beta"], theirs.bias.grad.numpy(), rtol=1e-11)
