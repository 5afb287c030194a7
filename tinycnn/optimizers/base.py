"""The optimizer base class: walks the layers and updates each parameter in place."""

from __future__ import annotations

from .. import backend


class Optimizer:
    """Updates every ``layer.params[key]`` from ``layer.grads[key]``.

    Subclasses implement ``update_param(param, grad, state)``, which changes ``param``
    in place (so every reference to the array sees the new weights) and keeps what it
    remembers between steps (momentum, moments) in the dict ``state``.

    Attributes:
        learning_rate: may be changed between steps (schedules, callbacks).
        iterations: number of steps taken.
    """

    def __init__(self, learning_rate: float):
        if not float(learning_rate) > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate!r}.")
        self.learning_rate = float(learning_rate)
        self.iterations = 0
        self.state: dict[str, dict] = {}  # "layer_name/param_name" -> per-parameter state

    def step(self, layers) -> None:
        """Apply one update to every parameter of ``layers`` that has a gradient."""
        self.iterations += 1
        for layer in layers:
            for key, param in layer.params.items():
                grad = layer.grads.get(key)
                if grad is None:
                    continue
                slot = self.state.setdefault(f"{layer.name}/{key}", {})
                self.update_param(param, grad, slot)

    def update_param(self, param, grad, state: dict) -> None:
        raise NotImplementedError

    # ---- saving and moving ------------------------------------------------------------
    def get_config(self) -> dict:
        return {"name": type(self).__name__, "learning_rate": self.learning_rate}

    def get_state(self) -> dict:
        """Flat dict of arrays (``"dense/kernel/m"``) plus the step count, for saving."""
        flat = {"iterations": self.iterations}
        for param_key, slot in self.state.items():
            for name, value in slot.items():
                flat[f"{param_key}/{name}"] = value
        return flat

    def set_state(self, flat: dict) -> None:
        """Inverse of :meth:`get_state` (arrays are moved to the active backend)."""
        self.iterations = int(flat.get("iterations", 0))
        self.state = {}
        for key, value in flat.items():
            if key == "iterations":
                continue
            param_key, name = key.rsplit("/", 1)
            self.state.setdefault(param_key, {})[name] = backend.to_backend(value)

    def to(self, name: str) -> Optimizer:
        self.state = {
            k: {n: backend.to_backend(v, name) for n, v in slot.items()}
            for k, slot in self.state.items()
        }
        return self
