"""How a layer you write is called by the framework.

You write the short version of each method (docs/custom_layers.md)::

    def forward(self, x, training=False): ...     # return y
    def backward(self, dy): ...                   # set self.grads, return dL/dx
    def build(self, input_shape): ...             # self.add_weight(...)

but the models, ``fit``, ``gradcheck`` and the saving code call every layer with the
long version, the one the built-in layers have::

    forward(x, training, check_finite)    backward(dy, input_grad)    build(input_shape, rng)

When Python creates your class, ``Layer.__init_subclass__`` hands it to
:func:`wrap_subclass`, which replaces each of the three methods your class defines
with a *wrapper* of the long form. The wrapper does the framework's part and calls
your function in the middle (``functools.wraps`` copies your function's name,
docstring and source, so ``help`` shows yours):

* forward: check the input (as for a built-in layer), build on first use, call yours,
  note in ``self.cache`` that a forward ran;
* backward: refuse to run before a forward, call yours, check that it returned dL/dx
  of x's shape and set the gradient of every trainable weight, of the weight's shape;
* build: check the shape, set ``dtype``, and lend ``add_weight`` the random stream
  the model passes in (its seeded one: the same seed gives the same weights).

The rest of this module is what a custom layer needs besides: :func:`add_weight`'s
checks, and the output shape and weight shapes found by running the layer on a copy
(a custom layer does not say them itself). The built-in layers are never wrapped: they
keep their own fast ``forward`` and ``backward`` (see base.py).
"""

from __future__ import annotations

import copy
import functools
import inspect
import operator
import warnings

from .. import backend, initializers


class ForwardDone:
    """Left in ``layer.cache`` by a forward pass of a custom layer that keeps nothing
    there itself: a fresh object each pass, so that ``backward`` knows a forward ran
    and a model knows whether it was its own (``Sequential._check_caches``)."""


def wrap_subclass(cls) -> None:
    """Wrap the ``forward``, ``backward`` and ``build`` that ``cls`` itself defines."""
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


# ---- the three wrappers ---------------------------------------------------------------------------
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
        y = _running(self, "forward", lambda: call(_read_only(x)))
        if self.cache is None:  # the layer keeps its state elsewhere: mark that it ran
            self.cache = ForwardDone()
        if not hasattr(y, "shape"):
            raise TypeError(
                f"{self._label()}: forward() must return an array, got {type(y).__name__}."
            )
        self._forward_input_shape = tuple(x.shape)  # for backward's check of dx
        return _writeable(_like(self, y, x, "forward() returned y"), x)

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
        for key, grad in self.grads.items():
            if grad is not None:
                self.grads[key] = _like(self, grad, self.params[key], f"self.grads[{key!r}]")
        return _like(self, dx, dy, "backward(dy) returned dL/dx") if input_grad else None

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
    except ValueError as err:
        if "read-only" not in str(err):
            raise
        raise ValueError(
            f"{layer._label()}: {what}() writes into its input x, or into an array kept "
            f"from it ({err}). x belongs to the caller and to the layer before, whose "
            "backward reads it: compute a new array instead (y = xp.where(x > 0, x, 0), "
            "or y = x.copy() and change y)."
        ) from err
    finally:
        layer._running = None


def _read_only(x):
    """A read-only view of a NumPy x, for a custom forward: one that changes its input
    in place (``x[x < 0] = 0``) would change the caller's data and the cache of the layer
    before, silently; NumPy then raises, and :func:`_running` says why. (CuPy arrays
    have no such flag.)"""
    if not backend.is_numpy(x):
        return x
    view = x.view()
    view.flags.writeable = False
    return view


def _writeable(y, x):
    """y as the caller may use it: a forward that returns x itself, or a reshape of
    it, returns the read-only view of :func:`_read_only`; if x was writeable, so is a
    view of y (a read-only x, ``numpy.broadcast_to``'s say, stays read-only)."""
    if backend.is_numpy(y) and not y.flags.writeable and backend.is_numpy(x):
        if x.flags.writeable and backend.get_array_module(x).may_share_memory(y, x):
            y = y.view()
            y.flags.writeable = True
    return y


def _like(layer, array, reference, what: str):
    """``array`` checked against ``reference`` (the input, dy or the weight): on its
    backend and in its float type. A float of another precision is cast: NumPy makes
    float64 out of ``float32 * float64``, and a float64 dL/dx would reach the float32
    kernels of the layer before (a built-in layer casts its input the same way)."""
    where, expected = backend.backend_of(array), backend.backend_of(reference)
    if where != expected:
        raise TypeError(
            f"{layer._label()}: {what} is a {where!r} array, but the layer computes on "
            f"{expected!r}: write xp = get_array_module(x) and use xp.* (NumPy or CuPy "
            "alike), not numpy directly."
        )
    if array.dtype.kind != "f":
        raise TypeError(
            f"{layer._label()}: {what} has dtype {array.dtype}; it must be a float array "
            f"({reference.dtype}): a comparison such as x > 0 is a mask, multiply by it."
        )
    return array if array.dtype == reference.dtype else array.astype(reference.dtype)


def _takes(function, argument: str) -> bool:
    """Whether ``function`` accepts ``argument`` by name (or any keyword)."""
    parameters = inspect.signature(function).parameters.values()
    return any(p.name == argument or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


# ---- what the wrappers check ----------------------------------------------------------------------
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


# ---- add_weight -----------------------------------------------------------------------------------
def add_weight(layer, name: str, shape, initializer, trainable: bool) -> None:
    """``layer.add_weight(...)`` (see its docstring): check, draw, store."""
    label = layer._label()
    if layer._weight_rng is None:
        raise RuntimeError(
            f"{label}: add_weight({name!r}, ...) works inside build(self, input_shape), "
            "which the framework calls with the model's random stream before the first "
            "forward; move the call there."
        )
    _check_weight_name(layer, name)
    shape = _weight_shape(shape, f"{label}: add_weight({name!r}, shape)")
    if not isinstance(trainable, bool):
        raise TypeError(
            f"{label}: add_weight({name!r}): trainable must be True or False, got {trainable!r}."
        )
    create = _weight_initializer(initializer, shape, label, name)
    value = create(shape, layer._weight_rng, layer.dtype)
    if tuple(getattr(value, "shape", ())) != shape:
        raise ValueError(
            f"{label}: add_weight({name!r}): the initializer returned "
            f"{type(value).__name__} of shape {getattr(value, 'shape', None)}, not {shape}."
        )
    layer.params[name] = backend.to_backend(value).astype(layer.dtype, copy=False)
    layer.grads[name] = None
    if not trainable:
        layer.non_trainable.add(name)


def _check_weight_name(layer, name) -> None:
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(
            f"{layer._label()}: add_weight's first argument is the weight's name, a "
            f"non-empty string without '/' (like 'kernel'); got {name!r}."
        )
    if name in layer.params:
        raise ValueError(f"{layer._label()}: add_weight: a weight named {name!r} exists already.")


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


def _weight_initializer(initializer, shape: tuple, label: str, name: str):
    """The function ``(shape, rng, dtype) -> array`` that ``initializer`` is, or names
    (any name initializers.py knows)."""
    if callable(initializer):
        return initializer
    if initializer not in initializers.names():
        raise ValueError(
            f"{label}: add_weight({name!r}): unknown initializer {initializer!r}; expected one of "
            f"{initializers.names()} or a function (shape, rng, dtype) -> array."
        )
    if initializer == "glorot_uniform" and len(shape) < 2:
        raise ValueError(
            f"{label}: add_weight({name!r}, {shape}): glorot_uniform needs a shape of rank "
            "2 or more (fan in, fan out); a vector such as a bias or a scale starts at "
            "initializer='zeros' or 'ones'."
        )
    return initializers.get(initializer)


# ---- the constructor's arguments, for get_config -----------------------------------------------------
SAVED_BY_THE_BASE = ("self", "name", "input_shape", "trainable")


def init_arguments(cls, args, kwargs) -> dict:
    """The named arguments ``cls(*args, **kwargs)`` passes to a custom ``__init__``,
    defaults included, that are plain values (JSON): what ``get_config`` must return so
    that ``load_model`` can call ``cls(**config)``. Empty for the built-in layers (their
    ``get_config`` says it all) and when the call does not fit the signature (then
    ``__init__`` itself raises)."""
    if cls.__module__.startswith("tinycnn.") or cls.__init__ is object.__init__:
        return {}
    signature = inspect.signature(cls.__init__)
    try:
        bound = signature.bind(None, *args, **kwargs)
    except TypeError:
        return {}
    bound.apply_defaults()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {
        name: value
        for name, value in bound.arguments.items()
        if signature.parameters[name].kind in kinds
        and name not in SAVED_BY_THE_BASE
        and _plain(value)
    }


def unsaved_arguments(layer, config: dict) -> list[str]:
    """The arguments of a custom layer's ``__init__`` that ``config`` (its ``get_config()``)
    does not return: ``load_model`` would rebuild the layer with their defaults. Empty
    when the ``__init__`` is tinycnn's own (a built-in's ``get_config`` says it all)."""
    init = type(layer).__init__
    if getattr(init, "__module__", "").startswith("tinycnn."):
        return []
    skip = ("self", "name", "input_shape")
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [
        p.name
        for p in inspect.signature(init).parameters.values()
        if p.kind in kinds and p.name not in skip and p.name not in config
    ]


def _plain(value) -> bool:
    """A value JSON writes and reads back as it was (a tuple comes back as a list)."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


# ---- shapes found by running the layer ------------------------------------------------------------
def built_copy(layer, input_shape):
    """``layer`` if built for ``input_shape``, else a copy built for it."""
    if layer.built and tuple(layer.input_shape) == tuple(input_shape):
        return layer
    layer = copy.deepcopy(layer)
    layer.built, layer.params, layer.grads = False, {}, {}
    layer.build(input_shape, rng=0)
    return layer


def output_shape_by_running(layer, input_shape: tuple) -> tuple:
    """The output shape of ``forward`` on one sample of zeros (run on a copy of the
    layer, so that its cache and attributes stay as they are)."""
    runner = built_copy(layer, input_shape)
    runner = copy.copy(runner) if runner is layer else runner
    weights = list(runner.params.values())
    xp = backend.get_array_module(weights[0]) if weights else backend.xp()
    try:
        with warnings.catch_warnings():  # a log(0) or 0/0 does not matter here
            warnings.simplefilter("ignore")
            y = runner.forward(xp.zeros((1, *input_shape), dtype=runner.dtype), check_finite=False)
    except Exception as err:
        raise ValueError(
            f"{layer._label()}: cannot find its output shape: forward() failed on one "
            f"sample of shape {input_shape} ({type(err).__name__}: {err}). Define "
            "compute_output_shape(self, input_shape), the output shape without the "
            "batch axis."
        ) from err
    return tuple(int(d) for d in y.shape[1:])
