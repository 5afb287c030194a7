"""Saving and loading models: one ``.npz`` file, written atomically, read without pickle.

What the file holds (NumPy's ``.npz`` is a zip of ``.npy`` arrays):

    __format__         "tinycnn-model-1"
    __architecture__   the model's configuration as JSON (layer classes and arguments)
    __compile__        the optimizer's and loss's configuration as JSON (if compiled)
    weights/<layer>/<name>        every parameter, e.g. weights/conv2d/kernel
    optimizer/<layer>/<name>/<slot>  the optimizer's state (Adam's m and v), and
    optimizer/iterations          its step count

Safety: ``numpy.load(..., allow_pickle=False)`` refuses object arrays, so a file from
a stranger cannot run code when loaded; strings are stored as plain unicode arrays.
Atomicity: the file is written under a temporary name in the same folder, flushed to
disk, then renamed over the target in one step (``os.replace``). A crash or Ctrl-C
while saving leaves the previous file untouched.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy

from . import backend
from .layers import from_config
from .models.sequential import Sequential

FORMAT = "tinycnn-model-1"


class ModelFileError(ValueError):
    """A model file that is missing parts, corrupt, or not a tinycnn model."""


# ---- writing ------------------------------------------------------------------------------
def atomic_write(path, write) -> None:
    """Call ``write(file)`` on a temporary file, then rename it to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, path)
    except BaseException:  # also KeyboardInterrupt: never leave the temporary file behind
        tmp.unlink(missing_ok=True)
        raise


def model_arrays(model: Sequential) -> dict[str, numpy.ndarray]:
    """Everything :func:`save_model` writes, as a dict of NumPy arrays."""
    arrays = {
        "__format__": numpy.array(FORMAT),
        "__architecture__": numpy.array(json.dumps(model.get_config())),
    }
    for layer in model.layers:
        for key, value in layer.params.items():
            arrays[f"weights/{layer.name}/{key}"] = backend.to_numpy(value)
    if model.optimizer is not None and model.loss is not None:
        compile_config = {
            "optimizer": model.optimizer.get_config(),
            "loss": model.loss.get_config()["name"],
        }
        arrays["__compile__"] = numpy.array(json.dumps(compile_config))
        for key, value in model.optimizer.get_state().items():
            is_count = key == "iterations"
            arrays[f"optimizer/{key}"] = (
                numpy.asarray(value) if is_count else backend.to_numpy(value)
            )
    return arrays


def save_model(model: Sequential, path) -> None:
    """Write ``model`` (architecture, weights, optimizer state) to ``path`` atomically."""
    model._require_built("save")
    arrays = model_arrays(model)
    atomic_write(path, lambda f: numpy.savez(f, **arrays))


# ---- reading -------------------------------------------------------------------------------
def read_arrays(path) -> dict[str, numpy.ndarray]:
    """All arrays of a ``.npz`` file, refusing pickled objects, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {str(path)!r}.")
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"  # an .npz file is a zip archive
    if not is_zip:
        raise ModelFileError(
            f"{str(path)!r} is not a tinycnn model file: expected an .npz archive written "
            "by model.save()."
        )
    try:
        with numpy.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ModelFileError(
            f"{str(path)!r} is not a readable tinycnn model file (corrupt or truncated: {err})."
        ) from err
    except ValueError as err:  # "Object arrays cannot be loaded when allow_pickle=False"
        raise ModelFileError(
            f"{str(path)!r} contains pickled objects, which tinycnn never writes and refuses "
            f"to load (they could run code): {err}"
        ) from err
    if "__format__" not in arrays or str(arrays["__format__"]) != FORMAT:
        raise ModelFileError(f"{str(path)!r} is not a tinycnn model file (no {FORMAT!r} mark).")
    return arrays


def _json(arrays, key, path):
    try:
        return json.loads(str(arrays[key]))
    except (KeyError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{str(path)!r}: the {key} entry is missing or damaged.") from err


def set_weights_from(model: Sequential, arrays, path) -> None:
    """Copy ``weights/<layer>/<name>`` arrays into ``model``, checking every shape first,
    so that a file that does not fit leaves the model untouched."""
    values = []
    for layer in model.layers:
        for key, current in layer.params.items():
            name = f"weights/{layer.name}/{key}"
            if name not in arrays:
                raise ModelFileError(
                    f"{str(path)!r} has no weights for layer {layer.name!r} {key}."
                )
            value = arrays[name]
            if value.shape != tuple(current.shape):
                raise ValueError(
                    f"Cannot load {str(path)!r} into layer {layer.name!r}: its {key} has shape "
                    f"{tuple(current.shape)} in the model but {value.shape} in the file."
                )
            values.append(value)
    model.set_weights(values)  # same order as the loop above: per layer, per parameter


def load_weights(model: Sequential, path) -> None:
    """Load only the weights of a saved model into ``model`` (same architecture)."""
    model._require_built("load_weights")
    set_weights_from(model, read_arrays(path), path)


def load_model(path, compile: bool = True) -> Sequential:
    """Rebuild a model saved by ``model.save(path)``: architecture, weights, optimizer."""
    arrays = read_arrays(path)
    config = _json(arrays, "__architecture__", path)
    weights = [v for k, v in arrays.items() if k.startswith("weights/")]
    dtype = weights[0].dtype.name if weights else backend.floatx()
    try:
        layers = [from_config(spec["class_name"], spec["config"]) for spec in config["layers"]]
    except (KeyError, TypeError) as err:
        raise ModelFileError(f"{str(path)!r}: the architecture entry is damaged ({err}).") from err
    model = Sequential(layers, name=config.get("name", "sequential"))
    if config.get("input_shape") is not None:
        with backend.use_floatx(dtype):
            model.build(tuple(config["input_shape"]))
        set_weights_from(model, arrays, path)
    if compile and "__compile__" in arrays:
        from . import optimizers

        compile_config = _json(arrays, "__compile__", path)
        model.compile(
            optimizer=optimizers.from_config(compile_config["optimizer"]),
            loss=compile_config["loss"],
        )
        prefix = "optimizer/"
        state = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        model.optimizer.set_state(state)
    return model
