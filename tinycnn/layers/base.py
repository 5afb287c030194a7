"""The base class every layer derives from.

A layer is a small object with two methods that mirror each other:

* ``y = layer.forward(x, training)`` computes the output and keeps in ``self.cache``
  exactly what the backward pass will need.
* ``dx = layer.backward(dy)`` receives dL/dy, the gradient of the loss with respect to
  the output, stores dL/dparam in ``self.grads`` (same keys as ``self.params``) and
  returns dL/dx, the gradient with respect to the input.

A layer of your own overrides exactly those two, plus ``build(input_shape)`` if it has
weights (docs/custom_layers.md). The built-in layers write the same arithmetic in
``_forward``/``_backward`` instead; either way this class does the checks a student
would forget (shapes, dtypes, NaNs, the backend of the input) so that a wrong input
fails at once with a message that names the layer. :class:`Layer` says how.
"""

from __future__ import annotations

import copy
import functools
import inspect
import operator
import warnings

from .. import backend, initializers
from ..initializers import make_rng


class SharedCache:
    """The cache a model's fused step leaves in each layer it computed at once (see
    ``models/fusion.py``): the layers keep no state of their own from that forward
    pass, so this object runs their ``backward``, exactly as the fused step would."""

    def backward(self, layer, dy, input_grad: bool):
        raise NotImplementedError


class ForwardDone:
    """Left in ``layer.cache`` by a forward pass of a custom layer that keeps nothing
    there itself: a fresh object each pass, so that ``backward`` knows a forward ran
    and a model knows whether it was its own (``Sequential._check_caches``)."""


class Layer:
    """Base layer: parameters, gradients, build-on-first-use and input checks.

    Writing a layer (docs/custom_layers.md): subclass ``Layer`` and override

    * ``forward(self, x, training=False)``: return y, keep what backward needs (in
      ``self.cache``, say);
    * ``backward(self, dy)``: set ``self.grads[name]`` (dL/dweight, the weight's shape)
      for every trainable weight and return dL/dx (x's shape);
    * ``build(self, input_shape)``, only if the layer has weights: create each with
      ``self.add_weight(name, shape, initializer)``. ``input_shape`` has no batch axis.
      Read a weight as ``self.params[name]`` wherever you use it: ``model.to("cupy")``
      and ``gradcheck``'s float64 copy replace the arrays;
    * ``get_config(self)``, only if ``__init__`` takes arguments: add them to
      ``super().get_config()`` so that ``load_model`` can call ``YourLayer(**config)``
      (let ``__init__`` pass ``**kwargs`` on to ``super().__init__``);
    * ``compute_output_shape(self, input_shape)`` optionally: by default a custom layer's
      output shape is found by running ``forward`` on one sample of zeros.

    How the framework calls them. The models, ``fit``, ``gradcheck`` and the saving code
    call every layer the same way: ``forward(x, training, check_finite)``,
    ``backward(dy, input_grad)`` and ``build(input_shape, rng)``. When a subclass
    defines ``forward``, ``backward`` or ``build`` itself, :meth:`__init_subclass__`
    wraps each in a method of that form, which does the framework's part and then calls
    the student's function (``functools.wraps``: ``help`` and the source show yours):

    * forward: check the input (as for a built-in layer), build on first use, call yours,
      note that a forward ran;
    * backward: refuse to run before a forward, call yours, check that it returned dL/dx
      of x's shape and set every trainable weight's gradient, of the weight's shape;
    * build: check the shape, set ``dtype``, and lend ``add_weight`` the random stream
      the model passes in (its seeded one: the same seed gives the same weights).

    The built-in layers leave those three alone and write the internal contract that
    the base versions call: ``_forward(x, training)``, ``_backward(dy, input_grad)``
    (``input_grad=False``: the model's first layer may skip dL/dx), and
    ``_create_params(input_shape, rng)`` with ``param_shapes(input_shape)``, whose
    shapes ``load_model`` checks a file against before allocating anything.

    Attributes:
        name: the layer's name (``"conv2d_1"``); given by the model when left ``None``.
        params: dict of parameter arrays (``"kernel"``, ``"bias"``).
        grads: dict of gradient arrays with the same keys, filled by ``backward``.
        input_shape: the input shape without the batch axis, e.g. ``(28, 28, 1)``.
        dtype: the float type the layer computes in (``floatx()`` when built).
        trainable: ``False`` freezes the weights: the optimizer leaves them as they are
            (``backward`` still computes every gradient). Saved with the layer's config.
        non_trainable: names of parameters that are never trained, whatever ``trainable``
            says (BatchNormalization's moving averages): the layer updates them itself,
            the optimizer never does (a layer may still compute their gradient, for
            ``gradcheck``), and ``summary()`` counts them as non-trainable.
    """

    #: Shape of one sample as documentation uses it, e.g. "(N, H, W, C)"; None = any rank.
    input_layout: str | None = None
    #: True for a class that writes its own forward (a custom layer; see the class doc).
    writes_forward: bool = False
    #: True for a class that writes its own build (with add_weight).
    writes_build: bool = False
    _weight_rng = None  # the random stream add_weight draws from, during build only
    _running = None  # "forward" or "backward" while a custom one runs (see _running)

    def __init_subclass__(cls, **kwargs):
        """Wrap a subclass's own ``forward``, ``backward`` and ``build`` (see the class doc)."""
        super().__init_subclass__(**kwargs)
        for name, wrap in (
            ("forward", _framework_forward),
            ("backward", _framework_backward),
            ("build", _framework_build),
        ):
            own = cls.__dict__.get(name)
            if callable(own) and not getattr(own, "framework_wrapper", False):
                setattr(cls, name, wrap(own))
        if "forward" in cls.__dict__:
            cls.writes_forward = True
        if "build" in cls.__dict__:
            cls.writes_build = True

    def __init__(self, name: str | None = None, input_shape=None):
        self.name = name
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.params: dict = {}
        self.grads: dict = {}
        self.dtype: str | None = None
        self.built = False
        self.trainable = True
        self.non_trainable: set[str] = set()
        self.cache = None

    # ---- building ---------------------------------------------------------------
    def build(self, input_shape, rng=None) -> None:
        """Create the parameters for inputs of shape ``(N, *input_shape)``.

        ``rng`` is a NumPy ``Generator`` or a seed; the same seed gives the same weights.
        """
        self._build(input_shape, rng, self._create_params)

    def _build(self, input_shape, rng, create) -> None:
        """What every build does around ``create(input_shape, rng)``, which makes the
        weights: check the shape, set ``dtype``, lend ``add_weight`` the stream."""
        input_shape = tuple(int(d) for d in input_shape)
        expected_ndim = self._expected_ndim()
        if expected_ndim is not None and len(input_shape) + 1 != expected_ndim:
            raise ValueError(self._rank_message((None, *input_shape)))
        self._check_sample_shape(input_shape)
        self.input_shape = input_shape
        self.dtype = backend.floatx()
        self._weight_rng = make_rng(rng)
        try:
            create(input_shape, self._weight_rng)
        finally:
            self._weight_rng = None
        self.grads = {key: None for key in self.params}
        self.built = True

    def _create_params(self, input_shape, rng) -> None:
        """Built-in layers with weights create ``self.params`` here."""

    def add_weight(self, name: str, shape, initializer="glorot_uniform", trainable: bool = True):
        """Create the weight ``self.params[name]`` of ``shape``; call it in ``build``.

        Args:
            name: the weight's key in ``params`` and ``grads`` (and in saved files:
                ``"<layer name>/<name>"``).
            shape: a tuple of positive sizes, e.g. ``(input_shape[-1], units)``.
            initializer: ``"glorot_uniform"`` (Keras's default for kernels), ``"zeros"``,
                ``"ones"``, or a function ``(shape, rng, dtype) -> array`` drawing from the
                NumPy Generator ``rng``: the model's seeded stream.
            trainable: ``False`` for a weight the optimizer must leave alone (the layer
                updates it itself, as BatchNormalization's moving averages): it needs no
                gradient and ``summary()`` counts it as non-trainable.

        Returns nothing: read the weight as ``self.params[name]`` where you use it (moving
        the model to another backend replaces the array).
        """
        if self._weight_rng is None:
            raise RuntimeError(
                f"{self._label()}: add_weight({name!r}, ...) works inside build(self, "
                "input_shape), which the framework calls with the model's random stream "
                "before the first forward; move the call there."
            )
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(
                f"{self._label()}: add_weight's first argument is the weight's name, a "
                f"non-empty string without '/' (like 'kernel'); got {name!r}."
            )
        if name in self.params:
            raise ValueError(
                f"{self._label()}: add_weight: a weight named {name!r} exists already."
            )
        shape = _weight_shape(shape, f"{self._label()}: add_weight({name!r}, shape)")
        if not isinstance(trainable, bool):
            raise TypeError(
                f"{self._label()}: add_weight({name!r}): trainable must be True or False, "
                f"got {trainable!r}."
            )
        value = _weight_initializer(initializer, shape, self._label(), name)(
            shape, self._weight_rng, self.dtype
        )
        if tuple(getattr(value, "shape", ())) != shape:
            raise ValueError(
                f"{self._label()}: add_weight({name!r}): the initializer returned "
                f"{type(value).__name__} of shape {getattr(value, 'shape', None)}, not {shape}."
            )
        self.params[name] = backend.to_backend(value).astype(self.dtype, copy=False)
        self.grads[name] = None
        if not trainable:
            self.non_trainable.add(name)

    def param_shapes(self, input_shape) -> dict[str, tuple]:
        """The shape of each parameter ``build(input_shape)`` would create, without creating
        any: ``load_model`` compares them with a file's before allocating memory.

        A built-in layer with weights overrides this together with ``_create_params``. A
        layer that writes its own ``build`` is built on a copy to find them (its code is
        trusted: the user passed the class to ``load_model``).
        """
        if self.writes_build:
            layer = self._built_copy(input_shape)
            return {key: tuple(value.shape) for key, value in layer.params.items()}
        if type(self)._create_params is not Layer._create_params:
            raise NotImplementedError(
                f"{type(self).__name__} creates parameters (_create_params) but does not "
                "say their shapes: implement param_shapes(input_shape) too."
            )
        return {}

    def compute_output_shape(self, input_shape) -> tuple:
        """Output shape without the batch axis, for an input of shape ``input_shape``.

        The input's shape for a built-in layer that does not override it; for a layer
        that writes its own ``forward``, the shape its forward gives one sample of zeros.
        """
        if self.writes_forward:
            input_shape = tuple(int(d) for d in input_shape)
            known = vars(self).setdefault("_output_shapes", {})  # run once per shape
            if input_shape not in known:
                known[input_shape] = self._output_shape_by_running(input_shape)
            return known[input_shape]
        return tuple(input_shape)

    def _built_copy(self, input_shape) -> Layer:
        """This layer if built for ``input_shape``, else a copy built for it."""
        if self.built and tuple(self.input_shape) == tuple(input_shape):
            return self
        layer = copy.deepcopy(self)
        layer.built, layer.params, layer.grads = False, {}, {}
        layer.build(input_shape, rng=0)
        return layer

    def _output_shape_by_running(self, input_shape: tuple) -> tuple:
        """The output shape of ``forward`` on one sample of zeros (run on a copy of the
        layer, so that its cache and attributes stay as they are)."""
        layer = self._built_copy(input_shape)
        layer = copy.copy(layer) if layer is self else layer
        weights = list(layer.params.values())
        xp = backend.get_array_module(weights[0]) if weights else backend.xp()
        try:
            with warnings.catch_warnings():  # a log(0) or 0/0 does not matter here
                warnings.simplefilter("ignore")
                y = layer.forward(
                    xp.zeros((1, *input_shape), dtype=layer.dtype), check_finite=False
                )
        except Exception as err:
            raise ValueError(
                f"{self._label()}: cannot find its output shape: forward() failed on one "
                f"sample of shape {input_shape} ({type(err).__name__}: {err}). Define "
                "compute_output_shape(self, input_shape), the output shape without the "
                "batch axis."
            ) from err
        return tuple(int(d) for d in y.shape[1:])

    def count_params(self) -> int:
        """The number of scalars in the layer's parameters (0 before it is built)."""
        return sum(int(p.size) for p in self.params.values())

    def trainable_params(self) -> dict:
        """The parameters the optimizer updates: none when ``trainable`` is ``False``, else
        every parameter not named in ``non_trainable``."""
        if not self.trainable:
            return {}
        return {k: v for k, v in self.params.items() if k not in self.non_trainable}

    def count_trainable_params(self) -> int:
        """The number of scalars in :meth:`trainable_params`."""
        return sum(int(p.size) for p in self.trainable_params().values())

    # ---- weights, as Keras hands them out ---------------------------------------------
    def get_weights(self) -> list:
        """The parameters as NumPy copies, in ``params`` order (Keras's: kernel, bias);
        ``[]`` before the layer is built."""
        # copies: the optimizer updates the weights in place, and a snapshot (for
        # EarlyStopping's restore_best_weights, say) must not change with them
        return [backend.to_numpy(p).copy() for p in self.params.values()]

    def set_weights(self, weights) -> None:
        """Inverse of :meth:`get_weights`: the same number of arrays, each of the same shape
        (all checked before any is copied)."""
        self.assign_weights(self.check_weights(weights, "set_weights"))

    def check_weights(self, weights, what: str) -> list:
        """``[(key, array)]`` for :meth:`assign_weights`, once count and shapes are right."""
        if not self.built and weights:
            raise ValueError(f"{what}: {self._label()} is not built yet; it has no weights.")
        if len(weights) != len(self.params):
            raise ValueError(
                f"{what}: {self._label()} has {len(self.params)} weight arrays "
                f"({', '.join(self.params) or 'none'}), got {len(weights)}."
            )
        for (key, current), value in zip(self.params.items(), weights, strict=True):
            if not hasattr(value, "shape"):
                raise TypeError(f"{what}: {self._label()} {key} must be an array, got {value!r}.")
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(
                    f"{what}: {self._label()} {key} has shape {tuple(current.shape)}, "
                    f"got {tuple(value.shape)}."
                )
        return list(zip(self.params, weights, strict=True))

    def assign_weights(self, pairs) -> None:
        """Copy checked ``(key, array)`` pairs into the existing parameter arrays: the layer
        never shares memory with the caller, and the optimizer's references stay valid."""
        for key, value in pairs:
            current = self.params[key]
            current[...] = backend.to_backend(value, backend.backend_of(current))

    # ---- forward and backward -----------------------------------------------------
    def forward(self, x, training: bool = False, check_finite: bool = True):
        """Compute the layer's output for a batch ``x`` of shape ``(N, *input_shape)``.

        ``check_finite`` scans the input for NaN/inf (a models checks its own input once
        and skips the scan for the layers inside, where it would cost a pass over memory).
        """
        x = self.check_input(x, check_finite)
        if not self.built:
            self.build(x.shape[1:])  # which checks the shape of a sample
        return self._forward(x, training)

    def check_input(self, x, check_finite: bool = True):
        """The checks ``forward`` makes on a batch ``x``; returns ``x`` in the layer's dtype.

        ``x`` must be a float array of the layer's rank, on its weights' backend, of a
        sample shape it accepts (once built), without NaN or inf (if ``check_finite``);
        otherwise a TypeError or ValueError says what is wrong. A model's fused step
        (models/fusion.py), which computes two layers without their ``forward``, calls it.
        """
        x = self._check_input(x, check_finite)
        if self.built:
            self._check_sample_shape(tuple(x.shape[1:]))
        return x

    def backward(self, dy, input_grad: bool = True):
        """Given dL/dy, fill ``self.grads`` and return dL/dx (``None`` if not ``input_grad``).

        ``input_grad=False`` lets the first layer of a model skip the input gradient,
        which nothing uses during training.
        """
        if self.cache is None:
            raise RuntimeError(
                f"{self._label()}: backward() called before forward(x, training=True)."
            )
        if isinstance(self.cache, SharedCache):  # left by a model's fused step
            return self.cache.backward(self, dy, input_grad)
        return self._backward(dy, input_grad)

    def _forward(self, x, training):
        raise NotImplementedError(
            f"{self._label()} has no forward pass: write forward(self, x, training=False)."
        )

    def _backward(self, dy, input_grad):
        raise NotImplementedError(
            f"{self._label()} has no backward pass: write backward(self, dy), which sets "
            "self.grads[name] for each weight and returns dL/dx."
        )

    # ---- moving between backends ----------------------------------------------------
    def to(self, name: str) -> Layer:
        """Move the parameters to backend ``name`` ("numpy" or "cupy")."""
        self.params = {k: backend.to_backend(v, name) for k, v in self.params.items()}
        self.grads = {k: None for k in self.params}
        self.cache = None
        return self

    # ---- configuration (for saving) -------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments, as JSON-friendly values."""
        return {"name": self.name, "trainable": self.trainable}

    # ---- checks -----------------------------------------------------------------------
    def _label(self) -> str:
        return f"{type(self).__name__} layer {self.name!r}" if self.name else type(self).__name__

    def _check_input(self, x, check_finite: bool):
        if not (hasattr(x, "ndim") and hasattr(x, "dtype") and hasattr(x, "shape")):
            raise TypeError(
                f"{self._label()}: expected an array, got {type(x).__name__}. "
                "Convert it with numpy.asarray(x, dtype='float32')."
            )
        if x.dtype.kind != "f":
            raise TypeError(
                f"{self._label()}: expected floating-point input ({self.dtype or backend.floatx()}),"
                f" got {x.dtype}. Scale integer images to floats first, for example with "
                "tinycnn.preprocessing.prepare_images(x)."
            )
        expected_ndim = self._expected_ndim()
        if expected_ndim is not None and x.ndim != expected_ndim:
            raise ValueError(self._rank_message(tuple(x.shape)))
        if self.params:
            where = backend.backend_of(next(iter(self.params.values())))
            if backend.backend_of(x) != where:
                raise TypeError(
                    f"{self._label()}: its weights live on {where!r} but the input is a "
                    f"{backend.backend_of(x)!r} array. Move one of them, e.g. model.to({where!r})"
                    " or tinycnn.to_backend(x, ...)."
                )
        dtype = self.dtype or backend.floatx()
        if x.dtype != dtype:
            x = x.astype(dtype)  # Keras casts floats to the layer's dtype too
        if check_finite and not bool(backend.get_array_module(x).isfinite(x).all()):
            raise ValueError(
                f"{self._label()}: the input contains NaN or infinite values. "
                "Check the data (and the learning rate, if this happens during training)."
            )
        return x

    def _rank_message(self, shape: tuple) -> str:
        """Why a batch of shape ``shape`` (``None`` for an unknown batch size) has the
        wrong rank, with the fix for the usual case: images without a channel axis."""
        shown = str(tuple("N" if d is None else int(d) for d in shape)).replace("'", "")
        message = (
            f"{self._label()}: expected input of shape {self.input_layout} "
            f"(rank {self._expected_ndim()}), got shape {shown} (rank {len(shape)})."
        )
        if self.input_layout == "(N, H, W, C)" and len(shape) == 3:
            message += " Grey images need a channel axis: add it with x[..., None]."
        return message

    def _expected_ndim(self) -> int | None:
        if self.input_layout is None:
            return None
        return self.input_layout.count(",") + 1

    def _check_sample_shape(self, shape: tuple) -> None:
        """Subclasses reject shapes they cannot handle (wrong channels, too small...)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


# ---- the framework's side of a custom layer (see Layer's docstring) -------------------------------
def _framework_forward(own):
    """``forward(x, training, check_finite)`` around a subclass's ``forward(x, training)``."""
    takes_training = _takes(own, "training")

    @functools.wraps(own)
    def forward(self, x, training: bool = False, check_finite: bool = True):
        def call(x):
            return own(self, x, training=training) if takes_training else own(self, x)

        if self._running == "forward":  # super().forward(x) inside a subclass's forward
            return call(x)
        _check_initialised(self)
        x = self.check_input(x, check_finite)
        if not self.built:
            self.build(x.shape[1:])  # which checks the shape of a sample
        self.cache = None
        y = _running(self, "forward", lambda: call(x))
        if self.cache is None:  # the layer keeps its state elsewhere: mark that it ran
            self.cache = ForwardDone()
        if not hasattr(y, "shape"):
            raise TypeError(
                f"{self._label()}: forward() must return an array, got {type(y).__name__}."
            )
        self._forward_input_shape = tuple(x.shape)  # for backward's check of dx
        return y

    forward.framework_wrapper = True
    return forward


def _framework_backward(own):
    """``backward(dy, input_grad)`` around a subclass's ``backward(dy)``, which it checks."""

    @functools.wraps(own)
    def backward(self, dy, input_grad: bool = True):
        if self._running == "backward":  # super().backward(dy) inside a subclass's backward
            return own(self, dy)
        if self.cache is None:
            raise RuntimeError(
                f"{self._label()}: backward() called before forward(x, training=True)."
            )
        for key in self.grads:  # a gradient backward forgets must not survive from before
            self.grads[key] = None
        dx = _running(self, "backward", lambda: own(self, dy))
        _check_gradients(self, dx)
        return dx if input_grad else None

    backward.framework_wrapper = True
    return backward


def _framework_build(own):
    """``build(input_shape, rng)`` around a subclass's ``build(input_shape)``."""

    @functools.wraps(own)
    def build(self, input_shape, rng=None):
        _check_initialised(self)
        if self._weight_rng is not None:  # super().build(...) inside a subclass's build
            own(self, tuple(int(d) for d in input_shape))
            return
        self.params = {}
        self._build(input_shape, rng, lambda shape, _rng: own(self, shape))

    build.framework_wrapper = True
    return build


def _running(layer, what: str, call):
    """``call()``, with ``layer._running = what`` meanwhile: a call of the same method
    from inside (``super().forward(x)``) then goes straight to the parent's code."""
    layer._running = what
    try:
        return call()
    finally:
        layer._running = None


def _takes(function, argument: str) -> bool:
    """Whether ``function`` accepts ``argument`` by name (or any keyword)."""
    parameters = inspect.signature(function).parameters.values()
    return any(p.name == argument or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _check_initialised(layer) -> None:
    if "params" not in vars(layer):
        raise TypeError(
            f"{type(layer).__name__}.__init__ must call super().__init__(**kwargs) first: "
            "the base class sets up params, grads and the name there."
        )


def _check_gradients(layer, dx) -> None:
    """What a custom backward must have done: dL/dx of the input's shape, and a gradient
    of the weight's shape for each trainable weight."""
    label, shape = layer._label(), getattr(layer, "_forward_input_shape", None)
    if not hasattr(dx, "shape"):
        raise TypeError(
            f"{label}: backward(dy) must return dL/dx, an array of the input's shape "
            f"{shape}; got {type(dx).__name__}."
        )
    if shape is not None and tuple(dx.shape) != shape:
        raise ValueError(
            f"{label}: backward(dy) returned dL/dx of shape {tuple(dx.shape)}, but the input "
            f"had shape {shape}: dL/dx has the shape of x."
        )
    for key, param in layer.params.items():
        if key in layer.non_trainable:
            continue
        grad = layer.grads.get(key)
        if grad is None:
            raise ValueError(
                f"{label}: backward(dy) did not set self.grads[{key!r}], dL/d{key}, which "
                "the optimizer needs (for a weight the layer updates itself, use "
                "add_weight(..., trainable=False))."
            )
        if tuple(getattr(grad, "shape", ())) != tuple(param.shape):
            raise ValueError(
                f"{label}: self.grads[{key!r}] has shape {tuple(getattr(grad, 'shape', ()))}"
                f", but the weight has shape {tuple(param.shape)}: a gradient has its "
                "weight's shape (sum over the batch axis)."
            )


def _weight_shape(shape, what: str) -> tuple:
    """``shape`` as a tuple of positive ints (an int n means (n,))."""
    sizes = (shape,) if isinstance(shape, int) and not isinstance(shape, bool) else shape
    try:
        if isinstance(sizes, (str, bytes)) or any(isinstance(d, bool) for d in sizes):
            raise TypeError
        sizes = tuple(operator.index(d) for d in sizes)
    except TypeError:
        raise TypeError(
            f"{what}: shape must be a tuple of ints, like (3, 4); got {shape!r}."
        ) from None
    if not all(d > 0 for d in sizes):
        raise ValueError(f"{what}: every size must be positive, got {sizes}.")
    return sizes


def _ones(shape, rng, dtype):
    """All ones (Keras's default for a scale, as BatchNormalization's gamma)."""
    return backend.xp().ones(shape, dtype=dtype)


WEIGHT_INITIALIZERS = ("glorot_uniform", "zeros", "ones")


def _weight_initializer(initializer, shape: tuple, label: str, name: str):
    """The function ``(shape, rng, dtype) -> array`` that ``initializer`` names."""
    if callable(initializer):
        return initializer
    if initializer not in WEIGHT_INITIALIZERS:
        raise ValueError(
            f"{label}: add_weight({name!r}): unknown initializer {initializer!r}; expected one "
            f"of {WEIGHT_INITIALIZERS} or a function (shape, rng, dtype) -> array."
        )
    if initializer == "glorot_uniform" and len(shape) < 2:
        raise ValueError(
            f"{label}: add_weight({name!r}, {shape}): glorot_uniform needs a shape of rank "
            "2 or more (fan in, fan out); a vector such as a bias or a scale starts at "
            "initializer='zeros' or 'ones'."
        )
    return _ones if initializer == "ones" else initializers.get(initializer)
