"""Saving and loading models: one ``.npz`` file, written atomically, read with suspicion.

What the file holds (NumPy's ``.npz`` is a zip of ``.npy`` arrays):

    __format__         "tinycnn-model-1"
    __architecture__   the model's configuration as JSON (layer classes and arguments)
    __compile__        the optimizer's and loss's configuration as JSON (if compiled)
    weights/<layer>/<name>        every parameter, e.g. weights/conv2d/kernel
    optimizer/<layer>/<name>/<slot>  the optimizer's state (Adam's m and v), and
    optimizer/iterations          its step count
    __training__       {"fit_seed": ...} as JSON: the seed of the last fit (batch order and
                       Dropout masks), so that fit(initial_epoch=k) resumes it exactly

``model.save_weights(path)`` writes ``__format__`` and the weights only: the same
format, which ``model.load_weights`` reads with the same checks.

Writing goes through :func:`tinycnn.atomic_file.atomic_write`: a crash, Ctrl-C or SIGTERM
while saving leaves the previous file untouched, and two threads may save at once.

Reading treats the file as untrusted input, say a model downloaded from a stranger:

* no pickle, ever: a member whose ``.npy`` header declares Python objects is refused
  before it is read, so loading a file cannot run code;
* only the members the format names are read, and each is checked before it is read:
  the shape and dtype in its ``.npy`` header must be those the architecture implies,
  and its size in the zip must agree with them. The architecture's parameter shapes
  come from a shape-only walk (``Layer.param_shapes``), before any weight exists. So
  a small file cannot make the loader allocate gigabytes (a compressed zip member may
  unpack to 1000 times its size), whatever it claims;
* unknown, duplicated or too many members are refused;
* every failure is a :class:`ModelFileError` that says what is wrong; weights holding
  NaN or infinity load, with a warning.

This module knows the file and receives the model (or its layers) it works on; it
never imports ``tinycnn.models``. ``tinycnn.load_model``, which builds a new Sequential
from a file, lives with the models (``models/loading.py``) and calls :func:`read_contents`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import reprlib
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy
from numpy.lib import format as npy

from . import backend, losses, optimizers
from .atomic_file import atomic_write

FORMAT = "tinycnn-model-1"
FORMAT_FAMILY = "tinycnn-model-"  # FORMAT without its version number

# Limits for reading. A model of a thousand layers with Adam has about 6,000 members and
# an architecture of about 200,000 characters: the limits are far above real files.
MAX_MEMBERS = 20_000
MAX_DIRECTORY_BYTES = MAX_MEMBERS * 512  # the zip's table of contents
MAX_JSON_CHARS = 2_000_000
MAX_HEADER_BYTES = 10_000  # of one .npy header (NumPy's own default limit)
# Deflate, the zip compression, turns at most 1032 bytes into one (258-byte matches of
# 2 bits each); a member claiming more is lying about its size.
MAX_DEFLATE_RATIO = 1032
WEIGHT_DTYPES = ("float32", "float64")


class ModelFileError(ValueError):
    """A model file that is missing parts, corrupt, crafted or not a tinycnn model."""


# ---- writing ------------------------------------------------------------------------------
def weight_arrays(model) -> dict[str, numpy.ndarray]:
    """The format mark and every weight, as :func:`save_weights` writes them."""
    arrays = {"__format__": numpy.array(FORMAT)}
    for layer in model.layers:
        for key, value in layer.params.items():
            arrays[f"weights/{layer.name}/{key}"] = backend.to_numpy(value)
    return arrays


def _architecture_json(model) -> str:
    """The model's configuration as JSON; a layer whose ``get_config`` holds something
    else than numbers, strings, lists, dicts, booleans and None is named."""
    config = model.get_config()
    try:
        return json.dumps(config)
    except (TypeError, ValueError):
        pass  # find the layer, below: the model's own entries are plain
    for layer, spec in zip(model.layers, config["layers"], strict=True):
        try:
            json.dumps(spec)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"Cannot save layer {layer.name!r}: its get_config() must hold plain values "
                f"(numbers, strings, lists, dicts, True/False/None): {err}. Convert it "
                "there, e.g. float(self.alpha) or list(self.shape)."
            ) from err
    return json.dumps(config)  # raises, should the model's own entries ever not be plain


def model_arrays(model) -> dict[str, numpy.ndarray]:
    """Everything :func:`save_model` writes, as a dict of NumPy arrays."""
    arrays = {
        "__format__": numpy.array(FORMAT),
        "__architecture__": numpy.array(_architecture_json(model)),
    }
    arrays.update(weight_arrays(model))  # the same members, in the order of older files
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
    if model.fit_seed is not None:
        arrays["__training__"] = numpy.array(json.dumps({"fit_seed": int(model.fit_seed)}))
    return arrays


def save_model(model, path) -> None:
    """Write ``model`` (architecture, weights, optimizer state) to ``path`` atomically."""
    model._require_built("save")
    arrays = model_arrays(model)
    atomic_write(path, lambda f: numpy.savez(f, **arrays))


def save_weights(model, path) -> None:
    """Write the weights of ``model`` alone to ``path`` atomically (for load_weights)."""
    model._require_built("save_weights")
    arrays = weight_arrays(model)
    atomic_write(path, lambda f: numpy.savez(f, **arrays))


# ---- reading: the archive ------------------------------------------------------------------
# What a damaged zip member may raise while it is read: a bad header or CRC (BadZipFile),
# damaged compressed data (zlib.error), an early end (EOFError), a bad .npy header
# (ValueError), encryption (RuntimeError), another compression method (NotImplementedError).
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    OSError,
    EOFError,
    ValueError,
    RuntimeError,
    NotImplementedError,
)


class ModelArchive:
    """A model file opened for reading: its members, each checked before it is read.

    ``members`` maps each entry's name (``"weights/dense/kernel"``) to its ``ZipInfo``.
    Use it as a context manager, so the file is closed.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.where = repr(str(path))  # for error messages
        if not self.path.is_file():
            raise FileNotFoundError(f"No model file at {self.where}.")
        self._zip = self._open_zip()
        try:
            self.members = self._list_members()
            self._check_format()
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> ModelArchive:
        return self

    def __exit__(self, *exc) -> None:
        self._zip.close()

    def error(self, what: str) -> ModelFileError:
        """A ModelFileError naming the file; ``what`` is cut to a readable length."""
        what = what if len(what) <= 500 else what[:480] + " ... " + what[-15:]
        return ModelFileError(f"{self.where}: {what}")

    # ---- opening -------------------------------------------------------------------------
    def _open_zip(self) -> zipfile.ZipFile:
        with open(self.path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":  # an .npz file is a zip archive
                raise ModelFileError(
                    f"{self.where} is not a tinycnn model file: expected an .npz archive "
                    "written by model.save()."
                )
            # ZipFile reads the whole table of contents at once, one object per member;
            # check its size first in the end record, which is what ZipFile reads first.
            end = zipfile._EndRecData(f) if hasattr(zipfile, "_EndRecData") else None
        if end is not None and (
            end[zipfile._ECD_ENTRIES_TOTAL] > MAX_MEMBERS
            or end[zipfile._ECD_SIZE] > MAX_DIRECTORY_BYTES
        ):
            raise self.error(
                f"the archive lists {end[zipfile._ECD_ENTRIES_TOTAL]} members in "
                f"{end[zipfile._ECD_SIZE]} bytes; a model file has at most {MAX_MEMBERS}."
            )
        try:
            return zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
            raise ModelFileError(
                f"{self.where} is not a readable tinycnn model file (corrupt or truncated: {err})."
            ) from err

    def _list_members(self) -> dict[str, zipfile.ZipInfo]:
        infos = self._zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise self.error(f"{len(infos)} members; a model file has at most {MAX_MEMBERS}.")
        members = {}
        for info in infos:
            name = info.filename
            # numpy.savez names its members "<key>.npy"; any other name is one that no
            # load expects, and refuse_unexpected will say so (after the format check)
            name = name[: -len(".npy")] if name.endswith(".npy") else name
            if name in members:  # zip allows it; which one would be read is a guess
                raise self.error(f"the member {name!r} appears twice (a damaged or crafted file).")
            members[name] = info
        return members

    def _check_format(self) -> None:
        if "__format__" not in self.members:
            raise ModelFileError(f"{self.where} is not a tinycnn model file (no {FORMAT!r} mark).")
        try:
            found = self.read_text("__format__", max_chars=100)
        except ModelFileError as err:
            raise ModelFileError(
                f"{self.where} is not a tinycnn model file (no {FORMAT!r} mark): {err}"
            ) from err
        if found == FORMAT:
            return
        if found.startswith(FORMAT_FAMILY):
            raise self.error(
                f"the file is in format {found!r}, but this version of tinycnn reads "
                f"{FORMAT!r}. Load it with the tinycnn version that saved it."
            )
        raise ModelFileError(f"{self.where} is not a tinycnn model file (no {FORMAT!r} mark).")

    def refuse_unexpected(self, expected: set[str], also: tuple[str, ...] = ()) -> None:
        """ModelFileError for a member neither in ``expected`` nor starting with ``also``."""
        for name in self.members:
            if name not in expected and not (also and name.startswith(also)):
                raise self.error(
                    f"unexpected member {name!r}: the format has no such entry for this "
                    "model (a damaged or crafted file)."
                )

    # ---- one member ----------------------------------------------------------------------
    def header(self, name: str) -> tuple[tuple, numpy.dtype]:
        """(shape, dtype) of member ``name``, from its ``.npy`` header alone.

        Also checks that its size in the zip agrees with that header, and refuses
        Python objects (which only pickle could read).
        """
        info = self.members[name]
        self._check_packing(name, info)
        try:
            with self._zip.open(info) as f:
                version = npy.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = npy.read_array_header_1_0(f, MAX_HEADER_BYTES)
                elif version == (2, 0):
                    shape, _, dtype = npy.read_array_header_2_0(f, MAX_HEADER_BYTES)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
                header_bytes = f.tell()
        except _READ_ERRORS as err:
            raise ModelFileError(
                f"{self.where} is not a readable tinycnn model file (corrupt or truncated: "
                f"the header of {name!r}: {err})."
            ) from err
        if dtype.hasobject:
            raise ModelFileError(
                f"{self.where} contains pickled objects ({name!r}), which tinycnn never writes "
                "and refuses to load (they could run code)."
            )
        data_bytes = math.prod(shape) * dtype.itemsize
        if info.file_size != header_bytes + data_bytes:
            raise self.error(
                f"the member {name!r} declares {info.file_size} bytes, but its header says "
                f"shape {shape} of {dtype} ({header_bytes + data_bytes} bytes with the header)."
            )
        return tuple(shape), dtype

    def _check_packing(self, name: str, info: zipfile.ZipInfo) -> None:
        """Refuse a member whose declared sizes cannot be true, before unpacking anything."""
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise self.error(
                f"the member {name!r} uses zip compression method {info.compress_type}; "
                "model files use none or deflate."
            )
        stored = info.compress_type == zipfile.ZIP_STORED
        limit = info.compress_size if stored else MAX_DEFLATE_RATIO * info.compress_size + 1024
        if info.file_size > limit:
            raise self.error(
                f"the member {name!r} claims to unpack {info.compress_size} bytes into "
                f"{info.file_size}, which is impossible (a damaged or crafted file)."
            )

    def read(self, name: str) -> numpy.ndarray:
        """The array in member ``name``; call :meth:`header` (and check it) first."""
        try:
            with self._zip.open(self.members[name]) as f:
                array = npy.read_array(f, allow_pickle=False, max_header_size=MAX_HEADER_BYTES)
                if f.read(1):  # reading to the end also checks the CRC
                    raise ValueError("bytes after the array")
        except _READ_ERRORS as err:
            raise ModelFileError(
                f"{self.where} is not a readable tinycnn model file (corrupt or truncated: "
                f"{name!r}: {err})."
            ) from err
        return array

    def read_text(self, name: str, max_chars: int) -> str:
        """The string stored in member ``name`` (a 0-d unicode array), at most ``max_chars``."""
        shape, dtype = self.header(name)
        if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * max_chars:
            raise self.error(
                f"the {name} entry should be a string of at most {max_chars} characters, "
                f"found an array of shape {shape} and dtype {dtype}."
            )
        return str(self.read(name)[()])

    def read_json(self, name: str):
        """The JSON value stored in member ``name``; ModelFileError if missing or damaged."""
        if name not in self.members:
            raise self.error(f"the {name} entry is missing.")
        text = self.read_text(name, MAX_JSON_CHARS)
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
            reason = "nested too deeply" if isinstance(err, RecursionError) else err
            raise self.error(f"the {name} entry is missing or damaged ({reason}).") from err


# ---- reading: what the architecture implies ---------------------------------------------------
def param_shapes(layers, input_shape: tuple, archive: ModelArchive) -> dict:
    """``"<layer>/<name>"`` -> shape of every parameter that building ``layers`` for
    samples of ``input_shape`` would create, found by walking the layers with shapes
    only: nothing is allocated."""
    shapes, shape = {}, tuple(input_shape)
    for layer in layers:
        try:
            rank = layer._expected_ndim()  # with the batch axis
            if rank is not None and len(shape) + 1 != rank:
                raise ValueError(f"it takes inputs {layer.input_layout}, gets (N, *{shape})")
            layer._check_sample_shape(shape)  # the checks build() makes
            for key, param_shape in layer.param_shapes(shape).items():
                shapes[f"{layer.name}/{key}"] = tuple(int(d) for d in param_shape)
            shape = tuple(int(d) for d in layer.compute_output_shape(shape))
        except (ValueError, TypeError, IndexError, ZeroDivisionError, NotImplementedError) as err:
            raise archive.error(
                f"the architecture does not fit together at layer {layer.name!r}: {err}"
            ) from err
        if not all(d > 0 for d in shape):
            raise archive.error(
                f"the architecture gives layer {layer.name!r} an empty output {shape}."
            )
    return shapes


def _fit_seed_from(config, archive: ModelArchive) -> int:
    """The seed of the last fit, from the ``__training__`` entry, checked."""
    seed = config.get("fit_seed") if isinstance(config, dict) else None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise archive.error(
            f'the __training__ entry is damaged: expected {{"fit_seed": int >= 0}}, '
            f"got {reprlib.repr(config)}."
        )
    return seed


def _optimizer_from(config, archive: ModelArchive):
    """(optimizer, loss name) from the ``__compile__`` entry, every value checked."""

    def damaged(what):
        return archive.error(f"the __compile__ entry is damaged: {what}")

    if not (
        isinstance(config, dict) and isinstance(config.get("optimizer"), dict)
        and isinstance(config.get("loss"), str)
    ):  # fmt: skip
        raise damaged('expected {"optimizer": {"name": ..., ...}, "loss": ...}.')
    settings = config["optimizer"]
    if not isinstance(settings.get("name"), str):
        raise damaged(f"the optimizer has no name: {reprlib.repr(settings)}.")
    for key, value in settings.items():
        if key != "name" and not isinstance(value, (int, float)):  # bools are ints
            raise damaged(f"the optimizer's {key} should be a number, got {reprlib.repr(value)}.")
    try:
        optimizer = optimizers.from_config(settings)
        losses.get(config["loss"])
    except Exception as err:  # the constructors' checks, on values from the file
        raise damaged(str(err)) from err
    return optimizer, config["loss"]


# ---- reading: checks, then arrays ----------------------------------------------------------------
def _check_weight_dtype(archive, name, dtype) -> None:
    if dtype.name not in WEIGHT_DTYPES or not dtype.isnative:
        raise archive.error(
            f"{name} holds {dtype} values; tinycnn weights are {' or '.join(WEIGHT_DTYPES)}."
        )


def _label(param_key: str) -> str:
    """``"dense/kernel"`` -> ``"layer 'dense' kernel"``, for messages."""
    layer, _, key = param_key.rpartition("/")
    return f"layer {layer!r} {key}"


def _check_weights(archive: ModelArchive, shapes: dict) -> numpy.dtype | None:
    """Check the header of ``weights/<param>`` for every parameter of ``shapes``; their dtype."""
    dtypes = set()
    for param_key, shape in shapes.items():
        name = f"weights/{param_key}"
        if name not in archive.members:
            raise ModelFileError(f"{archive.where} has no weights for {_label(param_key)}.")
        found, dtype = archive.header(name)
        if found != shape:
            raise archive.error(
                f"{_label(param_key)} has shape {shape} in the architecture but {found} in "
                "the file."
            )
        _check_weight_dtype(archive, name, dtype)
        dtypes.add(dtype)
    if len(dtypes) > 1:
        raise archive.error(f"the weights mix dtypes {sorted(d.name for d in dtypes)}.")
    return dtypes.pop() if dtypes else None


def _slots(optimizer, archive: ModelArchive, param_key: str):
    """The state the optimizer keeps per parameter (Adam: m, v); for an optimizer that
    does not declare it (``slots = None``), the names found in the file."""
    if optimizer.slots is not None:
        return list(optimizer.slots)
    prefix = f"optimizer/{param_key}/"
    return [m[len(prefix) :] for m in archive.members if m.startswith(prefix)]


def _check_state(archive, optimizer, shapes: dict, dtype) -> list[str]:
    """Check the headers of the optimizer's members; the names of those to read."""
    names = []
    if "optimizer/iterations" in archive.members:
        shape, count_dtype = archive.header("optimizer/iterations")
        if shape != () or count_dtype.kind not in "iu":
            raise archive.error(
                f"optimizer/iterations should be one integer, found shape {shape} {count_dtype}."
            )
        names.append("optimizer/iterations")
    for param_key, shape in shapes.items():
        slots = _slots(optimizer, archive, param_key)
        present = [s for s in slots if f"optimizer/{param_key}/{s}" in archive.members]
        if present and len(present) != len(slots):
            raise archive.error(
                f"the optimizer state of {_label(param_key)} has {present}; "
                f"{type(optimizer).__name__} keeps {list(slots)}."
            )
        for slot in present:
            name = f"optimizer/{param_key}/{slot}"
            found, found_dtype = archive.header(name)
            if found != shape or found_dtype != dtype:
                raise archive.error(
                    f"the optimizer state {slot!r} of {_label(param_key)} has shape {found} "
                    f"({found_dtype}) in the file, but the {param_key.rpartition('/')[2]} has "
                    f"shape {shape} ({dtype})."
                )
            names.append(name)
    return names


def _read_weights(archive: ModelArchive, param_keys) -> list[numpy.ndarray]:
    """The arrays of ``weights/<key>`` for ``param_keys`` (headers checked), with a warning
    for each that holds NaN or infinity."""
    values = []
    for param_key in param_keys:
        value = archive.read(f"weights/{param_key}")
        bad = value.size - int(numpy.count_nonzero(numpy.isfinite(value)))
        if bad:
            warnings.warn(
                f"{archive.where}: {_label(param_key)} holds {bad} NaN or infinite value(s) "
                f"of {value.size}; the model's outputs will be NaN. (Was it saved after the "
                "training diverged?)",
                RuntimeWarning,
                # at the user's line: load_model -> read_contents -> here, or
                # model.load_weights -> load_weights -> here
                stacklevel=4,
            )
        values.append(value)
    return values


def load_weights(model, path) -> None:
    """Load the weights of a file written by save_weights or save into ``model`` (same
    architecture).

    Every shape is checked before anything is read, so a file that does not fit leaves
    the model untouched.
    """
    model._require_built("load_weights")
    with ModelArchive(path) as archive:
        archive.refuse_unexpected(
            {"__format__", "__architecture__", "__compile__", "__training__"},
            also=("weights/", "optimizer/"),
        )
        keys = [f"{layer.name}/{key}" for layer in model.layers for key in layer.params]
        for layer in model.layers:
            for key, current in layer.params.items():
                name = f"weights/{layer.name}/{key}"
                if name not in archive.members:
                    raise ModelFileError(
                        f"{archive.where} has no weights for layer {layer.name!r} {key}."
                    )
                shape, dtype = archive.header(name)
                if shape != tuple(current.shape):
                    raise ModelFileError(
                        f"Cannot load {archive.where} into layer {layer.name!r}: its {key} has "
                        f"shape {tuple(current.shape)} in the model but {shape} in the file."
                    )
                _check_weight_dtype(archive, name, dtype)
        model.set_weights(_read_weights(archive, keys))  # per layer, per parameter


# ---- reading a whole model (for tinycnn.load_model, in models/loading.py) ------------------------
@dataclasses.dataclass
class ModelContents:
    """What a model file holds besides its architecture, checked and read."""

    weights: list[numpy.ndarray]  # per layer, per parameter: set_weights' order
    dtype: str  # of the weights (floatx() for a model without any)
    optimizer: optimizers.Optimizer | None  # None: not compiled, or compile=False
    loss: str | None  # the loss's name
    optimizer_state: dict  # for optimizer.set_state: "iterations", "<layer>/<param>/<slot>"
    fit_seed: int | None  # the seed of the model's last fit


def read_contents(archive: ModelArchive, layers, input_shape, compile: bool) -> ModelContents:
    """The weights, optimizer and fit seed of the file, for the model its architecture
    describes: ``layers``, not built yet, for samples of ``input_shape`` (None: the model
    was saved unbuilt, without weights). ``compile=False`` leaves out the optimizer.

    Every member's header is checked against the architecture before any array is read.
    """
    shapes = param_shapes(layers, input_shape, archive) if input_shape is not None else {}
    optimizer = loss = None
    if compile and "__compile__" in archive.members:
        optimizer, loss = _optimizer_from(archive.read_json("__compile__"), archive)

    expected = {"__format__", "__architecture__", "__compile__", "__training__"}
    expected |= {f"weights/{key}" for key in shapes}
    if optimizer is not None:
        expected.add("optimizer/iterations")
        for key in shapes:
            expected |= {f"optimizer/{key}/{slot}" for slot in _slots(optimizer, archive, key)}
    archive.refuse_unexpected(expected, also=() if optimizer is not None else ("optimizer/",))

    dtype = _check_weights(archive, shapes)
    dtype = dtype.name if dtype is not None else backend.floatx()
    state_names = _check_state(archive, optimizer, shapes, dtype) if optimizer else []

    # every header agrees with the architecture: now read and allocate
    weights = _read_weights(archive, shapes)
    state = {name[len("optimizer/") :]: archive.read(name) for name in state_names}
    if optimizer is not None:
        iterations = int(state.pop("iterations", 0))
        if iterations < 0:
            raise archive.error(f"optimizer/iterations is negative ({iterations}).")
        state = {"iterations": iterations, **state}
    fit_seed = None
    if "__training__" in archive.members:
        fit_seed = _fit_seed_from(archive.read_json("__training__"), archive)
    return ModelContents(weights, dtype, optimizer, loss, state, fit_seed)
