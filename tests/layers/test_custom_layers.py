"""Custom layers the way the docs teach them (issue 12, item 3): a subclass of Layer
writes ``forward(x, training=False)`` and ``backward(dy)``, and, with weights,
``build(input_shape)`` with ``add_weight``; it then works wherever a built-in layer
does: Sequential, summary(), fit, gradcheck, save and load_model(custom_objects).

Also the kinks of ``leaky_relu`` in gradcheck (issue 12, item 2's leftover)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tinycnn
from tinycnn import initializers
from tinycnn.backend import get_array_module
from tinycnn.gradient_check import kink_pattern
from tinycnn.layers import Activation, Conv2D, Dense, Flatten, Layer, MaxPooling2D, activations
from tinycnn.saving import ModelFileError


# ---- the students' layers (as docs/custom_layers.md writes them) ----------------------------------
class LeakyReLU(Layer):
    """y = x where x > 0, alpha * x elsewhere; no weights."""

    def __init__(self, alpha=0.1, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    def forward(self, x, training=False):
        self.cache = x
        return get_array_module(x).where(x > 0, x, self.alpha * x)

    def backward(self, dy):
        x = self.cache
        return get_array_module(dy).where(x > 0, dy, self.alpha * dy)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class WrongLeakyReLU(LeakyReLU):
    """The classic slip: the slope of the negative part doubled in backward."""

    def backward(self, dy):
        x = self.cache
        return get_array_module(dy).where(x > 0, dy, 2 * self.alpha * dy)


class Scale(Layer):
    """y = x * scale + shift, per channel (the last axis); ``shift`` is never trained."""

    def build(self, input_shape):
        channels = input_shape[-1]
        self.add_weight("scale", (channels,), initializer="ones")
        self.add_weight("shift", (channels,), initializer="zeros", trainable=False)

    def forward(self, x, training=False):
        self.cache = x
        return x * self.params["scale"] + self.params["shift"]

    def backward(self, dy):
        x = self.cache
        channels = x.shape[-1]
        self.grads["scale"] = (dy * x).reshape(-1, channels).sum(axis=0)
        return dy * self.params["scale"]


class StudentDense(Layer):
    """y = x @ kernel + bias, written by a student."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.add_weight("kernel", (input_shape[-1], self.units))  # glorot_uniform
        self.add_weight("bias", (self.units,), initializer="zeros")

    def forward(self, x, training=False):
        self.cache = x
        return x @ self.params["kernel"] + self.params["bias"]

    def backward(self, dy):
        x = self.cache
        self.grads["kernel"] = x.T @ dy
        self.grads["bias"] = dy.sum(axis=0)
        return dy @ self.params["kernel"].T

    def get_config(self):
        return {**super().get_config(), "units": self.units}


CUSTOM = {"LeakyReLU": LeakyReLU, "Scale": Scale, "StudentDense": StudentDense}


def custom_model(seed=0):
    return tinycnn.Sequential(
        [
            Conv2D(4, 3, input_shape=(8, 8, 1)),
            LeakyReLU(alpha=0.2),
            Scale(),
            MaxPooling2D(2),
            Flatten(),
            StudentDense(10),
        ],
        seed=seed,
    )


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, n)


# ---- in a model ------------------------------------------------------------------------------------
def test_summary_counts_and_shapes_of_custom_layers():
    lines = []
    custom_model().summary(print_fn=lines.append)
    table = "\n".join(lines)
    assert "leaky_re_lu (LeakyReLU)      (None, 6, 6, 4)           0" in table
    assert "scale (Scale)                (None, 6, 6, 4)           8" in table
    assert "student_dense (StudentDense) (None, 10)                370" in table
    # 40 + 8 + 370; the 4 shifts are non-trainable
    assert lines[-4:-1] == [
        "Total params: 418",
        "Trainable params: 414",
        "Non-trainable params: 4",
    ]


def test_the_same_seed_gives_the_same_weights_from_the_models_stream():
    one, two, other = custom_model(seed=0), custom_model(seed=0), custom_model(seed=1)
    for a, b in zip(one.get_weights(), two.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(one.layers[-1].params["kernel"], other.layers[-1].params["kernel"])

    # add_weight draws from the model's stream in order: the student's Dense gets exactly
    # the weights a built-in Dense gets in its place
    def two_dense(last):
        return tinycnn.Sequential([Dense(7, input_shape=(5,)), last], seed=3).layers[-1]

    student, builtin = two_dense(StudentDense(4)), two_dense(Dense(4))
    assert np.array_equal(student.params["kernel"], builtin.params["kernel"])
    assert one.layers[2].get_weights()[0].tolist() == [1.0] * 4  # "ones"
    assert one.layers[-1].params["kernel"].dtype == np.float32


def test_fit_trains_the_custom_weights_but_not_the_non_trainable_ones():
    model = custom_model()
    model.compile(optimizer="adam")
    before = model.get_weights()
    x, y = data()
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=0)
    after = model.get_weights()
    names = [f"{layer.name}/{key}" for layer in model.layers for key in layer.params]
    changed = {n: not np.array_equal(a, b) for n, a, b in zip(names, before, after, strict=True)}
    assert changed == {
        "conv2d/kernel": True,
        "conv2d/bias": True,
        "scale/scale": True,
        "scale/shift": False,
        "student_dense/kernel": True,
        "student_dense/bias": True,
    }
    assert "scale/shift" not in model.optimizer.state
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_save_and_load_with_custom_objects(tmp_path):
    model = custom_model()
    model.compile(optimizer="adam")
    x, y = data()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    model.layers[2].params["shift"][...] = [0.5, -0.5, 0.25, 0.0]  # saved too
    model.save(tmp_path / "m.npz")
    loaded = tinycnn.load_model(tmp_path / "m.npz", custom_objects=CUSTOM)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert loaded.layers[1].alpha == 0.2 and loaded.layers[-1].units == 10
    assert loaded.layers[2].non_trainable == {"shift"}
    assert np.array_equal(loaded.predict(x), model.predict(x))
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        assert np.array_equal(a, b)
    # and the optimizer state came back: one more step is the same step
    assert loaded.train_on_batch(x[:8], y[:8]) == model.train_on_batch(x[:8], y[:8])
    assert np.array_equal(loaded.predict(x), model.predict(x))


def test_load_without_custom_objects_says_to_pass_them(tmp_path):
    custom_model().save(tmp_path / "m.npz")
    with pytest.raises(ModelFileError, match=r"custom_objects=\{'LeakyReLU': LeakyReLU\}"):
        tinycnn.load_model(tmp_path / "m.npz")
    with pytest.raises(TypeError, match="must be a Layer subclass"):
        tinycnn.load_model(tmp_path / "m.npz", custom_objects={"LeakyReLU": LeakyReLU()})


def test_a_float64_file_loads_exactly_with_a_custom_layer(tmp_path):
    with tinycnn.use_floatx("float64"):
        model = custom_model()
    model.save(tmp_path / "m.npz")
    loaded = tinycnn.load_model(tmp_path / "m.npz", custom_objects=CUSTOM)  # floatx: float32
    assert loaded.layers[-1].params["kernel"].dtype == np.float64
    assert np.array_equal(loaded.layers[-1].params["kernel"], model.layers[-1].params["kernel"])


class NoGetConfig(Layer):
    """LeakyReLU as a student writes it first: an argument, no get_config."""

    def __init__(self, alpha=0.1, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha

    forward, backward = LeakyReLU.forward, LeakyReLU.backward


def test_a_layer_without_get_config_saves_its_constructor_arguments(tmp_path):
    """Before: a warning at save, then load_model rebuilt NoGetConfig(alpha=0.1) and
    predicted other numbers (0.24 apart here). Now, as in Keras 3, the arguments the
    constructor was called with (plain values) are in the base get_config."""
    model = tinycnn.Sequential([Dense(4, input_shape=(5,)), NoGetConfig(0.3), Dense(3)], seed=0)
    x = np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.save(tmp_path / "m.npz")
    assert model.layers[1].get_config() == {
        "alpha": 0.3,
        "name": "no_get_config",
        "trainable": True,
    }
    loaded = tinycnn.load_model(tmp_path / "m.npz", custom_objects={"NoGetConfig": NoGetConfig})
    assert loaded.layers[1].alpha == 0.3
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    # a layer's own get_config wins over what the constructor was given
    assert LeakyReLU(alpha=np.float64(0.5)).get_config()["alpha"] == 0.5
    assert Dense(3).get_config() == Dense(3, input_shape=(4,)).get_config()  # built-ins: as before


def test_a_get_config_with_an_array_names_the_layer_at_save(tmp_path):
    class ArrayConfig(Layer):
        def forward(self, x, training=False):
            return x

        def backward(self, dy):
            return dy

        def get_config(self):
            return {**super().get_config(), "weights": np.ones(2)}

    model = tinycnn.Sequential([Flatten(input_shape=(2, 2)), ArrayConfig(name="odd")], seed=0)
    with pytest.raises(TypeError, match=r"Cannot save layer 'odd': its get_config\(\) must hold"):
        model.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_a_forgotten_get_config_warns_at_save_and_a_bad_init_is_explained(tmp_path):
    class Forgetful(LeakyReLU):
        def __init__(self, alpha=None, **kwargs):  # given an array: not saved by itself
            super().__init__(alpha, **kwargs)

        def get_config(self):
            return Layer.get_config(self)  # alpha missing

    model = tinycnn.Sequential([Forgetful(alpha=np.full(1, 0.3), input_shape=(4,))])
    with pytest.warns(UserWarning, match=r"does not return \['alpha'\]"):
        model.save(tmp_path / "m.npz")

    class NoKwargs(Layer):
        def __init__(self):
            super().__init__()

        def forward(self, x, training=False):
            return x

    model = tinycnn.Sequential([NoKwargs()])
    model.build((3,))
    model.save(tmp_path / "n.npz")
    with pytest.raises(ModelFileError, match=r"accept \*\*kwargs"):
        tinycnn.load_model(tmp_path / "n.npz", custom_objects={"NoKwargs": NoKwargs})


def test_layer_by_layer_backward_equals_the_models_and_stale_caches_raise():
    model = custom_model()
    x, _ = data(4)
    logits = model.forward(x, training=True)
    g = np.random.default_rng(1).standard_normal(logits.shape).astype(np.float32)
    model.backward(g)
    expected = [g.copy() for layer in model.layers for g in layer.grads.values() if g is not None]
    model.forward(x, training=True)
    grad = g
    for layer in reversed(model.layers):
        grad = layer.backward(grad)
    got = [g for layer in model.layers for g in layer.grads.values() if g is not None]
    assert len(got) == len(expected) == 5
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    model.forward(x, training=True)
    model.layers[2].forward(model.layers[1].cache)  # Scale run on its own since
    with pytest.raises(RuntimeError, match="layer 'scale' holds the cache"):
        model.backward(g)


def test_activations_and_a_forward_without_training_argument():
    class Double(Layer):
        def forward(self, x):  # no training argument: accepted
            return 2 * x

        def backward(self, dy):
            return 2 * dy

    model = tinycnn.Sequential([Flatten(input_shape=(3, 2)), Double(), Dense(2)], seed=0)
    x = np.ones((5, 3, 2), np.float32)
    maps = model.activations(x)
    assert list(maps) == ["flatten", "double", "dense"]
    assert np.array_equal(maps["double"], 2 * np.ones((5, 6)))
    assert model.output_shapes() == [(6,), (6,), (2,)]


# ---- gradcheck --------------------------------------------------------------------------------------
def test_default_gradcheck_passes_correct_custom_layers_and_fails_a_wrong_slope():
    x = np.random.default_rng(0).standard_normal((8, 12, 12, 4))
    assert tinycnn.gradcheck(LeakyReLU(), x).ok
    assert tinycnn.gradcheck(Scale(), x).ok
    assert tinycnn.gradcheck(StudentDense(5), x.reshape(8, -1)[:, :30]).ok
    report = tinycnn.gradcheck(WrongLeakyReLU(), x)
    assert report.verdict == "FAILED" and report["x"].max_rel_error > 0.1


def test_default_gradcheck_of_a_model_with_custom_layers():
    x, y = data(2)
    report = tinycnn.gradcheck(custom_model(), x, y)
    assert report.ok, str(report)
    assert [r.name for r in report.results] == [
        "x",
        "conv2d/kernel",
        "conv2d/bias",
        "scale/scale",
        "student_dense/kernel",
        "student_dense/bias",
    ]  # no gradient for the non-trainable shift: not checked
    wrong = custom_model()
    wrong.layers[1] = WrongLeakyReLU(alpha=0.2, name="leaky_re_lu")
    assert tinycnn.gradcheck(wrong, x, y).verdict == "FAILED"


# ---- the checks around a student's code ---------------------------------------------------------------
def build(layer, shape=(4,), seed=0):
    layer.build(shape, rng=seed)
    return layer


def test_add_weight_argument_errors_are_clear():
    class Bad(Layer):
        def __init__(self, *args, **kwargs):
            super().__init__()
            self.args, self.kwargs = args, kwargs

        def build(self, input_shape):
            self.add_weight(*self.args, **self.kwargs)

    cases = [
        ((3, (2,)), ValueError, "first argument is the weight's name"),
        (("a/b", (2,)), ValueError, "without '/'"),
        (("w", "2"), TypeError, r"shape must be a tuple of ints, like \(3, 4\); got '2'"),
        (("w", (2, 0)), ValueError, r"every size must be positive, got \(2, 0\)"),
        (("w", (2, True)), TypeError, "shape must be a tuple of ints"),
        (("w", (2,)), ValueError, "glorot_uniform needs a shape of rank 2 or more"),
        (("w", (2, 2), "he"), ValueError, r"unknown initializer 'he'; expected one of"),
        (("w", (2, 2), "ones", "yes"), TypeError, "trainable must be True or False"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            build(Bad(*args))
    with pytest.raises(ValueError, match="the initializer returned ndarray of shape"):
        build(Bad("w", (2, 2), initializer=lambda shape, rng, dtype: np.zeros(3)))

    class Twice(Layer):
        def build(self, input_shape):
            self.add_weight("w", 2, initializer="zeros")  # an int: (2,)
            self.add_weight("w", 2, initializer="zeros")

    with pytest.raises(ValueError, match="a weight named 'w' exists already"):
        build(Twice())
    with pytest.raises(RuntimeError, match=r"works inside build\(self, input_shape\)"):
        Scale().add_weight("w", (2,))


def test_add_weight_takes_every_initializer_name_initializers_knows():
    assert initializers.names() == ["glorot_uniform", "ones", "zeros"]
    assert initializers.get("ones") is initializers.ones  # beside the others, for Dense too

    class Each(Layer):
        def build(self, input_shape):
            for name in initializers.names():
                self.add_weight(name, (3, 2), initializer=name)

    layer = build(Each(), seed=7)
    for name in initializers.names():
        expected = initializers.get(name)((3, 2), np.random.default_rng(7), "float32")
        np.testing.assert_array_equal(layer.params[name], expected)  # the model's stream
    np.testing.assert_array_equal(layer.params["ones"], np.ones((3, 2), np.float32))


def test_a_callable_initializer_draws_from_the_models_stream():
    class Noise(Layer):
        def build(self, input_shape):
            self.add_weight("w", (3,), initializer=lambda s, rng, dtype: rng.normal(size=s))

    one, two = build(Noise(), seed=5), build(Noise(), seed=5)
    assert np.array_equal(one.params["w"], two.params["w"])
    assert one.params["w"].dtype == np.float32  # the layer's dtype


def test_the_checks_around_a_custom_backward():
    class Forgets(Scale):
        def backward(self, dy):
            return dy * self.params["scale"]

    class NotSummed(Scale):
        def backward(self, dy):
            self.grads["scale"] = dy * self.cache
            return dy * self.params["scale"]

    class WrongShape(Scale):
        def backward(self, dy):
            super().backward(dy)
            return dy[:, :2]

    x = np.ones((5, 3), np.float32)
    for cls, message in [
        (Forgets, r"did not set self.grads\['scale'\]"),
        (NotSummed, r"self.grads\['scale'\] has shape \(5, 3\), but the weight has shape \(3,\)"),
        (WrongShape, r"returned dL/dx of shape \(5, 2\), but the input had shape \(5, 3\)"),
    ]:
        layer = cls()
        layer.forward(x)
        with pytest.raises(ValueError, match=message):
            layer.backward(x)
    with pytest.raises(RuntimeError, match="backward\\(\\) called before forward"):
        Scale().backward(x)

    class NoSuper(Layer):
        def __init__(self):
            self.alpha = 1

        def forward(self, x, training=False):
            return x

    with pytest.raises(TypeError, match=r"must call super\(\).__init__\(\*\*kwargs\)"):
        tinycnn.Sequential([NoSuper()])
    with pytest.raises(TypeError, match=r"must call super\(\).__init__\(\*\*kwargs\)"):
        NoSuper().forward(x)


def test_a_custom_layer_gets_the_built_in_input_checks_and_builds_on_first_use():
    layer = Scale(name="s")
    with pytest.raises(TypeError, match="Scale layer 's': expected floating-point input"):
        layer.forward(np.ones((2, 3), np.int64))
    with pytest.raises(ValueError, match="contains NaN"):
        layer.forward(np.full((2, 3), np.nan, np.float32))
    y = layer.forward(np.ones((2, 3), np.float64))  # cast to the layer's dtype, as built-ins
    assert layer.built and y.dtype == np.float32 and layer.params["scale"].shape == (3,)


def test_output_shape_found_by_running_forward_or_a_clear_error():
    class Broken(Layer):
        def forward(self, x, training=False):
            raise KeyError("oops")

    with pytest.raises(ValueError, match=r"forward\(\) failed on one sample of shape \(4,\)"):
        tinycnn.Sequential([Broken(input_shape=(4,))])

    class Pairs(Broken):
        def compute_output_shape(self, input_shape):
            return (input_shape[0] // 2, 2)

    assert tinycnn.Sequential([Pairs(input_shape=(4,))]).output_shapes() == [(2, 2)]
    layer = build(StudentDense(3))
    layer.forward(np.ones((2, 4), np.float32))
    cache = layer.cache
    assert layer.compute_output_shape((4,)) == (3,)
    assert layer.cache is cache  # run on a copy: the layer's cache is untouched


def test_subclassing_a_custom_layer_and_calling_super():
    class Shifted(Scale):
        def build(self, input_shape):
            super().build(input_shape)  # the parent's add_weight calls, same stream
            self.add_weight("offset", (input_shape[-1],), initializer="ones")

        def forward(self, x, training=False):
            return super().forward(x, training) + self.params["offset"]

        def backward(self, dy):
            self.grads["offset"] = dy.reshape(-1, dy.shape[-1]).sum(axis=0)
            return super().backward(dy)

    layer = build(Shifted(), seed=0)
    assert list(layer.params) == ["scale", "shift", "offset"]
    x = np.random.default_rng(0).standard_normal((3, 4))
    report = tinycnn.gradcheck(layer, x)
    assert [r.name for r in report.results] == ["x", "scale", "offset"]
    assert report.ok, str(report)


# ---- leaky_relu's kinks in gradcheck (issue 12, item 2) ------------------------------------------------
def near_kink_model(offset):
    """Dense(5, leaky_relu) whose pre-activations for the first sample are all +-offset."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6))
    with tinycnn.use_floatx("float64"):
        model = tinycnn.Sequential(
            [Dense(5, activation="leaky_relu", input_shape=(6,)), Dense(3)], seed=0
        )
    dense = model.layers[0]
    z = x @ dense.params["kernel"]
    dense.params["bias"][...] = -z[0] + offset * np.array([1, -1, 1, -1, 1])
    return model, x, np.array([0, 1, 2, 0])


def test_default_gradcheck_passes_leaky_relu_pre_activations_near_zero():
    model, x, y = near_kink_model(3e-6)  # within the model check's h = 1e-5 of the kink
    report = tinycnn.gradcheck(model, x, y)
    assert report.ok, str(report)
    assert report["dense/bias"].remeasured == 5  # every bias step crossed a kink


def test_default_gradcheck_still_fails_a_wrong_leaky_relu_slope(monkeypatch):
    model, x, y = near_kink_model(3e-6)

    def wrong_backward(dy, y):
        return np.where(y > 0, dy, 0.1 * dy)  # the forward's slope is 0.2

    monkeypatch.setitem(
        activations._FUNCTIONS, "leaky_relu", (activations._leaky_relu, wrong_backward)
    )
    assert tinycnn.gradcheck(model, x, y).verdict == "FAILED"


def test_kink_pattern_covers_leaky_relu_and_the_activation_layer():
    z = np.array([[-1.0, 0.0, 2.0]])
    expected = [[False, False, True]]
    for layer in (Activation("leaky_relu"), Activation("relu"), Dense(3, activation="leaky_relu")):
        assert kink_pattern(layer, z, z).tolist() == expected
    assert kink_pattern(Activation("tanh"), z, z) is None


def test_custom_layers_warn_nothing_in_normal_use(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = custom_model()
        model.save(tmp_path / "m.npz")
        tinycnn.load_model(tmp_path / "m.npz", custom_objects=CUSTOM).summary(print_fn=len)


@pytest.mark.gpu
def test_a_model_with_custom_layers_moves_to_cupy():
    model = custom_model()
    x, y = data(8)
    expected = model.predict(x)
    model.compile()
    model.to("cupy")
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)
    assert tinycnn.backend.backend_of(model.layers[2].params["scale"]) == "cupy"
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, seed=0)


# ---- found by trying the library as a student (issue 12 review) -------------------------------------
class Float64Twice(Layer):
    """y = 2x, computed (as students do) with a float64 NumPy array."""

    def forward(self, x, training=False):
        return x * np.full(x.shape[-1], 2.0)  # float32 * float64 -> float64

    def backward(self, dy):
        return dy * np.full(dy.shape[-1], 2.0)


@pytest.mark.parametrize("where", [1, 3, 5])
def test_a_float64_result_in_a_float32_model_is_cast_back(where):
    """Before: fit raised "conv2d_backward: dy is float64 but x is float32" (or
    bias_relu_backward's), naming a kernel and not the layer; predict of a model ending
    in the layer returned float64. Now y and dL/dx come back in the input's dtype."""
    layers = [Conv2D(2, 3, activation="relu", input_shape=(8, 8, 1)), MaxPooling2D(2), Flatten()]
    layers += [Dense(3)]
    layers.insert(where, Float64Twice())
    model = tinycnn.Sequential(layers, seed=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((8, 8, 8, 1), dtype=np.float32)
    history = model.fit(x, np.arange(8) % 3, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(x).dtype == np.float32
    assert {w.dtype for w in model.get_weights()} == {np.dtype(np.float32)}
    layer = Float64Twice()
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32 and layer.backward(y).dtype == np.float32
    np.testing.assert_array_equal(y, 2 * x)


def test_a_mask_or_an_array_of_another_backend_is_refused(guarded):
    class Mask(Layer):
        def forward(self, x, training=False):
            return x > 0

        def backward(self, dy):
            return dy

    with pytest.raises(TypeError, match=r"forward\(\) returned y has dtype bool.*float array"):
        Mask().forward(np.ones((2, 3), np.float32))

    class OnTheCPU(Layer):  # tinycnn.to_numpy: a NumPy array, whatever x was
        def forward(self, x, training=False):
            return tinycnn.to_numpy(x) * 2

        def backward(self, dy):
            return dy * 2

    x = tinycnn.to_backend(np.ones((2, 3), np.float32), "guarded")
    with pytest.raises(TypeError, match=r"'numpy' array.*computes on 'guarded'.*get_array_module"):
        OnTheCPU().forward(x)


def test_a_forward_that_writes_into_its_input_is_stopped():
    """Before: ``x[x < 0] = 0`` in a custom forward changed the caller's array (model.predict
    on slices of x_test changed x_test) and the cache of the layer before, silently."""

    class InPlaceReLU(Layer):
        def forward(self, x, training=False):
            x[x < 0] = 0
            return x

        def backward(self, dy):
            return dy

    x = np.array([[-1.0, 2.0]], dtype=np.float32)
    with pytest.raises(ValueError, match=r"forward\(\) writes into its input x.*x.copy\(\)"):
        InPlaceReLU().forward(x)
    np.testing.assert_array_equal(x, [[-1.0, 2.0]])

    class Identity(Layer):  # returns x itself: the caller may still write into y
        def forward(self, x, training=False):
            return x

        def backward(self, dy):
            return dy

    y = Identity().forward(x)
    y[0, 0] = 5.0
    assert x[0, 0] == 5.0  # the same memory, as for any view
    frozen = np.broadcast_to(x, (3, 2))  # a read-only input stays read-only
    assert not Identity().forward(frozen).flags.writeable
