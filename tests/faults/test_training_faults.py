"""Ctrl-C in examples/fashion_mnist.py, for real: the script runs in a subprocess on the
first images of Fashion-MNIST and gets SIGINT at moments read from what it prints.

* Ctrl-C during training, then again once training has stopped (while the model is
  saved or the test set evaluated): the file is written and the script ends with a
  short message, not a traceback.
* One Ctrl-C during the final evaluation: the same.
* Started with SIGINT ignored (``cmd &`` in a script): Ctrl-C changes nothing.

Marked slow (each run takes seconds) and skipped without the data files.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
from real_data import DATA, REPO_ROOT, requires_real_data

import tinycnn

pytestmark = [pytest.mark.slow, requires_real_data]

SCRIPT = REPO_ROOT / "examples" / "fashion_mnist.py"
TIMEOUT = 180  # seconds for any one wait: the machine may be shared


class Script:
    """The example in a subprocess; its output lines are read as they come."""

    def __init__(self, tmp_path, *args, ignore_sigint=False):
        self.model_path = tmp_path / "model.npz"
        command = [sys.executable, str(SCRIPT), "--data-dir", str(DATA), "--verbose", "2"]
        command += ["--limit", "1000", "--epochs", "2", "--save", str(self.model_path), *args]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # what a shell does for `cmd &` in a script: the child ignores SIGINT
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
            if ignore_sigint
            else None,
        )
        self.lines: queue.Queue = queue.Queue()
        self.out: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, text: str) -> None:
        """Block until a printed line contains ``text``."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, f"ended before {text!r}:\n{''.join(self.out)}"
                continue
            self.out.append(line)
            if text in line:
                return
        pytest.fail(f"no {text!r} within {TIMEOUT} s:\n{''.join(self.out)}")

    def ctrl_c(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def finish(self) -> tuple[int, str, str]:
        """Wait for the end; returns (exit code, all of stdout, stderr)."""
        try:
            err = self.proc.stderr.read()
            code = self.proc.wait(timeout=TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        time.sleep(0.1)  # let the reader thread take the last lines
        while not self.lines.empty():
            self.out.append(self.lines.get())
        return code, "".join(self.out), err


def assert_saved_model_loads(path):
    model = tinycnn.load_model(path)
    assert model.count_params() == 862_410
    assert model.optimizer.iterations > 0


def test_ctrl_c_twice_saves_the_model_and_ends_without_a_traceback(tmp_path):
    script = Script(tmp_path)
    script.wait_for("Epoch 1/2")  # printed at the end of epoch 1: epoch 2 is running
    script.ctrl_c()
    script.wait_for("Training interrupted")  # fit returned; next: save, then evaluate
    script.ctrl_c()
    code, out, err = script.finish()
    assert "Traceback" not in err, err
    assert code == 130, (code, out, err)
    assert "Training interrupted (Ctrl-C)" in out
    assert "Saved the model to" in out or "The model is saved in" in err
    assert err.strip().startswith("Interrupted before the end of the test-set evaluation.")
    assert f"The model is saved in {script.model_path}." in err
    assert_saved_model_loads(script.model_path)


def test_ctrl_c_during_the_evaluation_keeps_the_saved_model(tmp_path):
    script = Script(tmp_path)
    script.wait_for("Saved the model to")  # the evaluation of 10,000 test images follows
    script.ctrl_c()
    code, out, err = script.finish()
    assert "Traceback" not in err, err
    assert code == 130, (code, out, err)
    assert "Test accuracy" not in out
    assert err.strip() == (
        "Interrupted before the end of the test-set evaluation. "
        f"The model is saved in {script.model_path}."
    )
    assert_saved_model_loads(script.model_path)


def test_a_run_that_ignores_sigint_goes_on_to_the_end(tmp_path):
    script = Script(tmp_path, "--json", ignore_sigint=True)
    script.wait_for("Epoch 1/2")
    script.ctrl_c()  # ignored, as the shell meant: fit must not install its own handler
    code, out, err = script.finish()
    assert code == 0, (code, out, err)
    assert "Training interrupted" not in out
    assert '"epochs": 2' in out.strip().splitlines()[-1]
    assert '"interrupted": false' in out.strip().splitlines()[-1]
    assert_saved_model_loads(script.model_path)
