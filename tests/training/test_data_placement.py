"""fit copies its data to the model's device once, and never back.

The labels used to be checked on the host: a GPU model's labels went GPU -> CPU (to be
checked) -> GPU (to be trained on) at every fit, and the validation labels at every
epoch. Here a "device" is simulated on the CPU: ``Tagged`` arrays are NumPy arrays that
``tinycnn.backend`` files under another namespace, as it does CuPy's.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn import backend
from tinycnn.layers import Conv2D, Dense, Flatten
from tinycnn.optimizers import SGD


@pytest.fixture
def host_copies(monkeypatch):
    """Every array that tinycnn copies to the host (``backend.to_numpy``) during the test."""
    copied, to_numpy = [], backend.to_numpy

    def spy(array):
        copied.append(array)
        return to_numpy(array)

    monkeypatch.setattr(backend, "to_numpy", spy)
    return copied


def test_labels_on_the_device_stay_there(tagged, host_copies):
    rng = np.random.default_rng(0)
    model = tinycnn.Sequential(
        [Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1)), Flatten(), Dense(3)], seed=0
    ).to("tagged")
    model.compile(optimizer=SGD(0.1), loss="sparse_categorical_crossentropy")
    x = backend.to_backend(rng.random((24, 6, 6, 1), dtype=np.float32), "tagged")
    y = backend.to_backend(rng.integers(0, 3, 24), "tagged")
    x_val = backend.to_backend(rng.random((6, 6, 6, 1), dtype=np.float32), "tagged")
    y_val = backend.to_backend(rng.integers(0, 3, 6), "tagged")
    host_copies.clear()

    history = model.fit(
        x, y, epochs=3, batch_size=8, validation_data=(x_val, y_val), verbose=0, seed=0
    )

    assert len(history.history["val_loss"]) == 3  # it trained, on the simulated device
    assert backend.backend_of(model.layers[0].params["kernel"]) == "tagged"
    labels = [a for a in host_copies if np.shares_memory(a, y) or np.shares_memory(a, y_val)]
    assert labels == []
