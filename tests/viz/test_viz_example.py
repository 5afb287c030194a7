"""examples/fashion_mnist.py --plot: a clear error at once when matplotlib is missing
(the pictures themselves are checked in tests/test_example_script.py, on real data)."""

from __future__ import annotations

import importlib.util

import pytest
from real_data import REPO_ROOT

SCRIPT = REPO_ROOT / "examples" / "fashion_mnist.py"


def load_example():
    spec = importlib.util.spec_from_file_location("fashion_mnist_example_plot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plot_is_parsed(tmp_path):
    example = load_example()
    assert example.parse_args(["--plot", str(tmp_path)]).plot == str(tmp_path)
    assert example.parse_args([]).plot is None


def test_plot_without_matplotlib_stops_before_training(capsys, tmp_path):
    example = load_example()
    example.viz = None  # as the import leaves it without matplotlib
    with pytest.raises(SystemExit) as stop:
        example.parse_args(["--plot", str(tmp_path)])
    assert stop.value.code == 2
    assert 'pip install "tinycnn[plot]"' in capsys.readouterr().err
    assert example.parse_args([]).plot is None  # without --plot, no matplotlib needed
