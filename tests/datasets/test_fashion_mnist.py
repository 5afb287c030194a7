"""Tests for tinycnn.datasets.fashion_mnist.

Almost all tests use tiny Fashion-MNIST look-alikes (a dozen 28x28 images) built in
a temporary folder, with their own checksums. They never touch the network, the
real user cache or the system folder: the autouse fixture below points all of
those at temporary folders. The last test checks the real data when it is present.
"""

import gzip
import hashlib
import os
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tinycnn.datasets import fashion_mnist as fm
from tinycnn.datasets import idx
from tinycnn.datasets.fashion_mnist import CorruptDataError, DatasetNotFoundError

# Read before any fixture changes the environment (the isolation fixture unsets it).
REAL_DATA_ENV = os.environ.get(fm.DATA_ENV)
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SYSTEM_DIR = fm.SYSTEM_DIR  # the isolation fixture replaces it in each test


# ----------------------------------------------------------------------- helpers


def make_arrays(n_train=12, n_test=5, seed=0):
    """Small random arrays shaped like the real ones: {file name: array}."""
    rng = np.random.default_rng(seed)
    return {
        fm.TRAIN_IMAGES: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        fm.TRAIN_LABELS: rng.integers(0, 10, n_train, dtype=np.uint8),
        fm.TEST_IMAGES: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        fm.TEST_LABELS: rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def checksums_of(arrays) -> dict:
    """SHA-256 of each array's uncompressed IDX bytes, like fm.CHECKSUMS."""
    return {name: hashlib.sha256(idx.encode_idx(a)).hexdigest() for name, a in arrays.items()}


def write_dataset(folder: Path, arrays, compress=True) -> Path:
    """Write the four files into ``folder`` (created), as .gz or unpacked."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        idx.write_idx(folder / (name + (".gz" if compress else "")), array)
    return folder


def assert_loaded(result, arrays):
    """``result`` is load_data()'s output and holds exactly ``arrays``."""
    (x_train, y_train), (x_test, y_test) = result
    # fm.FILES is in this order: train images, train labels, test images, test labels.
    for got, name in zip((x_train, y_train, x_test, y_test), fm.FILES, strict=True):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arrays[name])


def files_in(folder: Path) -> list[str]:
    """Every name in ``folder``, hidden temp files included; [] if it does not exist."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ----------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Point every place load_data() looks at into tmp_path; forbid non-file URLs."""
    monkeypatch.delenv(fm.DATA_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv(fm.URL_ENV, (tmp_path / "no-mirror").as_uri() + "/")
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "system")
    real_urlopen = urllib.request.urlopen

    def file_only_urlopen(url, *args, **kwargs):
        assert str(url).startswith("file:"), f"test tried the network: {url}"
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", file_only_urlopen)


@pytest.fixture
def tiny(monkeypatch):
    """Small arrays whose checksums replace the official ones for this test."""
    arrays = make_arrays()
    monkeypatch.setattr(fm, "CHECKSUMS", checksums_of(arrays))
    return arrays


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "xdg" / "tinycnn" / "fashion-mnist"


# ----------------------------------------------------------------------- basics


def test_class_names():
    assert len(fm.CLASS_NAMES) == 10
    assert fm.CLASS_NAMES[0] == "T-shirt/top"
    assert fm.CLASS_NAMES[9] == "Ankle boot"


def test_package_exports():
    import tinycnn.datasets as datasets

    assert datasets.fashion_mnist is fm
    assert datasets.idx is idx


@pytest.mark.parametrize("compress", [True, False])
def test_load_from_data_dir(tmp_path, tiny, compress):
    folder = write_dataset(tmp_path / "mine", tiny, compress=compress)
    result = fm.load_data(data_dir=folder)
    assert_loaded(result, tiny)
    (x_train, y_train), (x_test, y_test) = result
    assert x_train.shape == (12, 28, 28) and y_train.shape == (12,)
    assert x_test.shape == (5, 28, 28) and y_test.shape == (5,)


def test_data_dir_accepts_str_and_tilde(tmp_path, tiny):
    write_dataset(tmp_path / "home" / "fm", tiny)
    assert_loaded(fm.load_data(data_dir="~/fm"), tiny)


# ----------------------------------------------------------------------- search order


def test_search_paths_order(tmp_path, monkeypatch):
    monkeypatch.setenv(fm.DATA_ENV, str(tmp_path / "env"))
    assert fm.search_paths(tmp_path / "arg") == [
        tmp_path / "arg",
        tmp_path / "env",
        tmp_path / "xdg" / "tinycnn" / "fashion-mnist",
        tmp_path / "system",
    ]


def test_search_paths_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert fm.search_paths() == [
        tmp_path / "home" / ".cache" / "tinycnn" / "fashion-mnist",
        tmp_path / "system",
    ]


def test_default_system_dir_is_debians():
    assert DEFAULT_SYSTEM_DIR == Path("/usr/share/datasets/fashion-mnist")


def loaded_from(monkeypatch, **kwargs) -> Path:
    """Run load_data(**kwargs) and return the folder it read the files from."""
    folders = []
    real_load_dir = fm.load_dir

    def spy(folder, checksums=None):
        folders.append(Path(folder))
        return real_load_dir(folder, checksums)

    monkeypatch.setattr(fm, "load_dir", spy)
    fm.load_data(**kwargs)
    return folders[-1]


def test_priority_arg_env_cache_system(tmp_path, tiny, monkeypatch, cache):
    places = [tmp_path / "arg", tmp_path / "env", cache, tmp_path / "system"]
    for place in places:
        write_dataset(place, tiny)
    monkeypatch.setenv(fm.DATA_ENV, str(tmp_path / "env"))

    assert loaded_from(monkeypatch, data_dir=tmp_path / "arg") == tmp_path / "arg"
    assert loaded_from(monkeypatch) == tmp_path / "env"
    monkeypatch.delenv(fm.DATA_ENV)
    assert loaded_from(monkeypatch) == cache
    (cache / f"{fm.TEST_IMAGES}.gz").unlink()  # an incomplete cache does not count
    assert loaded_from(monkeypatch, download=False) == tmp_path / "system"


def test_incomplete_env_folder_falls_through_to_cache(tmp_path, tiny, monkeypatch, cache):
    partial = write_dataset(tmp_path / "env", tiny)
    (partial / f"{fm.TEST_LABELS}.gz").unlink()
    monkeypatch.setenv(fm.DATA_ENV, str(partial))
    write_dataset(cache, tiny)
    assert_loaded(fm.load_data(download=False), tiny)


def test_explicit_data_dir_missing_files_is_an_error(tmp_path, tiny, cache):
    write_dataset(cache, tiny)  # present, but must not be used instead
    folder = write_dataset(tmp_path / "mine", tiny)
    (folder / f"{fm.TRAIN_LABELS}.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match=f"missing {fm.TRAIN_LABELS}") as err:
        fm.load_data(data_dir=folder)
    assert str(folder) in str(err.value)


def test_explicit_data_dir_that_does_not_exist(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        fm.load_data(data_dir=tmp_path / "nowhere")
    assert issubclass(DatasetNotFoundError, FileNotFoundError)


# ----------------------------------------------------------------------- verification


def test_checksum_mismatch(tmp_path, tiny):
    changed = dict(tiny)
    changed[fm.TEST_IMAGES] = tiny[fm.TEST_IMAGES].copy()
    changed[fm.TEST_IMAGES][0, 0, 0] ^= 1  # one pixel off
    folder = write_dataset(tmp_path / "mine", changed)
    with pytest.raises(CorruptDataError, match="SHA-256") as err:
        fm.load_data(data_dir=folder)
    message = str(err.value)
    assert str(folder / f"{fm.TEST_IMAGES}.gz") in message
    assert fm.CHECKSUMS[fm.TEST_IMAGES] in message
    assert "delete this file" in message and fm.DATA_ENV in message


def test_official_checksums_reject_tiny_files(tmp_path):
    folder = write_dataset(tmp_path / "mine", make_arrays())
    with pytest.raises(CorruptDataError, match="not the official"):
        fm.load_data(data_dir=folder)


def test_verify_takes_checksums_parameter(tmp_path):
    arrays = make_arrays()
    folder = write_dataset(tmp_path / "mine", arrays)
    assert_loaded(fm.load_dir(folder, checksums=checksums_of(arrays)), arrays)
    images = fm.read_verified(folder / f"{fm.TRAIN_IMAGES}.gz", checksums_of(arrays))
    np.testing.assert_array_equal(images, arrays[fm.TRAIN_IMAGES])


def test_truncated_gzip_file(tmp_path, tiny):
    folder = write_dataset(tmp_path / "mine", tiny)
    path = folder / f"{fm.TRAIN_IMAGES}.gz"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptDataError, match="corrupt or truncated gzip") as err:
        fm.load_data(data_dir=folder)
    assert str(path) in str(err.value) and "delete this file" in str(err.value)


def test_truncated_unpacked_file(tmp_path, tiny):
    folder = write_dataset(tmp_path / "mine", tiny, compress=False)
    path = folder / fm.TEST_IMAGES
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(CorruptDataError, match="truncated payload") as err:
        fm.load_data(data_dir=folder)
    assert str(path) in str(err.value)


def test_trailing_bytes_in_file(tmp_path, tiny):
    folder = write_dataset(tmp_path / "mine", tiny, compress=False)
    path = folder / fm.TRAIN_LABELS
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(CorruptDataError, match="trailing bytes"):
        fm.load_data(data_dir=folder)


def test_wrong_magic_labels_file_holds_images(tmp_path, monkeypatch, tiny):
    arrays = dict(tiny)
    arrays[fm.TEST_LABELS] = tiny[fm.TEST_IMAGES]  # images where labels should be
    monkeypatch.setattr(fm, "CHECKSUMS", checksums_of(arrays))
    folder = write_dataset(tmp_path / "mine", arrays)
    with pytest.raises(CorruptDataError, match=r"expected magic 2049 .* found magic 2051"):
        fm.load_data(data_dir=folder)


def test_wrong_image_size(tmp_path, monkeypatch, tiny):
    arrays = dict(tiny, **{fm.TRAIN_IMAGES: np.zeros((12, 28, 27), np.uint8)})
    monkeypatch.setattr(fm, "CHECKSUMS", checksums_of(arrays))
    folder = write_dataset(tmp_path / "mine", arrays)
    with pytest.raises(CorruptDataError, match=r"shape \(N, 28, 28\).*\(12, 28, 27\)"):
        fm.load_data(data_dir=folder)


def test_label_out_of_range(tmp_path, monkeypatch, tiny):
    arrays = dict(tiny, **{fm.TRAIN_LABELS: np.full(12, 10, np.uint8)})
    monkeypatch.setattr(fm, "CHECKSUMS", checksums_of(arrays))
    folder = write_dataset(tmp_path / "mine", arrays)
    with pytest.raises(CorruptDataError, match=r"12 labels are outside 0..9"):
        fm.load_data(data_dir=folder)


def test_image_and_label_counts_must_match(tmp_path, monkeypatch, tiny):
    arrays = dict(tiny, **{fm.TEST_LABELS: np.zeros(4, np.uint8)})
    monkeypatch.setattr(fm, "CHECKSUMS", checksums_of(arrays))
    folder = write_dataset(tmp_path / "mine", arrays)
    with pytest.raises(CorruptDataError, match="5 images but .* 4 labels"):
        fm.load_data(data_dir=folder)


def test_content_checksum_ignores_gzip_header(tmp_path, tiny):
    # Debian's .gz files differ from the official ones in their gzip header only.
    folder = write_dataset(tmp_path / "mine", tiny)
    path = folder / f"{fm.TRAIN_LABELS}.gz"
    path.write_bytes(gzip.compress(idx.encode_idx(tiny[fm.TRAIN_LABELS]), mtime=123456))
    assert_loaded(fm.load_data(data_dir=folder), tiny)


# ----------------------------------------------------------------------- download


@pytest.fixture
def mirror(tmp_path, monkeypatch, tiny) -> Path:
    """A file:// "server" folder holding the tiny dataset; the URL env points at it."""
    folder = write_dataset(tmp_path / "mirror", tiny)
    monkeypatch.setenv(fm.URL_ENV, folder.as_uri())  # no trailing "/": it is added
    return folder


def test_download_into_cache(tiny, mirror, cache, capsys):
    assert_loaded(fm.load_data(verbose=False), tiny)
    assert files_in(cache) == sorted(f"{name}.gz" for name in fm.FILES)
    for name in fm.FILES:  # byte-for-byte copies of the source
        assert (cache / f"{name}.gz").read_bytes() == (mirror / f"{name}.gz").read_bytes()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_download_shows_progress(tiny, mirror, capsys):
    fm.load_data(verbose=True)
    err = capsys.readouterr().err
    assert "Downloading Fashion-MNIST" in err
    assert fm.TRAIN_IMAGES in err  # the progress bar's label


def test_second_load_uses_cache_without_network(tmp_path, tiny, mirror, monkeypatch, cache):
    fm.load_data(verbose=False)
    monkeypatch.setenv(fm.URL_ENV, (tmp_path / "gone").as_uri())
    assert_loaded(fm.load_data(verbose=False), tiny)


def test_download_fetches_only_missing_files(tmp_path, tiny, monkeypatch, cache):
    write_dataset(cache, {k: tiny[k] for k in (fm.TRAIN_IMAGES, fm.TRAIN_LABELS)})
    source = write_dataset(tmp_path / "half-mirror", tiny)
    for name in (fm.TRAIN_IMAGES, fm.TRAIN_LABELS):
        (source / f"{name}.gz").unlink()
    monkeypatch.setenv(fm.URL_ENV, source.as_uri())
    assert_loaded(fm.load_data(verbose=False), tiny)


@pytest.mark.parametrize("damage", ["truncated", "wrong checksum"])
def test_download_of_corrupt_file_leaves_nothing(tiny, mirror, cache, damage):
    path = mirror / f"{fm.TRAIN_IMAGES}.gz"  # the first file fetched
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        del data[len(data) // 2 :]
    else:
        data = bytearray(gzip.compress(idx.encode_idx(tiny[fm.TRAIN_IMAGES])[:-1] + b"\x07"))
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptDataError, match=fm.TRAIN_IMAGES) as err:
        fm.load_data(verbose=False)
    assert "delete this file" in str(err.value)
    assert files_in(cache) == []  # no file and no temp file


def test_download_write_failure_leaves_no_temp_file(tiny, mirror, cache, monkeypatch):
    def broken_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated"):
        fm.load_data(verbose=False)
    assert files_in(cache) == []


# ----------------------------------------------------------------------- offline


def test_offline_error_lists_places_and_fixes(tmp_path, monkeypatch, cache):
    (tmp_path / "env").mkdir()
    monkeypatch.setenv(fm.DATA_ENV, str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as err:
        fm.load_data(verbose=False)
    message = str(err.value)
    for place in (tmp_path / "env", cache, tmp_path / "system"):
        assert str(place) in message
    assert "download failed" in message
    assert f"set {fm.DATA_ENV}" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "internet" in message
    assert "could not download" in message  # the cause, in the text
    assert err.value.__cause__ is None and err.value.__suppress_context__  # one traceback
    assert files_in(cache) == []


def test_data_env_naming_no_folder_is_an_error(tmp_path, monkeypatch, cache):
    def no_network(*args, **kwargs):
        raise AssertionError("a wrong TINYCNN_DATA must not lead to a download")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setenv(fm.DATA_ENV, str(tmp_path / "typo"))
    with pytest.raises(DatasetNotFoundError, match=r"TINYCNN_DATA='.*typo' is not a folder"):
        fm.load_data(verbose=False)


@pytest.mark.parametrize("obstacle", ["file in the way", "read-only"])
def test_unwritable_cache_says_how_to_fix_it(tiny, mirror, cache, monkeypatch, obstacle):
    if obstacle == "file in the way":
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text("not a folder")
    else:

        def read_only(*args, **kwargs):
            raise PermissionError(13, "Permission denied (simulated)", str(cache))

        monkeypatch.setattr(fm.idx, "write_bytes_atomic", read_only)
    with pytest.raises(
        fm.CacheError, match=r"Cannot save the downloaded Fashion-MNIST.*XDG_CACHE_HOME"
    ):
        fm.load_data(verbose=False)


def test_corrupt_file_error_has_no_chained_traceback(tmp_path, tiny):
    write_dataset(tmp_path, tiny)
    (tmp_path / f"{fm.TRAIN_LABELS}.gz").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(CorruptDataError) as err:
        fm.load_data(data_dir=tmp_path)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_download_false_does_not_try(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("download=False must not fetch anything")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DatasetNotFoundError, match="Download is off"):
        fm.load_data(download=False)


# ----------------------------------------------------------------------- real data


def find_real_data():
    """The first folder holding the real four files, or None."""
    candidates = [REAL_DATA_ENV, REPO_ROOT / "../shared/data/fashion-mnist"]
    candidates.append("/usr/share/datasets/fashion-mnist")
    for folder in candidates:
        if folder and len(fm.find_files(folder)) == len(fm.FILES):
            return Path(folder).resolve()
    return None


REAL_DATA = find_real_data()


@pytest.mark.slow
@pytest.mark.skipif(
    REAL_DATA is None,
    reason=f"real Fashion-MNIST not found: set {fm.DATA_ENV}, put it in ../shared/data/"
    "fashion-mnist or run apt-get install dataset-fashion-mnist",
)
def test_real_data():
    start = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = fm.load_data(data_dir=REAL_DATA)  # checks SHA-256
    seconds = time.perf_counter() - start
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    for array in (x_train, y_train, x_test, y_test):
        assert array.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), [1000] * 10)
    assert fm.CLASS_NAMES[y_train[0]] == "Ankle boot"  # the official first sample
    assert seconds < 10, f"loading took {seconds:.1f} s"


def test_data_env_naming_a_file_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv(fm.DATA_ENV, str(tmp_path / "a-file"))
    with pytest.raises(DatasetNotFoundError, match=r"is not a folder"):
        fm.load_data(verbose=False)


def test_the_compressed_file_is_preferred_when_both_are_there(tmp_path, tiny):
    write_dataset(tmp_path, tiny, compress=True)
    write_dataset(tmp_path, tiny, compress=False)
    found = fm.find_files(tmp_path)
    assert {path.name for path in found.values()} == {f"{name}.gz" for name in fm.FILES}
