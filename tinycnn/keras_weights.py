"""Keras weight files, read into a tinycnn model and written from one (the extra ``keras``).

    tinycnn.load_keras_weights(model, "seed.weights.h5")  # Keras 3: model.save_weights(...)
    tinycnn.load_keras_weights(model, "seed.h5")          # Keras 2 (weights or whole model)
    tinycnn.load_keras_weights(model, "seed.keras")       # the weights inside a .keras model
    tinycnn.save_keras_weights(model, "mine.weights.h5")  # keras_model.load_weights reads it

Nothing is converted: tinycnn keeps Keras's layouts. A Conv2D kernel is ``(kh, kw, C, F)``
and a Dense kernel ``(inputs, units)`` in both; images are channels-last in both, so
Flatten puts the features in the same (row, column, channel) order and the first Dense
kernel's rows line up. Each layer's arrays come in the same order: kernel, then bias;
BatchNormalization's gamma, beta, moving_mean, moving_variance (the moving averages too:
they are weights of the model, which inference needs).

Both formats are HDF5 files (read and written with h5py). **Keras 3** ``.weights.h5``::

    vars                          attrs name="sequential"   (the model's own variables: none)
    layers/conv2d/vars/0          (3, 3, 1, 64)    kernel   attrs of vars: name="conv2d"
    layers/conv2d/vars/1          (64,)            bias
    layers/max_pooling2d/vars     (no arrays)
    layers/conv2d_1/vars/0, 1     the second Conv2D layer
    layers/dense/vars/0, 1 ...    (a compiled model adds optimizer/vars/0, 1, ...)

A layer's group is named after its kind and its place among the layers of that kind
(``conv2d_1``: the model's second Conv2D), never after the layer's own name, which Keras
numbers per session (a second model in a notebook has ``conv2d_2``). HDF5 lists groups
alphabetically, so the file cannot say whether ``dense`` comes before ``conv2d_1``: the
model says it. Each layer with weights takes the group of its kind and place, as Keras
3's own ``load_weights`` does. Keras 2.13 to 2.15 wrote ``_layer_checkpoint_dependencies``
where Keras 3 writes ``layers``; both are read.

**Keras 2** ``.h5`` (``model.save_weights("w.h5")``; ``model.save("m.h5")`` holds the same
inside a group ``model_weights``)::

    attrs layer_names = [b"conv2d", b"max_pooling2d", ..., b"dense_1"]   every layer, in order
    conv2d/                attrs weight_names = [b"conv2d/kernel:0", b"conv2d/bias:0"]
    conv2d/conv2d/kernel:0 (3, 3, 1, 64)

The names are a session's, so the layers with weights are matched by order, as Keras 2's
``load_weights`` does: the file's first layer with weights goes to the model's first.

Loading reads and checks everything (format, number of layers, every shape) before it
copies anything: a file that does not fit leaves the model as it was.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import numpy

from .atomic_file import write_bytes_atomic
from .models.sequential import snake_case

try:
    import h5py
except ImportError:  # the extra "keras" is not installed: the first call says so
    h5py = None

__all__ = ["KerasWeightsError", "keras3_group_names", "load_keras_weights", "save_keras_weights"]

# A .keras model is a zip archive; its weights are this Keras 3 .weights.h5 file inside.
KERAS_ARCHIVE_WEIGHTS = "model.weights.h5"

# Written into Keras 2 files. Keras 2 converts the kernels of files that say version "1"
# or backend "theano" (other layouts): these say "already in TensorFlow's layout".
KERAS2_VERSION = b"2.15.0"
KERAS2_BACKEND = b"tensorflow"


class KerasWeightsError(ValueError):
    """A Keras weights file that cannot be read, or whose weights do not fit the model."""


def load_keras_weights(model, path) -> None:
    """Copy the weights of a Keras weights file into ``model`` (a built tinycnn Sequential).

    ``path``: a Keras 3 ``.weights.h5`` (``keras_model.save_weights``), a Keras 2 ``.h5``
    (``save_weights`` or a whole model's ``save``), or a ``.keras`` model (its weights).
    The file's layers with weights are matched to the model's: by kind and place in a
    Keras 3 file, by order in a Keras 2 file (see the module's docstring). Every count
    and shape is checked before anything is copied; on a :class:`KerasWeightsError`
    the model keeps its weights.

    The final ``Dense(10, activation="softmax")`` of a Keras classifier and tinycnn's
    ``Dense(10)`` (logits; the loss applies the softmax) hold the same weights:
    ``tinycnn.softmax(model.predict(x))`` is then Keras's ``predict(x)``.
    """
    _require_h5py("load_keras_weights")
    model._require_built("load_keras_weights")
    where = f"load_keras_weights: {path}"
    layers = [layer for layer in model.layers if layer.params]
    with _open_for_reading(Path(path), where) as file:
        saved = _read(file, layers, where)
    weights = []
    for position, (layer, (label, arrays)) in enumerate(zip(layers, saved, strict=True), 1):
        _check_fits(layer, label, arrays, position, where)
        weights.extend(arrays)
    model.set_weights(weights)  # every layer is checked above: this copies them all


def save_keras_weights(model, path) -> None:
    """Write the weights of ``model`` as a Keras weights file, atomically.

    ``path`` ending in ``.weights.h5``: Keras 3's layout; in ``.h5`` (or ``.hdf5``):
    Keras 2's. Keras chooses the reader by the name, so no other ending is accepted.
    ``keras_model.load_weights(path)`` reads either into a Keras model built the same
    way (the seed network: see ``docs/from_keras.md``), and so does
    :func:`load_keras_weights`.
    """
    _require_h5py("save_keras_weights")
    model._require_built("save_keras_weights")
    name = str(path)
    if name.endswith(".weights.h5"):
        write = _write_keras3
    elif name.endswith((".h5", ".hdf5")):
        write = _write_keras2
    else:
        raise ValueError(
            f"save_keras_weights: {path}: end the file name with .weights.h5 (Keras 3's "
            "layout) or .h5 (Keras 2's): Keras picks how to read a weights file by its name."
        )
    buffer = io.BytesIO()  # built in memory, then written whole: never half a file on disk
    with h5py.File(buffer, "w") as file:
        write(file, model)
    write_bytes_atomic(path, buffer.getvalue())


# ---- reading ----------------------------------------------------------------------------
def _require_h5py(what: str) -> None:
    if h5py is None:
        raise ImportError(
            f"{what} reads and writes HDF5 files with h5py, which is not installed: "
            'pip install "tinycnn[keras]"'
        )


def _open_for_reading(path: Path, where: str):
    """The open HDF5 file: ``path`` itself, or the weights inside a ``.keras`` archive."""
    if not path.is_file():
        raise FileNotFoundError(f"{where}: no such file.")
    source = path
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                if KERAS_ARCHIVE_WEIGHTS not in archive.namelist():
                    raise KerasWeightsError(
                        f"{where}: a zip archive without {KERAS_ARCHIVE_WEIGHTS}: "
                        "not a Keras .keras model."
                    )
                source = io.BytesIO(archive.read(KERAS_ARCHIVE_WEIGHTS))
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
            raise KerasWeightsError(f"{where}: a damaged .keras archive ({err}).") from err
    try:
        return h5py.File(source, "r")
    except OSError as err:  # not HDF5 at all, or cut short (h5py: "truncated file")
        raise KerasWeightsError(
            f"{where}: not a readable HDF5 file (h5py: {err}). Expected a Keras weights "
            "file: .weights.h5 (Keras 3), .h5 (Keras 2) or .keras."
        ) from err


def _read(file, layers, where: str) -> list[tuple[str, list[numpy.ndarray]]]:
    """``(the file's name for the layer, its arrays)`` for each of ``layers``, in order."""
    try:
        if "layers" in file or "_layer_checkpoint_dependencies" in file:
            return _match_keras3(file, layers, where)
        group = file["model_weights"] if "model_weights" in file else file
        if _string_list(group, "layer_names") is not None:
            return _match_keras2(group, layers, where)
    except KerasWeightsError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:  # damaged inside, or cut short
        raise KerasWeightsError(f"{where}: a damaged Keras weights file ({err}).") from err
    raise KerasWeightsError(
        f"{where}: an HDF5 file, but not Keras weights: it has no group 'layers' "
        "(Keras 3 .weights.h5) and no attribute 'layer_names' (Keras 2 .h5)."
    )


def _match_keras3(file, layers, where: str):
    """Each layer takes the group named after its kind and place (``conv2d_1``)."""
    root_name = "layers" if "layers" in file else "_layer_checkpoint_dependencies"
    root = file[root_name]
    saved = {name: _keras3_arrays(root[name]) for name in root}
    in_file = sorted((name for name, arrays in saved.items() if arrays), key=_natural)
    wanted = keras3_group_names(layers)
    if sorted(wanted, key=_natural) != in_file:
        missing = [name for name in wanted if name not in saved or not saved[name]]
        unused = [name for name in in_file if name not in wanted]
        raise KerasWeightsError(
            f"{where}: the file's layers with weights do not match the model's. "
            f"The file has {len(in_file)}: {', '.join(in_file) or 'none'}; the model has "
            f"{len(layers)}: {_describe(layers)}, which read {', '.join(wanted) or 'nothing'}"
            f" (Keras 3 names a layer's group after its kind and place)."
            + (f" Not in the file: {', '.join(missing)}." if missing else "")
            + (f" Nothing in the model for: {', '.join(unused)}." if unused else "")
        )
    return [(f"{root_name}/{name}", saved[name]) for name in wanted]


def keras3_group_names(layers) -> list[str]:
    """Keras 3's group name of each layer: its kind in snake case, numbered from the
    second layer of that kind on (``conv2d``, ``conv2d_1``, ``dense``, ``dense_1``)."""
    seen: dict[str, int] = {}
    names = []
    for layer in layers:
        kind = snake_case(type(layer).__name__)
        count = seen.get(kind, 0)
        seen[kind] = count + 1
        names.append(kind if count == 0 else f"{kind}_{count}")
    return names


def _keras3_arrays(group) -> list[numpy.ndarray]:
    """The arrays of ``<group>/vars/0``, ``1``, ... in that order (none for Flatten)."""
    variables = group.get("vars") if isinstance(group, h5py.Group) else None
    if variables is None:
        return []
    keys = sorted(variables, key=int)  # "10" after "9"; a key that is not a number: damaged
    if keys != [str(i) for i in range(len(keys))]:
        raise KerasWeightsError(f"{group.name}/vars holds {keys}, expected 0, 1, ... in a row.")
    return [numpy.asarray(variables[key][()]) for key in keys]


def _match_keras2(group, layers, where: str):
    """The file's layers with weights, in its ``layer_names`` order, one per model layer."""
    saved = []
    for name in _string_list(group, "layer_names"):
        layer_group = group[name]
        weight_names = _string_list(layer_group, "weight_names") or []
        if weight_names:
            saved.append((name, [numpy.asarray(layer_group[w][()]) for w in weight_names]))
    if len(saved) != len(layers):
        raise KerasWeightsError(
            f"{where}: the file has {len(saved)} layers with weights "
            f"({', '.join(name for name, _ in saved) or 'none'}), the model has {len(layers)} "
            f"({_describe(layers)}); a Keras 2 file is matched layer by layer, in order."
        )
    return saved


def _string_list(group, name: str) -> list[str] | None:
    """The strings of attribute ``name``, or of ``name0``, ``name1``, ...: Keras 2 cuts a
    list bigger than HDF5's 64 KiB attribute limit into such pieces. None if absent."""
    if name in group.attrs:
        pieces = [group.attrs[name]]
    else:
        pieces = []
        while f"{name}{len(pieces)}" in group.attrs:
            pieces.append(group.attrs[f"{name}{len(pieces)}"])
        if not pieces:
            return None
    return [
        item.decode("utf8") if isinstance(item, bytes) else str(item)
        for piece in pieces
        for item in numpy.atleast_1d(piece)
    ]


def _check_fits(layer, label: str, arrays, position: int, where: str) -> None:
    """The file's arrays for one layer have the layer's count, shapes and a float type."""
    expected = [tuple(value.shape) for value in layer.params.values()]
    got = [tuple(value.shape) for value in arrays]
    if got != expected:
        names = ", ".join(
            f"{key} {shape}" for key, shape in zip(layer.params, expected, strict=True)
        )
        raise KerasWeightsError(
            f"{where}: layer with weights {position} does not fit: the file's {label} has "
            f"{len(got)} arrays {', '.join(map(str, got))}; the model's {layer.name} "
            f"({type(layer).__name__}) needs {names}. Nothing was loaded."
        )
    for value in arrays:
        if value.dtype.kind != "f":
            raise KerasWeightsError(
                f"{where}: the file's {label} holds {value.dtype} values; expected floating "
                "point (float16, float32 or float64). Nothing was loaded."
            )


def _describe(layers) -> str:
    return ", ".join(f"{layer.name} ({type(layer).__name__})" for layer in layers) or "none"


def _natural(name: str):
    """Sort key: ``conv2d``, ``conv2d_1``, ``conv2d_2``, ..., ``conv2d_10``."""
    kind, _, number = name.rpartition("_")
    return (kind, int(number)) if number.isdigit() and kind else (name, -1)


# ---- writing ----------------------------------------------------------------------------
def _write_keras3(file, model) -> None:
    """Keras 3's ``.weights.h5`` layout (see the module's docstring), as Keras writes it."""
    file.create_group("vars").attrs["name"] = model.name
    root = file.create_group("layers")
    for layer, name in zip(model.layers, keras3_group_names(model.layers), strict=True):
        variables = root.create_group(name).create_group("vars")
        variables.attrs["name"] = layer.name
        for index, value in enumerate(layer.get_weights()):
            variables.create_dataset(str(index), data=value)


def _write_keras2(file, model) -> None:
    """Keras 2's ``save_weights_to_hdf5_group`` layout (see the module's docstring)."""
    file.attrs["layer_names"] = numpy.array([layer.name.encode("utf8") for layer in model.layers])
    file.attrs["backend"] = KERAS2_BACKEND
    file.attrs["keras_version"] = KERAS2_VERSION
    for layer in model.layers:
        group = file.create_group(layer.name)
        names = [f"{layer.name}/{key}:0".encode() for key in layer.params]
        # Keras 2 stores a layer without weights as an empty list, which h5py keeps as float64
        group.attrs["weight_names"] = numpy.array(names) if names else numpy.array([])
        for name, value in zip(names, layer.get_weights(), strict=True):
            group.create_dataset(name.decode("utf8"), data=value)
