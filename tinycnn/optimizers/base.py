"""The optimizer base class: walks the layers and updates each parameter in place."""

from __future__ import annotations

import math
import operator

from .. import backend


class Optimizer:
    """Updates every ``layer.params[key]`` from ``layer.grads[key]``.

    Subclasses implement ``update_param(param, grad, state, lr)``, which changes
    ``param`` in place (so every reference to the array sees the new weights) with this
    step's learning rate ``lr`` and keeps what it remembers between steps (momentum,
    moments) in the dict ``state``. ``lr`` is ``step_learning_rate()``, computed once
    per step: the learning rate, or Adam's bias-corrected lr_t.

    Attributes:
        learning_rate: may be changed between steps (schedules, callbacks).
        iterations: number of steps taken.
        slots: the names of the arrays ``update_param`` keeps per parameter, each of the
            parameter's shape and dtype (Adam: ``("m", "v")``); ``None`` = not declared.
    """

    slots: tuple[str, ...] | None = None

    def __init__(self, learning_rate: float):
        if not (math.isfinite(float(learning_rate)) and float(learning_rate) > 0):
            raise ValueError(f"learning_rate must be positive and finite, got {learning_rate!r}.")
        self.learning_rate = float(learning_rate)
        self.iterations = 0
        self.state: dict[str, dict] = {}  # "layer_name/param_name" -> per-parameter state
        self._layers = None  # the model's layers, once bound to it (compile does that)
        self._state_unchecked = False  # state given by set_state, not yet checked

    def step(self, layers) -> None:
        """Apply one update to every parameter of ``layers`` that has a gradient, except
        those of frozen layers (``layer.trainable = False``) and those a layer never trains
        (``layer.non_trainable``)."""
        if self._state_unchecked:  # state set before the parameters existed: check it now
            self.check_state(layers)
        self.iterations += 1
        lr = self.step_learning_rate()
        for layer in layers:
            for key, param in layer.trainable_params().items():
                grad = layer.grads.get(key)
                if grad is None:
                    continue
                slot = self.state.setdefault(f"{layer.name}/{key}", {})
                self.update_param(param, grad, slot, lr)

    def step_learning_rate(self) -> float:
        """The learning rate of the step being taken (its number is ``self.iterations``)."""
        return self.learning_rate

    def update_param(self, param, grad, state: dict, lr: float) -> None:
        """Update ``param`` in place from ``grad`` (same shape) with this step's learning
        rate ``lr``, keeping what must be remembered between steps in ``state``."""
        raise NotImplementedError

    # ---- saving and moving ------------------------------------------------------------
    def get_config(self) -> dict:
        """The optimizer's class name and settings, as JSON-friendly values."""
        return {"name": type(self).__name__, "learning_rate": self.learning_rate}

    def get_state(self) -> dict:
        """Flat dict of arrays (``"dense/kernel/m"``) plus the step count, for saving."""
        flat = {"iterations": self.iterations}
        for param_key, slot in self.state.items():
            for name, value in slot.items():
                flat[f"{param_key}/{name}"] = value
        return flat

    def set_state(self, flat: dict) -> None:
        """Inverse of :meth:`get_state` (the arrays are copied to the active backend).

        Every array must have the shape and dtype of its parameter: the compiled update
        kernels trust them, and a wrong one would write past the end of an array. Once
        the optimizer is bound to a built model (``compile`` binds it), the state is
        checked here, and a ValueError leaves the optimizer unchanged; before that, at
        :meth:`bind` or at the first :meth:`step`.
        """
        if not isinstance(flat, dict):
            raise TypeError(
                f"set_state expects a dict like get_state()'s, got {type(flat).__name__}."
            )
        iterations = _step_count(flat.get("iterations", 0))
        state: dict[str, dict] = {}
        for key, value in flat.items():
            if key == "iterations":
                continue
            param_key, _, name = str(key).rpartition("/")
            if "/" not in param_key or not name:
                raise ValueError(
                    f"set_state: key {key!r} is not 'layer/parameter/slot' (like 'dense/kernel/m')."
                )
            if not (hasattr(value, "shape") and hasattr(value, "dtype")):
                raise TypeError(f"set_state: {key!r} must be an array, got {type(value).__name__}.")
            # a copy: the optimizer updates its state in place, never the caller's arrays
            state.setdefault(param_key, {})[name] = backend.to_backend(value).copy()
        if self._layers is not None and all(layer.built for layer in self._layers):
            self.check_state(self._layers, state)  # raises before anything changes
            unchecked = False
        else:
            unchecked = bool(state)
        self.iterations, self.state, self._state_unchecked = iterations, state, unchecked

    def bind(self, layers) -> None:
        """Attach the optimizer to a model's ``layers`` (``compile`` calls this).

        State it already holds is checked against their parameters now if they are built,
        else at the first :meth:`step`.
        """
        self._layers = layers
        self._state_unchecked = bool(self.state)
        if self._state_unchecked and all(layer.built for layer in layers):
            self.check_state(layers)

    def check_state(self, layers, state: dict | None = None) -> None:
        """ValueError unless every array of ``state`` (default: the optimizer's own) belongs
        to a parameter of ``layers`` and has that parameter's shape and dtype.

        Arrays on another backend than their parameter are moved to it.
        """
        if state is None:
            state = self.state
        params = {f"{layer.name}/{key}": p for layer in layers for key, p in layer.params.items()}
        for param_key, slot in state.items():
            if param_key not in params:
                raise ValueError(
                    f"Optimizer state for {param_key!r}, but the model has no such parameter "
                    f"(it has {sorted(params)})."
                )
            param = params[param_key]
            if self.slots is not None and set(slot) != set(self.slots):
                raise ValueError(
                    f"Optimizer state for {param_key!r} holds {sorted(slot)}; "
                    f"{type(self).__name__} keeps {list(self.slots)} per parameter."
                )
            for name, value in slot.items():
                if tuple(value.shape) != tuple(param.shape) or value.dtype != param.dtype:
                    raise ValueError(
                        f"Optimizer state {param_key}/{name} has shape {tuple(value.shape)} "
                        f"({value.dtype}), but the parameter {param_key} has shape "
                        f"{tuple(param.shape)} ({param.dtype}): they must be the same."
                    )
                where = backend.backend_of(param)
                if backend.backend_of(value) != where:
                    slot[name] = backend.to_backend(value, where)
        if state is self.state:
            self._state_unchecked = False

    def to(self, name: str) -> Optimizer:
        """Move the per-parameter state (momentum, moments) to backend ``name``."""
        self.state = {
            k: {n: backend.to_backend(v, name) for n, v in slot.items()}
            for k, slot in self.state.items()
        }
        return self


def _step_count(value) -> int:
    """The step count of a saved state: a non-negative integer (a Python or NumPy int)."""
    try:
        count = operator.index(value)
    except TypeError:
        raise TypeError(f"set_state: 'iterations' must be an integer, got {value!r}.") from None
    if count < 0:
        raise ValueError(f"set_state: 'iterations' must be >= 0, got {count}.")
    return count
