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

from .. import backend
from ..initializers import make_rng
from . import custom


class SharedCache:
    """The cache a model's fused step leaves in each layer it computed at once (see
    ``models/fusion.py``): the layers keep no state of their own from that forward
    pass, so this object runs their ``backward``, exactly as the fused step would."""

    def backward(self, layer, dy, input_grad: bool):
        raise NotImplementedError


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
    wraps each in a method of that form, which does the framework's part (checks, build
    on first use) and then calls the student's function: ``layers/custom.py`` says how.

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
    _running = None  # "forward" or "backward" while a custom one runs (custom._running)

    def __init_subclass__(cls, **kwargs):
        """Wrap a subclass's own ``forward``, ``backward`` and ``build`` (layers/custom.py)."""
        super().__init_subclass__(**kwargs)
        custom.wrap_subclass(cls)

    def __new__(cls, *args, **kwargs):
        """Note the constructor's arguments of a layer of one's own, for
        :meth:`get_config` (as Keras 3 does): ``Scale(0.5)`` saves ``factor=0.5``."""
        layer = super().__new__(cls)
        layer._init_arguments = custom.init_arguments(cls, args, kwargs)
        return layer

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
            initializer: a name initializers.py knows (``"glorot_uniform"``, Keras's
                default for kernels; ``"zeros"``; ``"ones"``), or a function ``(shape,
                rng, dtype) -> array`` drawing from the NumPy Generator ``rng``: the
                model's seeded stream.
            trainable: ``False`` for a weight the optimizer must leave alone (the layer
                updates it itself, as BatchNormalization's moving averages): it needs no
                gradient and ``summary()`` counts it as non-trainable.

        Returns nothing: read the weight as ``self.params[name]`` where you use it (moving
        the model to another backend replaces the array).
        """
        custom.add_weight(self, name, shape, initializer, trainable)

    def param_shapes(self, input_shape) -> dict[str, tuple]:
        """The shape of each parameter ``build(input_shape)`` would create, without creating
        any: ``load_model`` compares them with a file's before allocating memory.

        A built-in layer with weights overrides this together with ``_create_params``. A
        layer that writes its own ``build`` is built on a copy to find them (its code is
        trusted: the user passed the class to ``load_model``).
        """
        if self.writes_build:
            layer = custom.built_copy(self, input_shape)
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
                known[input_shape] = custom.output_shape_by_running(self, input_shape)
            return known[input_shape]
        return tuple(input_shape)

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
        """The constructor arguments, as JSON-friendly values.

        For a layer of your own, those its ``__init__`` was called with (plain values:
        numbers, strings, lists...) are included, so that a layer that stores an
        argument, say ``self.alpha = alpha``, needs no ``get_config`` of its own.
        """
        captured = vars(self).get("_init_arguments") or {}
        return {**captured, "name": self.name, "trainable": self.trainable}

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
