"""BatchNormalization (Keras semantics): numbers worked out by hand on a tiny batch, gradient
checks in training and inference, the moving averages over three steps, summary counts,
saving, a frozen layer (trainable=False), a Conv2D -> BN -> ReLU model that trains, and
the errors for bad arguments. Each numeric test runs on NumPy and (``gpu``) on CuPy."""

from __future__ import annotations

import math
import zipfile

import numpy as np
import pytest

# the guarded NumPy (tests/guarded_numpy.py; the fixture ``guarded`` is conftest.py's): NumPy
# that refuses direct numpy calls on its arrays, as CuPy does, so a GPU-only failure shows here
from guarded_numpy import GuardedArray, to_plain

import tinycnn
from tinycnn.layers import BatchNormalization, Conv2D, Dense, Flatten, MaxPooling2D, ReLU

EPS = 1e-3
# the tiny batch: 4 samples, 2 channels; channel 0 has mean 2.5 and (biased) variance
# (1.5^2 + 0.5^2 + 0.5^2 + 1.5^2) / 4 = 1.25, channel 1 mean 1 and variance 1
TINY = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 2.0], [4.0, 2.0]])


def numpy_of(array):
    return tinycnn.to_numpy(array)


def on_backend(array):
    return tinycnn.to_backend(np.asarray(array))


def test_tiny_batch_by_hand(float64, backend_name):
    bn = BatchNormalization()
    bn.build((2,))
    bn.set_weights([np.array([2.0, 0.5]), np.array([1.0, -1.0]), np.zeros(2), np.ones(2)])

    y = numpy_of(bn.forward(on_backend(TINY), training=True))
    xhat0 = np.array([-1.5, -0.5, 0.5, 1.5]) / math.sqrt(1.25 + EPS)
    xhat1 = np.array([-1.0, -1.0, 1.0, 1.0]) / math.sqrt(1.0 + EPS)
    np.testing.assert_allclose(y[:, 0], 2.0 * xhat0 + 1.0, rtol=1e-14)
    np.testing.assert_allclose(y[:, 1], 0.5 * xhat1 - 1.0, rtol=1e-14)
    # one step of the moving averages: 0.99 * old + 0.01 * batch (biased variance)
    gamma, beta, moving_mean, moving_var = bn.get_weights()
    np.testing.assert_allclose(moving_mean, [0.025, 0.01], rtol=1e-14)
    np.testing.assert_allclose(moving_var, [0.99 + 0.0125, 0.99 + 0.01], rtol=1e-14)
    np.testing.assert_array_equal(gamma, [2.0, 0.5])  # forward trains nothing else
    np.testing.assert_array_equal(beta, [1.0, -1.0])

    # training backward: in every channel dx sums to 0 (the mean absorbs a shift of x),
    # and sum(dx * xhat) = gamma / sigma * sum(dy * xhat) * eps / (var + eps): only epsilon
    # keeps the variance from absorbing a scaling of x as well
    dy = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [-3.0, 1.0]])
    dx = numpy_of(bn.backward(on_backend(dy)))
    xhat = np.stack([xhat0, xhat1], axis=1)
    np.testing.assert_allclose(dx.sum(axis=0), 0.0, atol=1e-14)
    s = (dy * xhat).sum(axis=0)
    var, gamma_ = np.array([1.25, 1.0]), np.array([2.0, 0.5])
    expected = gamma_ / np.sqrt(var + EPS) * s * EPS / (var + EPS)
    np.testing.assert_allclose((dx * xhat).sum(axis=0), expected, rtol=1e-10)
    np.testing.assert_allclose(numpy_of(bn.grads["gamma"]), (dy * xhat).sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(numpy_of(bn.grads["beta"]), [-2.0, 3.0], rtol=1e-14)
    # channel 0 by the formula: (gamma / sigma) / M * (M dy - sum dy - xhat sum(dy xhat))
    s0 = math.sqrt(1.25 + EPS)
    expected0 = (2.0 / s0) / 4 * (4 * dy[:, 0] + 2.0 - xhat0 * (dy[:, 0] * xhat0).sum())
    np.testing.assert_allclose(dx[:, 0], expected0, rtol=1e-13)
    np.testing.assert_array_equal(numpy_of(bn.grads["moving_mean"]), [0.0, 0.0])

    # inference: the moving averages, nothing updated, dx = gamma / sigma_moving * dy
    y = numpy_of(bn.forward(on_backend(TINY), training=False))
    np.testing.assert_allclose(
        y[:, 0], 2.0 * (TINY[:, 0] - 0.025) / math.sqrt(1.0025 + EPS) + 1.0, rtol=1e-14
    )
    np.testing.assert_allclose(
        y[:, 1], 0.5 * (TINY[:, 1] - 0.01) / math.sqrt(1.0 + EPS) - 1.0, rtol=1e-14
    )
    np.testing.assert_allclose(bn.get_weights()[2], [0.025, 0.01], rtol=1e-14)
    dx = numpy_of(bn.backward(on_backend(dy)))
    np.testing.assert_allclose(dx[:, 0], dy[:, 0] * 2.0 / math.sqrt(1.0025 + EPS), rtol=1e-14)


@pytest.mark.parametrize("shape", [(4, 5, 6, 3), (2, 12, 12, 8), (16, 7)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(("center", "scale"), [(True, True), (False, False)])
def test_gradcheck(shape, training, center, scale, float64, backend_name):
    rng = np.random.default_rng(len(shape))
    x = on_backend(rng.standard_normal(shape) * 2.0 + 0.5)
    layer = BatchNormalization(center=center, scale=scale, name="batch_normalization")
    layer.build(shape[1:])
    # inference with moving averages that are not 0 and 1, and a gamma that is not 1
    weights = [rng.uniform(0.5, 2.0, shape[-1]) for _ in layer.params]
    weights[-2] = rng.standard_normal(shape[-1])  # moving_mean
    layer.set_weights(weights)
    report = tinycnn.gradcheck(layer, x, training=training)
    names = ["x", *(["gamma"] if scale else []), *(["beta"] if center else [])]
    assert [r.name for r in report.results] == [*names, "moving_mean", "moving_variance"]
    assert report.ok and report.max_rel_error < 1e-6, str(report)


def test_gradcheck_catches_a_wrong_backward(float64):
    """The same check fails a backward that forgets the variance's share of dx."""

    class Forgetful(BatchNormalization):
        def _backward(self, dy, input_grad):
            xhat, inv_sigma, _ = self.cache
            super()._backward(dy, input_grad)
            count = dy.shape[0]
            return inv_sigma / count * (count * dy - dy.sum(axis=0))

    x = np.random.default_rng(0).standard_normal((8, 3))
    report = tinycnn.gradcheck(Forgetful(), x, training=True)
    assert not report.ok and report.results[0].max_rel_error > 1e-2


def test_gradcheck_leaves_the_four_weights_as_they_were(float64):
    """A float64 layer is checked in place: the thousands of training forward passes used
    to move its moving averages. Now all four weights end bit-identical, the check still
    passes, and it still fails the wrong backward above (which forgets a share of dx)."""

    class Forgetful(BatchNormalization):
        def _backward(self, dy, input_grad):
            super()._backward(dy, input_grad)
            _, inv_sigma, _ = self.cache
            count = dy.size // dy.shape[-1]
            return inv_sigma / count * (count * dy - dy.sum(axis=(0, 1, 2)))

    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 3, 5)) * 1.5 + 0.5
    weights = [rng.uniform(0.5, 2.0, 5) for _ in range(4)]
    for layer, passes in ((BatchNormalization(), True), (Forgetful(), False)):
        layer.build((3, 3, 5))
        layer.set_weights(weights)
        report = tinycnn.gradcheck(layer, x, training=True)
        assert report.ok is passes, str(report)
        assert passes or report["x"].max_rel_error > 1e-2
        for before, after in zip(weights, layer.get_weights(), strict=True):
            assert np.array_equal(before, after)  # before: moving_mean and _variance moved


def test_moving_averages_over_three_steps(float64, backend_name):
    rng = np.random.default_rng(3)
    batches = [rng.standard_normal((6, 3, 3, 4)) * (k + 1) + k for k in range(3)]
    bn = BatchNormalization(momentum=0.9)
    moving_mean, moving_var = np.zeros(4), np.ones(4)
    for x in batches:
        bn.forward(on_backend(x), training=True)
        mean = x.mean(axis=(0, 1, 2))
        var = ((x - mean) ** 2).mean(axis=(0, 1, 2))  # biased, as Keras (not / (M - 1))
        moving_mean = 0.9 * moving_mean + 0.1 * mean
        moving_var = 0.9 * moving_var + 0.1 * var
        np.testing.assert_allclose(numpy_of(bn.params["moving_mean"]), moving_mean, rtol=1e-13)
        np.testing.assert_allclose(numpy_of(bn.params["moving_variance"]), moving_var, rtol=1e-13)
    unbiased = 0.9 * moving_var + 0.1 * batches[-1].var(axis=(0, 1, 2), ddof=1)
    assert np.abs(numpy_of(bn.params["moving_variance"]) - unbiased).max() > 1e-3
    # inference neither uses nor moves the batch statistics
    before = bn.get_weights()
    y = numpy_of(bn.forward(on_backend(batches[0]), training=False))
    np.testing.assert_allclose(y, (batches[0] - moving_mean) / np.sqrt(moving_var + EPS), 1e-13)
    for a, b in zip(before, bn.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_weights_order_and_summary_counts():
    bn = BatchNormalization(input_shape=(5, 5, 64))
    model = tinycnn.Sequential([Conv2D(64, 3, input_shape=(8, 8, 3)), bn])
    lines = []
    model.summary(print_fn=lines.append)
    assert "batch_normalization (BatchNo (None, 6, 6, 64)          256" in lines
    assert lines[-4:-1] == [
        "Total params: 2,048",
        "Trainable params: 1,920",
        "Non-trainable params: 128",
    ]
    assert list(bn.params) == ["gamma", "beta", "moving_mean", "moving_variance"]
    gamma, beta, moving_mean, moving_var = bn.get_weights()
    assert [w.shape for w in bn.get_weights()] == [(64,)] * 4
    assert (gamma == 1).all() and (beta == 0).all()
    assert (moving_mean == 0).all() and (moving_var == 1).all()
    assert list(bn.trainable_params()) == ["gamma", "beta"]

    bn.trainable = False  # a frozen layer: all four are non-trainable, as in Keras
    lines.clear()
    model.summary(print_fn=lines.append)
    assert lines[-3:-1] == ["Trainable params: 1,792", "Non-trainable params: 256"]

    plain = BatchNormalization(center=False, scale=False)
    plain.build((7,))
    assert list(plain.params) == ["moving_mean", "moving_variance"]
    assert plain.count_params() == 14 and plain.count_trainable_params() == 0


def bn_model(seed=0, **bn_kwargs):
    return tinycnn.Sequential(
        [
            Conv2D(4, 3, input_shape=(8, 8, 1)),
            BatchNormalization(**bn_kwargs),
            ReLU(),
            MaxPooling2D(2),
            Flatten(),
            Dense(3),
        ],
        seed=seed,
    )


def toy_problem(n=48, seed=0):
    """Class = which third of the image is brightest: learnable by a small conv net."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = rng.random((n, 8, 8, 1)).astype(np.float32)
    for k, label in enumerate(labels):
        x[k, :, 3 * label : 3 * label + 2] += 1.0
    return x, labels


def test_conv_bn_relu_trains_and_round_trips_through_a_file(tmp_path, backend_name):
    x, labels = toy_problem()
    model = bn_model()
    model.compile(optimizer=tinycnn.optimizers.Adam(0.02))
    x_b = on_backend(x)
    loss_before = model.evaluate(x_b, labels, return_dict=True)["loss"]
    history = model.fit(x_b, labels, epochs=8, batch_size=8, verbose=0, seed=0)
    loss_after = model.evaluate(x_b, labels, return_dict=True)["loss"]
    assert loss_after < 0.5 * loss_before, history.history["loss"]
    bn = model.layers[1]
    # 8 epochs x 6 steps moved the moving averages away from their start
    assert np.abs(numpy_of(bn.params["moving_mean"])).max() > 0.05
    # Adam keeps state for gamma and beta, never for the moving averages
    state = model.optimizer.get_state()
    assert "batch_normalization/gamma/m" in state
    assert not any("moving" in key for key in state)

    path = tmp_path / "bn.npz"
    model.save(path)
    saved = bn.get_weights()
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
    assert "weights/batch_normalization/moving_variance.npy" in names
    assert not any(name.startswith("optimizer/batch_normalization/moving") for name in names)
    loaded = tinycnn.load_model(path)
    assert loaded.layers[1].get_config() == bn.get_config()
    for a, b in zip(loaded.layers[1].get_weights(), bn.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    where = tinycnn.backend.backend_of(loaded.layers[0].params["kernel"])
    np.testing.assert_array_equal(
        numpy_of(loaded.predict(tinycnn.to_backend(x, where))), numpy_of(model.predict(x_b))
    )
    # and it trains on from the file exactly as the original does
    loaded.fit(tinycnn.to_backend(x, where), labels, epochs=1, batch_size=8, verbose=0, seed=1)
    model.fit(x_b, labels, epochs=1, batch_size=8, verbose=0, seed=1)
    for a, b in zip(loaded.layers[1].get_weights(), bn.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    fresh = bn_model(seed=5)
    fresh.build((8, 8, 1))
    fresh.load_weights(path)
    for a, b in zip(fresh.layers[1].get_weights(), saved, strict=True):
        np.testing.assert_array_equal(a, b)


def test_frozen_layer_runs_in_inference_mode_and_keeps_every_weight(backend_name):
    x, labels = toy_problem()
    model = bn_model(momentum=0.5)
    model.build((8, 8, 1))
    bn = model.layers[1]
    # moving averages far from the batch statistics, so the two modes differ a lot
    bn.set_weights([np.full(4, 1.5), np.full(4, 0.2), np.full(4, -1.0), np.full(4, 4.0)])
    bn.trainable = False
    conv_out = model.layers[0].forward(on_backend(x))
    frozen_train = numpy_of(bn.forward(conv_out, training=True))
    inference = numpy_of(bn.forward(conv_out, training=False))
    np.testing.assert_array_equal(frozen_train, inference)
    bn.trainable = True
    assert np.abs(numpy_of(bn.forward(conv_out, training=True)) - inference).max() > 0.1
    bn.set_weights([np.full(4, 1.5), np.full(4, 0.2), np.full(4, -1.0), np.full(4, 4.0)])

    bn.trainable = False
    before = bn.get_weights()
    kernel_before = model.layers[0].get_weights()[0]
    model.compile(optimizer=tinycnn.optimizers.Adam(0.02))
    model.fit(on_backend(x), labels, epochs=2, batch_size=8, verbose=0, seed=0)
    for a, b in zip(before, bn.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # gamma, beta AND the moving averages
    assert np.abs(model.layers[0].get_weights()[0] - kernel_before).max() > 1e-3
    assert not any(key.startswith("batch_normalization") for key in model.optimizer.get_state())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"axis": 0}, "axis=0 is the batch axis"),
        ({"axis": [1, 2]}, r"axis must be an int \(the channel axis, -1\), got \[1, 2\]"),
        ({"axis": True}, "axis must be an int"),
        ({"momentum": 1.5}, r"momentum must be in \[0, 1\], got 1.5"),
        ({"momentum": float("nan")}, "momentum must be in"),
        ({"epsilon": 0}, r"epsilon must be a positive number \(1e-3\), got 0"),
        ({"epsilon": "1e-3"}, "epsilon must be a positive number"),
        ({"center": "yes"}, "center must be True or False, got 'yes'"),
        ({"scale": None}, "scale must be True or False"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchNormalization(**kwargs)


def test_bad_axes_and_shapes():
    x = np.zeros((2, 4, 4, 3), dtype="float32")
    with pytest.raises(ValueError, match=r"axis=1 is axis 1 of rank-4 inputs.*axis=-1"):
        BatchNormalization(axis=1).forward(x)
    with pytest.raises(ValueError, match=r"axis=-2 is axis 2 of rank-4"):
        BatchNormalization(axis=-2).forward(x)
    assert BatchNormalization(axis=3).forward(x).shape == x.shape  # Keras's axis=3 is fine
    with pytest.raises(ValueError, match=r"axis=3 is axis 3 of rank-2"):
        BatchNormalization(axis=3).forward(np.zeros((2, 5), dtype="float32"))
    with pytest.raises(ValueError, match=r"with a channel axis; got \(N,\)"):
        BatchNormalization().forward(np.zeros(5, dtype="float32"))
    bn = BatchNormalization(name="bn")
    bn.forward(x)
    with pytest.raises(ValueError, match=r"layer 'bn': built for inputs \(N, \*\(4, 4, 3\)\)"):
        bn.forward(np.zeros((2, 4, 4, 5), dtype="float32"))
    with pytest.raises(ValueError, match="with 3 channels"):
        bn.forward(np.zeros((2, 3), dtype="float32"))
    assert bn.forward(np.zeros((1, 6, 2, 3), dtype="float32")).shape == (1, 6, 2, 3)
    with pytest.raises(ValueError, match="layer 'batch_normalization': axis=2 is axis 2 of rank-2"):
        tinycnn.Sequential([Dense(4, input_shape=(3,)), BatchNormalization(axis=2)])


def test_config_round_trip():
    bn = BatchNormalization(axis=3, momentum=0.9, epsilon=1e-5, center=False, name="bn")
    bn.trainable = False
    config = bn.get_config()
    assert config == {
        "name": "bn",
        "trainable": False,
        "axis": 3,
        "momentum": 0.9,
        "epsilon": 1e-5,
        "center": False,
        "scale": True,
    }
    again = tinycnn.layers.from_config("BatchNormalization", config)
    assert again.get_config() == config and again.non_trainable == bn.non_trainable


@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (10, 7)])
def test_matches_keras_in_training_and_inference(shape, float64):
    """Keras (TensorFlow backend) keeps the biased batch variance in moving_variance, as
    tinycnn does (keras/src/layers/normalization/batch_normalization.py, ``call``)."""
    keras = pytest.importorskip("keras", reason="the Keras cross-check needs keras + tensorflow")
    theirs = keras.layers.BatchNormalization(dtype="float64")  # momentum 0.99, epsilon 1e-3
    ours = BatchNormalization()
    rng = np.random.default_rng(0)
    for k in range(3):
        x = rng.standard_normal(shape) * (k + 1.5) + k - 1
        y_keras = np.asarray(theirs(x, training=True))
        np.testing.assert_allclose(ours.forward(x, training=True), y_keras, atol=1e-13)
    for mine, keras_weight in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(mine, keras_weight, rtol=1e-13, atol=1e-15)
    x = rng.standard_normal(shape) + 0.5
    y_keras = np.asarray(theirs(x, training=False))
    np.testing.assert_allclose(ours.forward(x, training=False), y_keras, atol=1e-13)
    # Keras: a frozen layer runs in inference mode, even with training=True
    theirs.trainable = ours.trainable = False
    y_keras = np.asarray(theirs(x, training=True))
    np.testing.assert_allclose(ours.forward(x, training=True), y_keras, atol=1e-13)
    for mine, keras_weight in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(mine, keras_weight, rtol=1e-13, atol=1e-15)


@pytest.mark.usefixtures("guarded")
def test_training_step_on_a_strict_namespace(float64):
    """Forward, backward and an Adam step on arrays that refuse direct NumPy calls, as CuPy's
    do: the same numbers as on plain NumPy."""
    x, labels = toy_problem(n=8)
    x = x.astype("float64")
    results = []
    for name in ("numpy", "guarded"):
        model = bn_model(seed=3)
        model.build((8, 8, 1))
        model.to(name)
        model.compile(optimizer=tinycnn.optimizers.Adam(0.01))
        for _ in range(2):
            model.train_on_batch(tinycnn.to_backend(x, name), labels)
        bn = model.layers[1]
        assert all(isinstance(p, GuardedArray) == (name == "guarded") for p in bn.params.values())
        logits = model.forward(tinycnn.to_backend(x, name))  # inference: the moving averages
        results.append([to_plain(w) for w in (*bn.params.values(), logits)])
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# ---- BatchNormalization(scale=False): beta without gamma --------------------------------------
@pytest.mark.parametrize("training", [True, False])
def test_batch_normalization_without_scale_is_gamma_one(training, float64):
    """mutant bn-no-scale-aliases-xhat: with ``scale=False`` the output must not be the
    cached xhat itself, or ``y += beta`` shifts what backward reads. The layer is then
    the same as one with gamma = 1: forward, dL/dx and dL/dbeta. (The other gradient
    checks in this file build center and scale together, and start beta at 0, where the
    shift is invisible.)"""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 3, 5)) * 2.0 + 0.5
    dy = rng.standard_normal(x.shape)
    beta, moving_mean = rng.standard_normal(5), rng.standard_normal(5)
    moving_variance = rng.uniform(0.5, 2.0, 5)
    plain, reference = BatchNormalization(scale=False), BatchNormalization()
    plain.build(x.shape[1:])
    reference.build(x.shape[1:])
    plain.set_weights([beta, moving_mean, moving_variance])
    reference.set_weights([np.ones(5), beta, moving_mean, moving_variance])
    np.testing.assert_allclose(
        plain.forward(x, training), reference.forward(x, training), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(plain.backward(dy), reference.backward(dy), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(plain.grads["beta"], reference.grads["beta"], rtol=1e-12)
    report = tinycnn.gradcheck(plain, x, training=training)
    assert report.ok and report.max_rel_error < 1e-6, str(report)
