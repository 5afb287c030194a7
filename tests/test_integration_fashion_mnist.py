"""The issue's end-to-end check on the real Fashion-MNIST data.

One epoch of the seed network on the first 6,000 training images (Adam 1e-3,
batch 16, seed 0), then the full 10,000-image test set: at least 80% accuracy.

Why batch 16: one epoch on 6,000 images is only 94 steps at batch 64, which ends
at about 79.2% (PyTorch, started from tinycnn's initial weights and fed the same
batches, gives 79.15%: the recipe, not the library). At batch 16 the same epoch is
375 steps: 81.1%, 80.3% and 81.4% for seeds 0, 1, 2 (measured with this file's code).

Skipped when the data is absent: point ``TINYCNN_DATA`` at the folder with the
four IDX files, or put them in ``../shared/data/fashion-mnist`` next to the repository.
"""

from __future__ import annotations

import numpy as np
import pytest
from real_data import DATA, requires_real_data

import tinycnn
from tinycnn.datasets import fashion_mnist as fm
from tinycnn.preprocessing import prepare_images

pytestmark = [
    pytest.mark.slow,
    requires_real_data,
]

ISSUE_TARGET = 0.80


@pytest.fixture(scope="module")
def result():
    """Train once for the module: (test loss, test accuracy, history)."""
    (x_train, y_train), (x_test, y_test) = fm.load_data(DATA)
    x = prepare_images(x_train[:6000])
    y = y_train[:6000].astype(np.int64)
    with tinycnn.use_backend("numpy"):
        model = tinycnn.models.fashion_mnist_cnn(seed=0)
        model.compile(
            optimizer=tinycnn.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy"
        )
        history = model.fit(x, y, epochs=1, batch_size=16, seed=0, verbose=0)
        loss, accuracy = model.evaluate(
            prepare_images(x_test), y_test.astype(np.int64), batch_size=1000
        )
    print(
        f"\nFashion-MNIST, 1 epoch on 6,000 images: test accuracy {accuracy:.2%}, "
        f"test loss {loss:.4f} (train loss {history.history['loss'][0]:.4f})"
    )
    return loss, accuracy, history


def test_one_epoch_on_6000_images_reaches_80_percent(result):
    loss, accuracy, history = result
    assert history.history["loss"][0] < 1.0
    assert loss < 0.6
    assert accuracy >= ISSUE_TARGET, f"test accuracy {accuracy:.2%} < {ISSUE_TARGET:.0%}"
