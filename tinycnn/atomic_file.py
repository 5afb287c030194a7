"""Write a file so that it is either complete or untouched: the one atomic writer of tinycnn.

Saving a model and writing a dataset file both go through :func:`atomic_write`:

1. remove the temporary files that killed writers left next to ``path`` (see below);
2. write into a new temporary file in the same folder, named
   ``.{name}.{pid}.{random}.tmp``: the random part keeps two threads of one process
   apart, the pid says whose file it is;
3. flush it to the disk (``os.fsync``), so that the rename cannot make visible a
   file whose bytes are still only in memory;
4. rename it over ``path`` with ``os.replace``, atomic on one file system: a reader
   sees the old file or the new one, never half of one;
5. fsync the folder (where the OS allows it), so that the rename itself is on disk.

Should anything fail, Ctrl-C included, the temporary file is removed and ``path`` is
left as it was. SIGTERM (``kill``, a job scheduler's time limit) kills a Python process
without running any cleanup, so while writing, in the main thread, SIGTERM is turned into
an exception; after cleaning up, the process dies of SIGTERM as it would have.

SIGKILL (and a power cut) cannot be caught: their temporary files stay behind. The next
write to the same path removes those whose process no longer exists; a file of a live
process, which may still be writing it, is left alone.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
from pathlib import Path

_SUFFIX = ".tmp"


def atomic_write(path, write) -> None:
    """Call ``write(file)`` on a new temporary file, then rename it to ``path`` atomically.

    ``file`` is opened for writing bytes; ``write`` must not close it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    with _sigterm_raises():
        fd, tmp = _create_temporary(path)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())  # the bytes are on disk before the rename shows them
            os.replace(tmp, path)
        except BaseException:  # Ctrl-C and SIGTERM too: never leave the temporary file
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_folder(path.parent)


def write_bytes_atomic(path, data: bytes) -> None:
    """Write ``data`` to ``path`` with :func:`atomic_write`."""
    atomic_write(path, lambda f: f.write(data))


# ---- the temporary file -------------------------------------------------------------------
def _create_temporary(path: Path) -> tuple[int, Path]:
    """Open a new, empty ``.{name}.{pid}.{random}.tmp`` beside ``path``; (fd, its path).

    ``O_EXCL`` makes the creation fail rather than share a file with another writer;
    mode 0o666 (less the umask) gives the file the permissions a plain ``open`` would.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{_SUFFIX}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # 1 chance in 4 billion per try: draw another name
            continue


def _fsync_folder(folder: Path) -> None:
    """Flush the folder's entry list, so that the rename survives a power cut (POSIX only)."""
    if os.name != "posix":
        return  # Windows cannot open a folder as a file; NTFS journals renames itself
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (and some network mounts) refuse to fsync a folder
    finally:
        os.close(fd)


# ---- temporary files of killed writers --------------------------------------------------------
def writer_pid(tmp_name: str, target_name: str) -> int | None:
    """The pid in a temporary file name of ``target_name``, or None if it is not one.

    ``.model.npz.4242.a1b2c3d4.tmp`` -> 4242; the name of older tinycnn versions,
    ``.model.npz.4242.tmp``, gives 4242 too.
    """
    prefix = f".{target_name}."
    if not (tmp_name.startswith(prefix) and tmp_name.endswith(_SUFFIX)):
        return None
    pid = tmp_name[len(prefix) : -len(_SUFFIX)].split(".", 1)[0]
    if not (pid.isascii() and pid.isdigit() and 0 < int(pid) < 2**31):  # os.kill takes a C int
        return None
    return int(pid)


def process_exists(pid: int) -> bool:
    """Whether a process ``pid`` exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists but belongs to another user
        return True
    return True


def remove_stale_temporaries(path) -> list[Path]:
    """Remove the temporary files of ``path`` whose writer process no longer exists.

    Returns the removed paths. POSIX only: on Windows ``os.kill(pid, 0)`` would not test a
    process but send it Ctrl-C, so nothing is removed there.
    """
    path = Path(path)
    if os.name != "posix" or not path.parent.is_dir():
        return []
    removed = []
    for entry in os.scandir(path.parent):
        pid = writer_pid(entry.name, path.name)
        if pid is None or not entry.is_file(follow_symlinks=False) or process_exists(pid):
            continue
        with contextlib.suppress(FileNotFoundError):  # another writer removed it first
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


# ---- SIGTERM ------------------------------------------------------------------------------
class _Terminated(BaseException):
    """Raised by the temporary SIGTERM handler; a BaseException, like KeyboardInterrupt,
    so that no ``except Exception`` in ``write`` can swallow it."""


@contextlib.contextmanager
def _sigterm_raises():
    """While active, SIGTERM raises :class:`_Terminated` (so the temporary file is removed);
    on the way out the process is then killed by SIGTERM, as it would have been.

    Only in the main thread (Python runs signal handlers there, and only there may
    they be set) and only when SIGTERM has its default action: a program that handles
    SIGTERM itself keeps its handler.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def handler(signum, frame):
        raise _Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)  # die of SIGTERM now that nothing is left
        raise  # reached only where the signal is not delivered at once
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
