"""Saving and loading faults that used to kill the process or exhaust its memory.

Each case runs in a child Python, so that a segmentation fault (rc -11), an abort or a
kill fails the test instead of ending pytest:

* optimizer state of the wrong shape (set by hand or loaded from a file): the compiled
  Adam kernel wrote past the end of m and v (rc 139); now a ValueError / ModelFileError;
* SIGTERM in the middle of a save: the temporary file stayed behind; now it is removed
  and the process still dies of SIGTERM;
* a small file with a huge compressed member: it was unpacked (1.5 GB, 9 s); now it is
  refused before anything is read. The child measures its own time and peak memory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and ru_maxrss: POSIX only")


def child(code: str, *args, timeout: float = 60, wait: bool = True):
    """Run ``code`` in a new Python that imports this checkout's tinycnn."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-c", textwrap.dedent(code), *map(str, args)]
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


MODEL = """
import sys
import numpy as np
import tinycnn
L = tinycnn.layers

def model(seed=0):
    return tinycnn.Sequential(
        [L.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)), L.Flatten(), L.Dense(3)],
        seed=seed,
    )

rng = np.random.default_rng(0)
x = rng.random((8, 8, 8, 1), dtype=np.float32)
y = rng.integers(0, 3, 8)
"""

# Adam state of shape (1,) for the (144, 3) kernel of dense
BAD_STATE = (
    '{"iterations": 1, "dense/kernel/m": np.zeros(1, np.float32),'
    ' "dense/kernel/v": np.zeros(1, np.float32)}'
)
CASES = {
    # compiled and built: set_state itself refuses
    "bound": f"""
        m = model(); m.compile(optimizer="adam"); m.build((8, 8, 1))
        m.optimizer.set_state({BAD_STATE})
        """,
    # compiled, not yet built: the first step refuses
    "unbuilt": f"""
        m = model(); m.compile(optimizer="adam")
        m.optimizer.set_state({BAD_STATE})
        for _ in range(20): m.train_on_batch(x, y)
        """,
    # a free optimizer: compiling it into a built model refuses
    "unbound": f"""
        m = model(); m.build((8, 8, 1))
        opt = tinycnn.optimizers.Adam(); opt.set_state({BAD_STATE})
        m.compile(optimizer=opt)
        for _ in range(20): m.train_on_batch(x, y)
        """,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_optimizer_state_of_the_wrong_shape_is_a_value_error(case):
    body = textwrap.indent(textwrap.dedent(CASES[case]).strip(), "    ")
    code = MODEL + f"try:\n{body}\nexcept ValueError as err:\n    print('ValueError:', err)\n"
    code += "else:\n    print('no error')\n"
    done = child(code)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    out = done.stdout
    assert out.startswith("ValueError:"), out
    assert "dense/kernel/m" in out and "(1,)" in out and "(144, 3)" in out


def test_loading_a_file_with_optimizer_state_of_the_wrong_shape(tmp_path):
    """The file variant (rc 139 when training after load_model): a ModelFileError naming
    the layer, the slot and both shapes, at load time."""
    code = MODEL + textwrap.dedent("""
        path = sys.argv[1]
        m = model(); m.compile(optimizer="adam"); m.fit(x, y, epochs=1, verbose=0)
        m.save(path)
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        arrays["optimizer/dense/kernel/m"] = np.zeros(1, np.float32)
        arrays["optimizer/dense/kernel/v"] = np.zeros(1, np.float32)
        np.savez(path, **arrays)
        try:
            loaded = tinycnn.load_model(path)
            for _ in range(20): loaded.train_on_batch(x, y)
        except tinycnn.saving.ModelFileError as err:
            print("ModelFileError:", err)
        else:
            print("no error")
        """)
    done = child(code, tmp_path / "m.npz")
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    out = done.stdout
    assert out.startswith("ModelFileError:"), out
    assert "'dense'" in out and "'m'" in out and "(1,)" in out and "(144, 3)" in out


# ---- SIGTERM while saving ------------------------------------------------------------------------
SLOW_SAVE = (
    MODEL
    + """
import time
from pathlib import Path
from tinycnn import saving

path, ready = Path(sys.argv[1]), Path(sys.argv[2])
m = model()
m.save(path)  # the previous file, which must survive

def slow_savez(file, **arrays):
    file.write(b"PK\\x03\\x04 the first bytes of a large model")
    file.flush()
    ready.write_text("writing")
    time.sleep(30)  # a large save; SIGTERM arrives now

saving.numpy.savez = slow_savez
m.save(path)
print("not interrupted")
"""
)


def test_sigterm_during_a_save_removes_the_temporary_file(tmp_path):
    path, ready = tmp_path / "model.npz", tmp_path.parent / f"{tmp_path.name}.ready"
    proc = child(SLOW_SAVE, path, ready, wait=False)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the child never started writing"
            time.sleep(0.02)
        temporaries = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(temporaries) == 1 and temporaries[0].startswith(f".model.npz.{proc.pid}.")
        before = path.read_bytes()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGTERM, (proc.returncode, err[-2000:])
    assert b"not interrupted" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temporary file
    assert path.read_bytes() == before  # the previous file, intact


# ---- a small file that unpacks to a lot ------------------------------------------------------------
MEASURE = """
import resource, sys, time
import tinycnn
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
start = time.perf_counter()
try:
    tinycnn.load_model(sys.argv[1])
    outcome = "loaded"
except Exception as err:
    outcome = f"{type(err).__name__}: {err}"
seconds = time.perf_counter() - start
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(f"{seconds:.3f} {grown:.1f} {outcome}")
"""


def add_zeros_member(path, name, size):
    """Append a deflated ``.npy`` of ``size`` zero bytes: about size / 1000 on disk."""
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open(name, "w", force_zip64=True) as f:
            header = {"descr": "|u1", "fortran_order": False, "shape": (size,)}
            np.lib.format.write_array_header_1_0(f, header)
            chunk = bytes(1 << 24)
            for start in range(0, size, len(chunk)):
                f.write(chunk[: min(len(chunk), size - start)])


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_a_small_file_with_a_huge_unused_member_is_refused_quickly_in_little_memory(tmp_path):
    import tinycnn

    L = tinycnn.layers
    model = tinycnn.Sequential([L.Flatten(input_shape=(4, 4, 1)), L.Dense(3)], seed=0)
    path = tmp_path / "bomb.npz"
    model.save(path)
    add_zeros_member(path, "junk.npy", 400_000_000)  # 400 MB unpacked
    assert path.stat().st_size < 3_000_000
    done = child(MEASURE, path)
    assert done.returncode == 0, done.stderr[-2000:]
    seconds, grown, outcome = done.stdout.split(" ", 2)
    assert outcome.startswith("ModelFileError:") and "'junk'" in outcome, outcome
    assert float(seconds) < 3.0
    assert float(grown) < 300.0  # MiB: nothing of the 400 MB was unpacked
