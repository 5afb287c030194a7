"""Fashion-MNIST: 70,000 grayscale 28x28 pictures of clothes in 10 classes.

``load_data()`` returns the same arrays, in the same order, as Keras's
``keras.datasets.fashion_mnist.load_data()``::

    (x_train, y_train), (x_test, y_test) = load_data()
    # x_train (60000, 28, 28) uint8, y_train (60000,) uint8 in 0..9
    # x_test  (10000, 28, 28) uint8, y_test  (10000,) uint8 in 0..9
    CLASS_NAMES[y_train[0]]  # -> "Ankle boot"

Where the four files are looked for, in this order (see :func:`search_paths`):

1. the ``data_dir`` argument. When it is given it is the *only* place looked at,
   and missing files are an error: asking for a folder and silently getting data
   from somewhere else would hide mistakes;
2. the folder in the ``TINYCNN_DATA`` environment variable;
3. the user cache, ``$XDG_CACHE_HOME/tinycnn/fashion-mnist``
   (``~/.cache/tinycnn/fashion-mnist`` by default);
4. ``/usr/share/datasets/fashion-mnist``, where Debian's
   ``apt-get install dataset-fashion-mnist`` puts them.

A folder counts when it holds all four files, gzip-compressed (the official
names below) or already unpacked (the same names without ``.gz``). If none does
and ``download=True``, the missing files are downloaded into the cache.

Every file is checked before use: its IDX header, its label values, and the
SHA-256 of its *uncompressed* content against the official values. (Hashing the
content rather than the ``.gz`` file accepts any gzip packaging of the same data:
Debian's ``.gz`` files differ from the official ones only in their gzip header.)
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import idx

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# The four files, without their ".gz" suffix.
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# SHA-256 of each file's uncompressed IDX content (sizes: 47040016, 60008, 7840016
# and 10008 bytes). load_data() looks this dict up when it runs, so tests can
# monkeypatch it with checksums of their own small files.
CHECKSUMS = {
    TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

# Zalando's official download location. It is an S3 *website* endpoint, which
# only speaks plain HTTP (https:// to it fails); that is safe here because every
# file is checked against the pinned SHA-256 values above before it is kept.
# The environment variable overrides it (tests point it at a file:// folder).
BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
URL_ENV = "TINYCNN_FASHION_MNIST_URL"
DATA_ENV = "TINYCNN_DATA"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

IMAGES_MAGIC = 2051  # 0x00000803: uint8, 3 dims (N, 28, 28)
LABELS_MAGIC = 2049  # 0x00000801: uint8, 1 dim (N,)
IMAGE_SIZE = (28, 28)
NUM_CLASSES = len(CLASS_NAMES)

_FIX_CORRUPT = (
    "Fix: delete this file and get a good copy: load_data() downloads one into the "
    "cache, `sudo apt-get install --reinstall dataset-fashion-mnist` installs one in "
    f"{SYSTEM_DIR}, or set {DATA_ENV} to a folder holding good copies of the four files."
)


class CorruptDataError(ValueError):
    """A dataset file is damaged or is not the official Fashion-MNIST file."""


class DatasetNotFoundError(FileNotFoundError):
    """The four files are nowhere to be found (and could not be downloaded)."""


class DownloadError(OSError):
    """A file could not be fetched (no network, server error, ...)."""


class CacheError(OSError):
    """The download folder cannot be written (read-only, or a file in the way)."""


# --------------------------------------------------------------------------- where


def cache_dir() -> Path:
    """The user cache folder: ``$XDG_CACHE_HOME/tinycnn/fashion-mnist``.

    XDG_CACHE_HOME defaults to ``~/.cache`` (the XDG Base Directory convention).
    """
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "tinycnn" / "fashion-mnist"


def search_paths(data_dir=None) -> list[Path]:
    """The folders searched for the four files, in priority order.

    ``data_dir`` first (when given), then ``$TINYCNN_DATA`` (when set), the user
    cache and Debian's system folder. Nothing is checked for existence here.
    """
    paths = []
    if data_dir is not None:
        paths.append(Path(data_dir).expanduser())
    if os.environ.get(DATA_ENV):
        paths.append(Path(os.environ[DATA_ENV]).expanduser())
    paths.append(cache_dir())
    paths.append(Path(SYSTEM_DIR))
    return paths


def find_files(folder) -> dict[str, Path]:
    """The dataset files present in ``folder``: {name without .gz: path}.

    The compressed ``name.gz`` is preferred; the unpacked ``name`` also counts.
    A complete folder gives all four entries; a missing folder gives none.
    """
    found = {}
    for name in FILES:
        for candidate in (Path(folder) / f"{name}.gz", Path(folder) / name):
            if candidate.is_file():
                found[name] = candidate
                break
    return found


# --------------------------------------------------------------------------- checking


def _check_header(name: str, data: bytes, array: np.ndarray, where: str) -> None:
    """Raise CorruptDataError unless ``array`` looks like the images or labels it should be."""
    magic = int.from_bytes(data[:4], "big")
    if "images" in name:
        expected, shape_ok = IMAGES_MAGIC, array.ndim == 3 and array.shape[1:] == IMAGE_SIZE
        wanted_shape = "(N, 28, 28)"
    else:
        expected, shape_ok = LABELS_MAGIC, array.ndim == 1
        wanted_shape = "(N,)"
    if magic != expected or not shape_ok:
        raise CorruptDataError(
            f"{where}: wrong IDX header: expected magic {expected} with shape {wanted_shape}, "
            f"found magic {magic} with shape {array.shape}. Is it the right file?\n{_FIX_CORRUPT}"
        )
    if "labels" in name and array.size and array.max() >= NUM_CLASSES:
        bad = int(np.count_nonzero(array >= NUM_CLASSES))
        raise CorruptDataError(
            f"{where}: {bad} labels are outside 0..{NUM_CLASSES - 1} "
            f"(largest: {array.max()}).\n{_FIX_CORRUPT}"
        )


def parse_verified(name: str, data: bytes, checksums=None, where=None) -> np.ndarray:
    """Check one file's bytes (already read, gzip or not) and return its array.

    ``name`` is the file's name without ``.gz`` (a key of ``checksums``, which
    defaults to :data:`CHECKSUMS`); ``where`` names the file in error messages.
    The content is decompressed once; the same bytes are parsed and hashed.
    Returns (N, 28, 28) uint8 images or (N,) uint8 labels.
    """
    checksums = CHECKSUMS if checksums is None else checksums
    where = where or name
    try:
        content = idx.load_bytes(data)
        array = idx.parse_idx(content, where)
    except idx.IDXError as err:
        # The IDX message says what is wrong; add how to get a good copy.
        message = str(err).replace("<bytes>", where)
        raise CorruptDataError(f"{message}\n{_FIX_CORRUPT}") from None  # the text says it all
    _check_header(name, content, array, where)
    digest = hashlib.sha256(content).hexdigest()
    if digest != checksums[name]:
        raise CorruptDataError(
            f"{where}: SHA-256 of the uncompressed content is {digest}, expected "
            f"{checksums[name]} ({len(content)} bytes found). The file is damaged or is "
            f"not the official Fashion-MNIST file.\n{_FIX_CORRUPT}"
        )
    return array


def read_verified(path, checksums=None) -> np.ndarray:
    """Read one dataset file (``.gz`` or unpacked), check it, and return its array.

    The expected SHA-256 is looked up by the file's name without ``.gz``.
    """
    path = Path(path)
    name = path.name.removesuffix(".gz")
    return parse_verified(name, path.read_bytes(), checksums, where=str(path))


def load_dir(folder, checksums=None):
    """Load and check the four files in ``folder``.

    Returns ``((x_train, y_train), (x_test, y_test))``. Raises DatasetNotFoundError
    if a file is missing and CorruptDataError if one fails a check.
    """
    files = find_files(folder)
    missing = [name for name in FILES if name not in files]
    if missing:
        raise DatasetNotFoundError(
            f"{folder}: missing {', '.join(missing)} (with or without .gz). "
            f"Put all four Fashion-MNIST files there, or call load_data() without "
            f"data_dir to use {DATA_ENV}, the cache, the system folder or a download."
        )
    arrays = {name: read_verified(files[name], checksums) for name in FILES}
    for images, labels in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        if len(arrays[images]) != len(arrays[labels]):
            raise CorruptDataError(
                f"{folder}: {images} holds {len(arrays[images])} images but {labels} holds "
                f"{len(arrays[labels])} labels; they must match.\n{_FIX_CORRUPT}"
            )
    train = (arrays[TRAIN_IMAGES], arrays[TRAIN_LABELS])
    test = (arrays[TEST_IMAGES], arrays[TEST_LABELS])
    return train, test


# --------------------------------------------------------------------------- download


def _fetch(url: str, verbose: bool) -> bytes:
    """Download ``url`` into memory, with a progress bar; DownloadError on failure."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            chunks = []
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=url.rsplit("/", 1)[-1],
                disable=not verbose,
            ) as bar:
                while chunk := response.read(1 << 20):
                    chunks.append(chunk)
                    bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as err:  # URLError is an OSError
        # one error with the cause in its text, rather than a chain of three tracebacks
        raise DownloadError(f"could not download {url}: {err}") from None
    return b"".join(chunks)


def download_files(dest_dir=None, base_url=None, verbose: bool = True, checksums=None) -> Path:
    """Download the files missing from ``dest_dir`` (default: the cache) and return it.

    ``base_url`` defaults to ``$TINYCNN_FASHION_MNIST_URL`` or :data:`BASE_URL`.
    Each file is checked in memory *before* it is written, and written atomically,
    so the folder never holds a partial or unverified file. Raises DownloadError
    (network) or CorruptDataError (bad content).
    """
    dest = Path(dest_dir) if dest_dir is not None else cache_dir()
    base = base_url or os.environ.get(URL_ENV) or BASE_URL
    base = base if base.endswith("/") else base + "/"
    present = find_files(dest)
    missing = [name for name in FILES if name not in present]
    if missing and verbose:
        print(f"Downloading Fashion-MNIST from {base} to {dest}", file=sys.stderr)
    for name in missing:
        url = f"{base}{name}.gz"
        data = _fetch(url, verbose)
        parse_verified(name, data, checksums, where=url)
        _write_to_cache(dest, f"{name}.gz", data)
    return dest


def _write_to_cache(dest: Path, name: str, data: bytes) -> None:
    """Write one verified file into ``dest``; CacheError, with the fix, if it cannot."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
        idx.write_bytes_atomic(dest / name, data)
    except (PermissionError, FileExistsError, NotADirectoryError, IsADirectoryError) as err:
        raise CacheError(
            f"Cannot save the downloaded Fashion-MNIST to {dest}: {err}. Make that folder "
            "writable (or remove the file that stands in its way), or choose another "
            f"folder: set XDG_CACHE_HOME, set {DATA_ENV} to a folder holding the four "
            "files, or pass data_dir=..."
        ) from None


# --------------------------------------------------------------------------- load


def _not_found_message(places: list[Path], reason: str) -> str:
    """The message for "no data anywhere": where we looked and three ways to fix it."""
    lines = ["Fashion-MNIST was not found. Looked in, in order:"]
    for place in places:
        present = len(find_files(place))
        state = "no such folder" if not place.is_dir() else f"{present} of 4 files"
        lines.append(f"  - {place} ({state})")
    lines.append(reason)
    lines.append("Fix it in one of three ways:")
    lines.append(
        f"  1. set {DATA_ENV} to a folder holding the four files "
        + ", ".join(f"{name}.gz" for name in FILES)
    )
    lines.append(
        f"  2. sudo apt-get install dataset-fashion-mnist  (installs them in {SYSTEM_DIR})"
    )
    lines.append(
        f"  3. allow the download: call load_data(download=True) with internet access "
        f"(from {os.environ.get(URL_ENV) or BASE_URL}) and the files go to {cache_dir()}"
    )
    return "\n".join(lines)


def load_data(data_dir=None, download: bool = True, verbose: bool = True):
    """Load Fashion-MNIST, downloading it into the cache if needed.

    Returns ``((x_train, y_train), (x_test, y_test))``: uint8 arrays of shapes
    (60000, 28, 28), (60000,), (10000, 28, 28) and (10000,), in the official order.
    Pixels are 0..255 and labels 0..9 (names in :data:`CLASS_NAMES`).

    Raises DatasetNotFoundError when the data is nowhere and cannot be downloaded,
    CorruptDataError when a file fails its checks.
    """
    if data_dir is not None:
        return load_dir(Path(data_dir).expanduser())  # explicit: no fall-through
    _check_data_env()
    places = search_paths()
    for place in places:
        if len(find_files(place)) == len(FILES):
            return load_dir(place)
    if not download:
        raise DatasetNotFoundError(_not_found_message(places, "Download is off."))
    try:
        folder = download_files(cache_dir(), verbose=verbose)
    except DownloadError as err:
        raise DatasetNotFoundError(
            _not_found_message(places, f"The download failed: {err}")
        ) from None  # the message holds the cause: one traceback, not three
    return load_dir(folder)


def _check_data_env() -> None:
    """A ``TINYCNN_DATA`` that names no folder is a mistake worth stopping for (a typo,
    an unmounted disk), not something to step over on the way to a download."""
    value = os.environ.get(DATA_ENV)
    if value and not Path(value).expanduser().is_dir():
        raise DatasetNotFoundError(
            f"{DATA_ENV}={value!r} is not a folder. Point it to the folder holding the four "
            f"Fashion-MNIST files, or unset it to use the cache ({cache_dir()}), "
            f"{SYSTEM_DIR} or a download."
        )
