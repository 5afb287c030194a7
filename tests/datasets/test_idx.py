"""Tests for tinycnn.datasets.idx on small IDX files built in a temporary folder."""

import gzip
import os
import struct

import numpy as np
import pytest

from tinycnn.datasets import idx
from tinycnn.datasets.idx import IDXError, parse_idx, read_idx, write_idx

DTYPES = ["uint8", "int8", "int16", "int32", "float32", "float64"]


def header(code: int, *shape: int) -> bytes:
    """A hand-written IDX header: two zero bytes, dtype code, ndim, big-endian sizes."""
    return bytes([0, 0, code, len(shape)]) + b"".join(s.to_bytes(4, "big") for s in shape)


def sample(dtype: str, shape=(3, 4, 5)) -> np.ndarray:
    """A deterministic array using the dtype's extremes, so byte order errors show."""
    info = np.finfo(dtype) if dtype.startswith("float") else np.iinfo(dtype)
    values = np.linspace(0, 1, num=int(np.prod(shape))).reshape(shape)
    array = (info.min / 4 + values * (info.max / 4 - info.min / 4)).astype(dtype)
    return array


# ----------------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path, dtype, suffix):
    array = sample(dtype)
    path = tmp_path / f"array.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype)
    assert back.dtype.isnative
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable


@pytest.mark.parametrize("shape", [(), (0,), (7,), (2, 3), (2, 1, 3, 2)])
def test_round_trip_shapes(tmp_path, shape):
    array = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    write_idx(tmp_path / "a.idx", array)
    back = read_idx(tmp_path / "a.idx")
    assert back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_layout_on_disk_is_big_endian():
    data = idx.encode_idx(np.array([[1, 2, 3]], dtype=np.int32))
    assert data == header(0x0C, 1, 3) + bytes.fromhex("00000001 00000002 00000003")


def test_mnist_style_magic_numbers():
    images = idx.encode_idx(np.zeros((2, 28, 28), np.uint8))
    labels = idx.encode_idx(np.zeros(2, np.uint8))
    assert int.from_bytes(images[:4], "big") == 2051
    assert int.from_bytes(labels[:4], "big") == 2049


def test_read_from_bytes_raw_and_gzip():
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    raw = idx.encode_idx(array)
    np.testing.assert_array_equal(read_idx(raw), array)
    np.testing.assert_array_equal(read_idx(gzip.compress(raw)), array)
    np.testing.assert_array_equal(read_idx(bytearray(raw)), array)


def test_gzip_detected_by_content_not_name(tmp_path):
    array = np.arange(5, dtype=np.int16)
    write_idx(tmp_path / "plain.gz", array, compress=False)  # unpacked, but named .gz
    write_idx(tmp_path / "packed.idx", array, compress=True)  # gzipped, named without .gz
    assert (tmp_path / "plain.gz").read_bytes()[:2] == b"\0\0"
    assert (tmp_path / "packed.idx").read_bytes()[:2] == idx.GZIP_MAGIC
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "packed.idx"), array)


def test_gzip_output_is_deterministic(tmp_path):
    array = np.arange(100, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    first = (tmp_path / "a.gz").read_bytes()
    write_idx(tmp_path / "a.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == first


# ----------------------------------------------------------------------- errors


def write_bytes(tmp_path, name, data) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_bad_magic(tmp_path):
    path = write_bytes(tmp_path, "bad.idx", b"\x12\x34\x08\x01" + bytes(8))
    with pytest.raises(IDXError, match=r"0x00 0x00.*found 0x12 0x34") as err:
        read_idx(path)
    assert path in str(err.value)
    assert "Delete the file" in str(err.value)


def test_unknown_dtype_code(tmp_path):
    path = write_bytes(tmp_path, "bad.idx", header(0x0A, 2) + bytes(2))
    with pytest.raises(IDXError, match=r"unknown IDX dtype code 0x0A.*0x08 uint8") as err:
        read_idx(path)
    assert path in str(err.value)


@pytest.mark.parametrize("data", [b"", b"\0\0", header(0x08, 3, 4)[:9]])
def test_truncated_header(tmp_path, data):
    path = write_bytes(tmp_path, "short.idx", data)
    with pytest.raises(IDXError, match="header") as err:
        read_idx(path)
    assert path in str(err.value)


def test_truncated_payload(tmp_path):
    path = write_bytes(tmp_path, "short.idx", header(0x0C, 2, 3) + bytes(23))
    with pytest.raises(IDXError, match=r"truncated payload.*needs 24 bytes.*found only 23") as err:
        read_idx(path)
    assert path in str(err.value)


def test_trailing_bytes(tmp_path):
    path = write_bytes(tmp_path, "long.idx", header(0x08, 2, 3) + bytes(7))
    with pytest.raises(IDXError, match=r"1 unexpected trailing bytes.*exactly 6.*found 7") as err:
        read_idx(path)
    assert path in str(err.value)


def test_truncated_gzip(tmp_path):
    packed = gzip.compress(idx.encode_idx(np.arange(1000, dtype=np.int32)))
    path = write_bytes(tmp_path, "cut.idx.gz", packed[: len(packed) // 2])
    with pytest.raises(IDXError, match="corrupt or truncated gzip") as err:
        read_idx(path)
    assert path in str(err.value)
    assert isinstance(err.value.__cause__, EOFError)


@pytest.mark.parametrize("where", ["body", "crc"])
def test_corrupt_gzip(tmp_path, where):
    packed = bytearray(gzip.compress(idx.encode_idx(np.arange(1000, dtype=np.int32))))
    position = len(packed) // 2 if where == "body" else len(packed) - 6  # CRC-32 is bytes -8..-5
    packed[position] ^= 0xFF
    path = write_bytes(tmp_path, "bad.idx.gz", bytes(packed))
    with pytest.raises(IDXError, match="corrupt or truncated gzip") as err:
        read_idx(path)
    assert path in str(err.value)


def test_not_gzip_nor_idx_named_gz(tmp_path):
    path = write_bytes(tmp_path, "page.gz", b"<html>Not found</html>")
    with pytest.raises(IDXError, match="neither IDX nor gzip"):
        read_idx(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.idx"):
        read_idx(tmp_path / "nope.idx")


def test_idx_error_is_value_error():
    assert issubclass(IDXError, ValueError)
    with pytest.raises(ValueError, match=r"<bytes>"):
        parse_idx(b"\1\1\1\1")


# ----------------------------------------------------------------------- writing


@pytest.mark.parametrize("dtype", ["uint16", "int64", "float16", "bool", "complex64"])
def test_write_rejects_unsupported_dtypes(tmp_path, dtype):
    with pytest.raises(IDXError, match=f"cannot store dtype {dtype}"):
        write_idx(tmp_path / "a.idx", np.zeros(3, dtype=dtype))
    assert list(tmp_path.iterdir()) == []


def test_write_leaves_no_temp_file(tmp_path):
    write_idx(tmp_path / "a.idx.gz", np.zeros(3, np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["a.idx.gz"]


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    path = tmp_path / "a.idx"
    write_idx(path, np.arange(3, dtype=np.uint8))
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated"):
        write_idx(path, np.arange(9, dtype=np.uint8))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.idx"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_written_files_get_the_permissions_of_a_plain_open(tmp_path):
    """The writer is tinycnn's one atomic writer (tinycnn/atomic_file.py); its temporary
    file is created like open() creates one: mode 0o666 less the umask (mkstemp's 0o600
    left dataset files unreadable to the other users of a shared machine)."""
    umask = os.umask(0o022)
    os.umask(umask)
    write_idx(tmp_path / "a.idx.gz", np.zeros(3, np.uint8))
    (tmp_path / "b.idx").write_bytes(b"")
    assert (tmp_path / "a.idx.gz").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "a.idx.gz").stat().st_mode == (tmp_path / "b.idx").stat().st_mode
    assert idx.write_bytes_atomic.__module__ == "tinycnn.atomic_file"


def test_float_idx_bytes_are_big_endian_as_the_format_says():
    """Known bytes, not a round trip (a reader and writer wrong the same way agree)."""
    encoded = idx.encode_idx(np.array([1.5, -2.0], dtype=np.float32))
    assert encoded == b"\x00\x00\x0d\x01" + b"\x00\x00\x00\x02" + struct.pack(">ff", 1.5, -2.0)
    np.testing.assert_array_equal(idx.parse_idx(encoded, "known"), [1.5, -2.0])


def test_written_gzip_files_do_not_depend_on_the_time(tmp_path):
    """mtime=0 in the gzip header: the same array always gives the same bytes."""
    path = tmp_path / "a.gz"
    idx.write_idx(path, np.arange(6, dtype=np.uint8))
    assert path.read_bytes()[4:8] == b"\x00\x00\x00\x00"
