"""Read and write IDX files, the simple array format of MNIST and Fashion-MNIST.

An IDX file is a small header followed by the array's values, all big-endian::

    bytes 0-1   two zero bytes
    byte  2     dtype code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     ndim, the number of dimensions
    then        ndim sizes, each a 4-byte unsigned integer
    then        prod(sizes) values, row-major (C order)

Read as one big-endian integer, the first four bytes are the "magic number" that
MNIST's documentation talks about: 2051 = 0x00000803 (uint8, 3 dims) for images and
2049 = 0x00000801 (uint8, 1 dim) for labels. Files are usually gzip-compressed
(``*.gz``); :func:`read_idx` accepts both and tells them apart by their first bytes.

Every error is an :class:`IDXError` whose message names the file, says what was
expected and what was found, and what to do about it.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

# the package's one atomic writer (temporary file, fsync, rename); fashion_mnist.py uses it
# through this module as idx.write_bytes_atomic
from ..atomic_file import write_bytes_atomic

# dtype code -> NumPy dtype as stored on disk (">" = big-endian).
DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Every gzip stream starts with these two bytes; an IDX file starts with two zeros.
GZIP_MAGIC = b"\x1f\x8b"

_FIX = "Delete the file and download or create it again."


class IDXError(ValueError):
    """An IDX file (or gzip around it) is malformed; the message says how and what to do."""


# --------------------------------------------------------------------------- reading


def _name_of(source) -> str:
    """A name for ``source`` to use in error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    return str(source)


def load_bytes(source) -> bytes:
    """The uncompressed IDX content of ``source``, a path or the file's bytes.

    gzip data is recognised by its first two bytes (0x1f 0x8b) rather than by the
    ``.gz`` suffix, so a file that a browser already unpacked but left named ``.gz``
    still works.
    """
    name = _name_of(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        data = Path(source).read_bytes()  # FileNotFoundError names the path itself
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as err:
        # EOFError: the stream stops early (interrupted download); zlib.error or
        # BadGzipFile: damaged bytes or a failed CRC check.
        raise IDXError(
            f"{name}: corrupt or truncated gzip data: expected a complete, valid gzip "
            f"stream, found {len(data)} bytes that fail to decompress "
            f"({type(err).__name__}: {err}). {_FIX}"
        ) from err


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode uncompressed IDX bytes into an array.

    Returns a new, writable array in native byte order whose shape is the sizes in
    the header, for example (60000, 28, 28) uint8 for Fashion-MNIST's training images.
    ``name`` is only used in error messages.
    """
    if len(data) < 4:
        raise IDXError(
            f"{name}: too short to be an IDX file: expected a 4-byte header, "
            f"found {len(data)} bytes. {_FIX}"
        )
    if data[0] != 0 or data[1] != 0:
        hint = " (neither IDX nor gzip)" if name.endswith(".gz") else ""
        raise IDXError(
            f"{name}: not an IDX file{hint}: expected the first two bytes to be 0x00 0x00, "
            f"found 0x{data[0]:02x} 0x{data[1]:02x}. Check that this is the right file. {_FIX}"
        )
    code, ndim = data[2], data[3]
    if code not in DTYPES:
        known = ", ".join(f"0x{c:02X} {d.name}" for c, d in DTYPES.items())
        raise IDXError(
            f"{name}: unknown IDX dtype code 0x{code:02X}: expected one of {known}. {_FIX}"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IDXError(
            f"{name}: truncated header: {ndim} dims need {header_size} header bytes, "
            f"found {len(data)} bytes. {_FIX}"
        )
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header_size
    if found < expected:
        raise IDXError(
            f"{name}: truncated payload: shape {shape} of {dtype.name} needs {expected} bytes "
            f"after the header, found only {found} (an interrupted download?). {_FIX}"
        )
    if found > expected:
        raise IDXError(
            f"{name}: {found - expected} unexpected trailing bytes: shape {shape} of "
            f"{dtype.name} needs exactly {expected} bytes after the header, found {found}. "
            f"The file may be damaged or not what its header says. {_FIX}"
        )
    values = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header_size)
    # astype copies: the result is writable (a view of `bytes` would be read-only)
    # and in native byte order, so later arithmetic does not pay for byte swaps.
    return values.reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(source) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not, from a path or from its bytes.

    Example: ``read_idx("train-labels-idx1-ubyte.gz")`` -> (60000,) uint8 array.
    """
    return parse_idx(load_bytes(source), _name_of(source))


# --------------------------------------------------------------------------- writing


def _code_for(dtype: np.dtype) -> int:
    """The IDX dtype code that stores ``dtype``; IDXError if IDX cannot store it."""
    for code, stored in DTYPES.items():
        if stored.kind == dtype.kind and stored.itemsize == dtype.itemsize:
            return code
    names = ", ".join(d.name for d in DTYPES.values())
    raise IDXError(f"IDX cannot store dtype {dtype}: expected one of {names}. Convert first.")


def encode_idx(array) -> bytes:
    """The uncompressed IDX bytes of ``array`` (any shape, a dtype listed in DTYPES)."""
    array = np.asarray(array)
    code = _code_for(array.dtype)
    if array.ndim > 255 or any(s >= 2**32 for s in array.shape):
        raise IDXError(f"IDX cannot store shape {array.shape}: at most 255 dims of < 2**32.")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()


def write_idx(path, array, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file, atomically.

    ``compress=None`` gzips when ``path`` ends with ``.gz``; True/False force it. The
    gzip timestamp is fixed at 0 so the same array always gives the same bytes. A crash
    or Ctrl-C while writing leaves ``path`` as it was (see tinycnn/atomic_file.py).
    """
    data = encode_idx(array)
    if compress is None:
        compress = str(path).endswith(".gz")
    if compress:
        data = gzip.compress(data, mtime=0)
    write_bytes_atomic(path, data)
