"""Sequential: a stack of layers, each feeding the next, with the Keras model API.

The forward pass runs the layers in order; the backward pass runs them in reverse,
each turning dL/d(its output) into dL/d(its input) (backpropagation is just that):
``model.backward(g)`` and ``for layer in reversed(model.layers): g = layer.backward(g)``
give the same gradients, whatever the fast path fused (``fusion.py``).
The training loop (``fit``/``evaluate``/``predict``) lives in ``tinycnn.training`` and
the file format in ``tinycnn.saving``; the methods here are thin doors into them, which
pass the model in. Imports go one way: this module imports those two, never the reverse.
"""

from __future__ import annotations

import re
import warnings

from .. import backend, losses, optimizers, saving, training
from ..initializers import make_rng
from ..layers import Layer, custom
from . import fusion, inspection
from .summary import summary_lines


def snake_case(class_name: str) -> str:
    """Keras' layer naming: ``MaxPooling2D`` -> ``max_pooling2d``, ``ReLU`` -> ``re_lu``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def sample_shape_message(what: str, expected, batch_shape) -> str:
    """Why a batch of shape ``batch_shape`` does not fit a model built for samples of
    shape ``expected`` (no batch axis), with the fix where the mistake is a common one."""
    expected, batch_shape = tuple(int(d) for d in expected), tuple(int(d) for d in batch_shape)
    got = batch_shape[1:]
    message = (
        f"{what}: the model expects samples of shape {expected}, that is batches of shape "
        f"(N, {', '.join(map(str, expected))}); got a batch of shape {batch_shape}."
    )
    if got == expected[:-1] and expected[-1] == 1:
        message += " The channel axis is missing: add it with x[..., None]."
    elif len(got) == 3 and len(expected) == 3 and got == (expected[2], *expected[:2]):
        message += (
            " tinycnn is channels-last, (N, H, W, C) as in Keras, and this batch looks "
            "channels-first (N, C, H, W): use x.transpose(0, 2, 3, 1)."
        )
    return message


class Sequential:
    """A linear stack of layers.

    Args:
        layers: list of layers; the first may give ``input_shape`` (without the batch
            axis, e.g. ``(28, 28, 1)``), in which case the model is built at once, as in
            Keras: every weight exists right after construction, all drawn from one
            seeded stream, and inputs of any other sample shape are refused. Without
            it, the model is built on first use, from the shape of the first batch.
        name: the model's name, shown by ``summary()``.
        seed: seed for the weight initialisation (same seed, same weights), and for
            the masks of Dropout layers without a seed of their own outside ``fit``
            (``train_on_batch``, ``forward(x, training=True)``); in ``fit``, its seed.
    """

    def __init__(self, layers=None, name: str = "sequential", seed=None):
        self.name = name
        self.layers: list[Layer] = []
        self.seed = seed
        self.input_shape = None
        self.built = False
        self.optimizer = None
        self.loss = None
        self.stop_training = False
        self.fit_seed = None  # the seed of the last fit (batch order, Dropout masks)
        self._steps = None  # what the last forward ran: layers, or fused pairs of them
        self._forward_caches = None  # each layer's cache after it: backward checks them
        self._device = None  # the backend named by to(), where build() creates weights
        self._rng = None  # the initialisation stream, kept so that add() continues it
        for layer in layers or []:
            self.add(layer)

    # ---- building -------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        """Append a layer, naming it ``conv2d``, ``conv2d_1``... if it has no name."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer, got {type(layer).__name__}.")
        if "params" not in vars(layer):
            raise TypeError(
                f"{type(layer).__name__}.__init__ must call super().__init__(**kwargs) first: "
                "the base class sets up params, grads and the name there."
            )
        if layer.name is None:
            base = snake_case(type(layer).__name__)
            taken = {other.name for other in self.layers}
            k = 0
            while (name := base if k == 0 else f"{base}_{k}") in taken:
                k += 1
            layer.name = name
        elif any(other.name == layer.name for other in self.layers):
            raise ValueError(f"Sequential: two layers are named {layer.name!r}; names must differ.")
        if hasattr(layer, "model_seed") and self.seed is not None:  # Dropout: masks seeded
            layer.model_seed = [self.seed, len(self.layers)]  # by (model seed, index)
        if self.built:  # a layer added to a built model continues the seeded stream
            with backend.use_backend(self.backend_name()):
                layer.build(self.output_shapes()[-1], self._rng)
        self.layers.append(layer)
        self._forward_caches = None
        if len(self.layers) == 1 and layer.input_shape is not None:
            self.build(layer.input_shape)  # declared input shape: build now, as Keras does

    def build(self, input_shape) -> None:
        """Create every layer's weights for samples of shape ``input_shape`` (no batch axis).

        A leading ``None`` (Keras' batch axis) is accepted and dropped.
        """
        input_shape = tuple(input_shape)
        if input_shape and input_shape[0] is None:
            input_shape = input_shape[1:]
        if not self.layers:
            raise ValueError(f"{self.name}: the model has no layers; add some first.")
        if self.input_shape is not None and input_shape != tuple(self.input_shape):
            raise ValueError(sample_shape_message("build", self.input_shape, (1, *input_shape)))
        self._rng = make_rng(self.seed)
        shape = input_shape
        with backend.use_backend(self.backend_name()):  # model.to(...) before the build
            for layer in self.layers:
                if not layer.built:
                    layer.build(shape, self._rng)
                shape = layer.compute_output_shape(shape)
        self.input_shape = input_shape
        self.built = True

    def check_sample_shape(self, x, what: str) -> None:
        """Build the model from ``x`` if needed, then refuse samples of the wrong shape.

        ``x`` is a batch ``(N, *input_shape)``; ``what`` names the caller in the message.
        """
        if not self.layers:
            raise ValueError(f"{what}: the model has no layers; add some first.")
        if x.ndim == 0:
            raise ValueError(f"{what}: expected a batch of samples (N, ...), got a scalar.")
        if not self.built:
            self.build(self.input_shape or x.shape[1:])
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(sample_shape_message(what, self.input_shape, x.shape))

    def output_shapes(self) -> list[tuple]:
        """Each layer's output shape (without the batch axis)."""
        self._require_built("output_shapes")
        shapes, shape = [], self.input_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
            shapes.append(shape)
        return shapes

    def _require_built(self, what: str) -> None:
        if not self.layers:
            raise ValueError(f"{what}: the model has no layers; add some first.")
        if not self.built and self.input_shape is not None:
            self.build(self.input_shape)
        if not self.built:
            raise RuntimeError(
                f"{what}: the model is not built yet. Give the first layer input_shape=..., "
                "call model.build((28, 28, 1)), or run it on data once."
            )

    def backend_name(self) -> str:
        """Where the weights are, or will be created: the backend named by :meth:`to`,
        else that of the weights, else the active one."""
        if self._device is not None:
            return self._device
        for layer in self.layers:
            for param in layer.params.values():
                return backend.backend_of(param)
        return backend.get_backend()

    # ---- forward and backward -------------------------------------------------------------
    def forward(self, x, training: bool = False, check_finite: bool = True):
        """Logits for a batch ``x`` of shape ``(N, *input_shape)``.

        The input is checked for NaN/inf once here (``check_finite``), not in every layer.
        """
        if not hasattr(x, "shape"):
            raise TypeError(f"Sequential.forward expects an array, got {type(x).__name__}.")
        self.check_sample_shape(x, "Sequential.forward")
        self._forward_caches = None
        # Usually one step per layer; on the CPU fast path, Conv2D(relu) + MaxPooling2D
        # pairs may run as one fused step (see fusion.py): same numbers, less time.
        self._steps = fusion.plan(self.layers, x)
        for k, step in enumerate(self._steps):
            x = step.forward(x, training=training, check_finite=check_finite and k == 0)
        self._forward_caches = [layer.cache for layer in self.layers]
        return x

    __call__ = forward

    def backward(self, dlogits, input_grad: bool = True):
        """Backpropagate dL/dlogits through every layer; returns dL/dx (or None).

        Fills each layer's ``grads``. ``input_grad=False`` skips the gradient with
        respect to the images, which training never uses. It backpropagates the last
        :meth:`forward`: a layer run on its own since then raises a RuntimeError
        rather than mix two passes.
        """
        self._check_caches()
        steps = self._steps or self.layers  # no forward yet: the last layer will say so
        grad = dlogits
        for k in range(len(steps) - 1, -1, -1):
            grad = steps[k].backward(grad, input_grad=input_grad or k > 0)
        return grad

    def _check_caches(self) -> None:
        """RuntimeError unless every layer still holds the cache of the last forward
        (or, before any, none)."""
        recorded = self._forward_caches or [None] * len(self.layers)
        for layer, cache in zip(self.layers, recorded, strict=True):
            if layer.cache is not cache:
                raise RuntimeError(
                    f"Sequential.backward: layer {layer.name!r} holds the cache of a forward "
                    "pass run on it alone, not of the last model.forward(). Call "
                    "model.forward(x, training=True) again, or backpropagate layer by layer "
                    "as well: for layer in reversed(model.layers): g = layer.backward(g)."
                )

    # ---- weights --------------------------------------------------------------------------
    def count_params(self) -> int:
        """The number of scalars in all the layers' parameters (as ``summary()``'s total)."""
        self._require_built("count_params")
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self) -> list:
        """All parameters as NumPy arrays, in Keras order (per layer: kernel, bias)."""
        self._require_built("get_weights")
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        """Inverse of :meth:`get_weights`; shapes must match exactly."""
        self._require_built("set_weights")
        total = sum(len(layer.params) for layer in self.layers)
        if len(weights) != total:
            raise ValueError(
                f"set_weights: the model has {total} weight arrays, got {len(weights)}."
            )
        checked, start = [], 0
        for layer in self.layers:  # check every layer before copying into any
            end = start + len(layer.params)
            checked.append(layer.check_weights(weights[start:end], "set_weights"))
            start = end
        for layer, pairs in zip(self.layers, checked, strict=True):
            layer.assign_weights(pairs)

    def clear_caches(self) -> None:
        """Drop what the layers kept for a backward pass (frees memory after training)."""
        for layer in self.layers:
            layer.cache = None
        self._steps = self._forward_caches = None

    def to(self, name: str) -> Sequential:
        """Move the weights (and the optimizer's state) to backend ``name``; on a model
        not built yet, the weights will be created there."""
        with backend.use_backend(name):  # a bad name, or CuPy without a GPU: fail now
            pass
        self._device = name
        for layer in self.layers:
            layer.to(name)
        self._steps = self._forward_caches = None  # the caches are gone with the move
        if self.optimizer is not None:
            self.optimizer.to(name)
        return self

    # ---- looking inside -------------------------------------------------------------------
    def activations(self, x, batch_size: int = 32) -> dict:
        """Every layer's output for the images ``x`` ``(N, *input_shape)``, in inference
        mode: ``{layer name: NumPy array (N, *output shape)}``, in the layers' order.

        ``batch_size`` images at a time, as :meth:`predict`. For feature maps::

            maps = model.activations(x_test[:1])["conv2d"]   # (1, 26, 26, 64)
        """
        return inspection.activations(self, x, batch_size)

    def input_gradient(self, x, class_index, batch_size: int = 32):
        """The gradient of the score (logit, before softmax) of class ``class_index``
        with respect to the input: a saliency map, as a NumPy array of ``x``'s shape.

        ``x`` is one image ``input_shape`` or a batch ``(N, *input_shape)``;
        ``class_index`` one class for all, or one per image. Inference mode (no
        Dropout); it overwrites the layers' ``grads``, as any backward pass does.
        """
        return inspection.input_gradient(self, x, class_index, batch_size)

    # ---- the Keras surface ------------------------------------------------------------------
    def summary(self, print_fn=print) -> None:
        """Print the Keras table: layer (type), output shape, parameter count, totals."""
        self._require_built("summary")
        rows = [
            (layer.name, type(layer).__name__, shape, layer.count_params())
            for layer, shape in zip(self.layers, self.output_shapes(), strict=True)
        ]
        trainable = sum(layer.count_trainable_params() for layer in self.layers)
        frozen = self.count_params() - trainable
        for line in summary_lines(self.name, rows, trainable, frozen):
            print_fn(line)

    def compile(self, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=None):
        """Choose how the model trains: the optimizer and the loss.

        Args:
            optimizer: ``"adam"`` or ``"sgd"`` (Keras' default settings), or an optimizer
                object such as ``tinycnn.optimizers.Adam(learning_rate=1e-3)``.
            loss: ``"sparse_categorical_crossentropy"``: softmax cross-entropy on the
                logits against integer labels (the last layer outputs logits, or ends
                in a softmax: then the loss takes the logits before it), or a loss object.
            metrics: accepted for Keras code; ``fit`` and ``evaluate`` always report the
                accuracy, the one metric there is (``None``, ``["accuracy"]``, ``["acc"]``).
        """
        if metrics not in (None, [], ["accuracy"], ("accuracy",), ["acc"]):
            raise ValueError(f"Only the 'accuracy' metric is supported, got {metrics!r}.")
        self.optimizer = optimizers.get(optimizer)
        self.optimizer.bind(self.layers)  # so that set_state can check shapes against them
        self.loss = losses.get(loss)
        if hasattr(self.loss, "output_layer") and self.layers:
            # a last layer ending in softmax: the loss takes its logits (see the loss)
            last = self.layers[-1]
            self.loss.output_layer = (
                last if getattr(last, "activation", None) == "softmax" else None
            )

    def train_on_batch(self, x, y):
        """One optimisation step on one batch; returns (loss, accuracy) as floats."""
        return training.train_on_batch(self, x, y)

    def fit(
        self,
        x,
        y,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data=None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        callbacks=None,
        verbose: int = 1,
        seed=None,
        initial_epoch: int = 0,
    ):
        """Train on images ``x`` ``(N, H, W, C)`` (floats) and labels ``y`` ``(N,)`` (ints).

        Args:
            x: the images, e.g. ``tinycnn.preprocessing.prepare_images(raw)``.
            y: their class labels, integers in [0, classes).
            epochs: train until this epoch number (counting from ``initial_epoch``).
            batch_size: samples per step; the last batch of an epoch may be smaller.
            validation_data: ``(x_val, y_val)`` evaluated after each epoch.
            validation_split: or hold out this last fraction of ``x``, ``y`` for validation.
            shuffle: new random sample order each epoch.
            callbacks: list of :class:`~tinycnn.callbacks.Callback`.
            verbose: 0 silent, 1 a live progress bar per epoch, 2 one line per epoch.
            seed: fixes the sample order and the Dropout masks. None: fresh randomness,
                except when resuming (``initial_epoch > 0``): then the seed of the model's
                previous fit, ``model.fit_seed``, so the resumed run equals an unbroken one.
            initial_epoch: epoch to start from (to resume from a checkpoint).
        Returns:
            A :class:`~tinycnn.callbacks.History`: ``history.history["loss"]``
            etc. have one value per epoch, ``history.batch_history["loss"]`` one per
            step, ``history.epoch_seconds`` each epoch's training time.

        Training that diverges (a NaN or infinite loss) stops at that step with a warning
        and the weights from before it; ``history.stopped_reason`` then says
        ``"non-finite loss"`` and ``history.stopped_epoch``/``stopped_step`` say where.
        The loop itself: ``tinycnn/training/loop.py``.
        """
        return training.fit(
            self,
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            validation_data=validation_data,
            validation_split=validation_split,
            shuffle=shuffle,
            callbacks=callbacks,
            verbose=verbose,
            seed=seed,
            initial_epoch=initial_epoch,
        )

    def evaluate(self, x, y, batch_size: int = 32, verbose: int = 0, return_dict: bool = False):
        """Mean loss and accuracy on ``(x, y)``: ``[loss, accuracy]`` like Keras."""
        return training.evaluate(
            self, x, y, batch_size=batch_size, verbose=verbose, return_dict=return_dict
        )

    def predict(self, x, batch_size: int = 32, verbose: int = 0):
        """Logits for ``x``, computed batch by batch; a NumPy array ``(N, classes)``."""
        return training.predict(self, x, batch_size=batch_size, verbose=verbose)

    def save(self, path) -> None:
        """Write architecture, weights and optimizer state to one ``.npz`` file, atomically.

        ``tinycnn.load_model(path)`` reads it back."""
        saving.save_model(self, path)

    def save_weights(self, path) -> None:
        """Write the weights alone to one ``.npz`` file, atomically (no architecture, no
        optimizer state): :meth:`load_weights` reads them into a model built the same way."""
        saving.save_weights(self, path)

    def load_weights(self, path) -> None:
        """Load the weights of a file written by :meth:`save_weights` or :meth:`save`
        into this model (same architecture); every shape is checked first."""
        saving.load_weights(self, path)

    def get_config(self) -> dict:
        """The model's name, input shape and each layer's class and configuration (what
        ``save`` stores to rebuild the model), as JSON-friendly values."""
        return {
            "name": self.name,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "layers": [
                {"class_name": type(layer).__name__, "config": _layer_config(layer)}
                for layer in self.layers
            ],
        }

    def __repr__(self) -> str:
        return f"<Sequential {self.name!r}: {len(self.layers)} layers>"


def _layer_config(layer: Layer) -> dict:
    """``layer.get_config()``, with a warning when a layer of one's own forgot to return
    an argument of its ``__init__`` (``load_model`` would rebuild it with the default)."""
    config = layer.get_config()
    missing = custom.unsaved_arguments(layer, config)
    if missing:
        warnings.warn(
            f"{type(layer).__name__}.get_config() does not return {missing}, which its "
            "__init__ takes: load_model would rebuild the layer with their defaults. "
            "Override get_config: return {**super().get_config(), "
            + ", ".join(f"{m!r}: self.{m}" for m in missing)
            + "}.",
            stacklevel=3,
        )
    return config
