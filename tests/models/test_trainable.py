"""``layer.trainable = False`` freezes a layer, as in Keras (issue 12, item 6): the
optimizer leaves its weights alone, ``summary()`` counts them as non-trainable, and the
setting is saved with the layer's config."""

from __future__ import annotations

import numpy as np
import pytest

import tinycnn
from tinycnn.layers import Conv2D, Dense, Flatten, from_config


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_frozen_layer_keeps_its_weights_in_fit_and_train_on_batch(optimizer):
    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    model.compile(optimizer=optimizer)
    frozen = model.layers[0]
    frozen.trainable = False
    before = [[p.copy() for p in layer.params.values()] for layer in model.layers]
    x, y = data()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    model.train_on_batch(x, y)
    for layer, weights in zip(model.layers, before, strict=True):
        for now, then in zip(layer.params.values(), weights, strict=True):
            assert np.array_equal(now, then) is (layer is frozen), layer.name
    assert not any(key.startswith("conv2d/") for key in model.optimizer.state)
    frozen.trainable = True  # and unfrozen, it trains again (no recompiling needed)
    model.train_on_batch(x, y)
    assert not np.array_equal(frozen.params["kernel"], before[0][0])


def test_summary_counts_the_frozen_weights_as_non_trainable():
    model = tinycnn.models.fashion_mnist_cnn(seed=0)
    model.layers[0].trainable = False  # 3*3*1*64 + 64 = 640 weights
    model.layers[5].trainable = False  # 1600*512 + 512 = 819,712
    lines = []
    model.summary(print_fn=lines.append)
    assert lines[-4:-1] == [
        "Total params: 862,410",
        "Trainable params: 42,058",
        "Non-trainable params: 820,352",
    ]


def test_trainable_is_saved_with_the_layer_config(tmp_path):
    model = tinycnn.Sequential([Conv2D(2, 3, input_shape=(6, 6, 1)), Flatten(), Dense(3)])
    model.layers[2].trainable = False
    assert model.get_config()["layers"][2]["config"]["trainable"] is False
    model.save(tmp_path / "m.npz")
    loaded = tinycnn.load_model(tmp_path / "m.npz")
    assert [layer.trainable for layer in loaded.layers] == [True, True, False]
    assert from_config("Dense", {"units": 2}).trainable is True  # older files: trainable
    with pytest.raises(ValueError, match="trainable must be True or False, got 'no'"):
        from_config("Dense", {"units": 2, "trainable": "no"})
