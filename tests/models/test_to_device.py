"""``model.to(name)`` before the model is built: the weights are created there when it is
(issue 12, item 6; it used to be a silent no-op). The device is simulated on the CPU, as
in tests/training/test_data_placement.py: ``Tagged`` arrays are NumPy arrays that
``tinycnn.backend`` files under another namespace, as it does CuPy's."""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn import backend
from tinycnn.layers import Conv2D, Dense, Flatten


def where(model):
    return {backend.backend_of(p) for layer in model.layers for p in layer.params.values()}


def test_an_unbuilt_model_moved_builds_its_weights_there(tagged):
    model = tinycnn.Sequential([Conv2D(2, 3, activation="relu"), Flatten(), Dense(3)], seed=0)
    assert model.to("tagged") is model
    model.build((6, 6, 1))
    assert where(model) == {"tagged"}
    model.add(Dense(2))  # a layer added later goes there too
    assert where(model) == {"tagged"}


def test_an_unbuilt_model_moved_trains_there_as_it_would_on_the_host(tagged):
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 6, 6, 1), dtype=np.float32), rng.integers(0, 3, 8)
    models = []
    for device in ("numpy", "tagged"):
        model = tinycnn.Sequential([Conv2D(2, 3), Flatten(), Dense(3)], seed=0).to(device)
        model.compile(optimizer="sgd")
        model.fit(backend.to_backend(x, device), backend.to_backend(y, device), verbose=0, seed=0)
        assert where(model) == {device}  # built from the data, on the device
        models.append(model)
    for host, device in zip(*(m.get_weights() for m in models), strict=True):
        np.testing.assert_allclose(device, host, rtol=1e-5, atol=1e-6)


def test_moving_to_an_unknown_backend_fails_at_once():
    with pytest.raises(ValueError, match="Unknown backend 'tpu'"):
        tinycnn.Sequential([Dense(2)]).to("tpu")
