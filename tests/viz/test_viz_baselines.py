"""Three key pictures compared with stored PNGs (tests/viz/baseline/), pixel by pixel
up to a small tolerance, by ``matplotlib.testing.compare.compare_images``.

The figures are made from fixed numbers (no training), at a fixed size and dpi, with
matplotlib's default settings and the DejaVu Sans font (conftest.py), so they are the
same on every machine with the pinned matplotlib. After an intended change of a
picture, look at the new one, then regenerate the baselines with

    TINYCNN_UPDATE_BASELINES=1 pytest tests/viz/test_viz_baselines.py

which writes the PNGs instead of comparing (and skips), and commit them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.testing.compare import compare_images
from viz_models import small_cnn

from tinycnn import viz

BASELINE = Path(__file__).parent / "baseline"
UPDATE = os.environ.get("TINYCNN_UPDATE_BASELINES", "") not in ("", "0")
TOLERANCE = 2.0  # RMS difference of the pixel values (0-255); a moved line is far above


def confusion_figure():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 4, 200))
    return viz.plot_confusion_matrix(y_true, y_pred, ["cat", "dog", "emu", "fox"])


def filters_figure():
    return viz.show_filters(small_cnn(seed=0).layers[0])  # seeded initial weights


def images_figure():
    x = np.zeros((6, 8, 8, 1), "float32")
    for k in range(6):  # a bar per image, in a different place: easy to see
        x[k, k + 1, 1:7] = 1.0
        x[k, 1:7, k + 1] = 0.5
    return viz.show_images(x, [0, 1, 2, 0, 1, 2], [0, 2, 2, 0, 1, 1], ["a", "b", "c"], ncols=3)


FIGURES = {"confusion_matrix": confusion_figure, "filters": filters_figure, "images": images_figure}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_matches_the_baseline(name, tmp_path):
    fig = FIGURES[name]()
    actual = tmp_path / f"{name}.png"
    fig.savefig(actual, dpi=72)
    expected = BASELINE / f"{name}.png"
    if UPDATE:
        BASELINE.mkdir(exist_ok=True)
        shutil.copyfile(actual, expected)
        pytest.skip(f"wrote {expected}")
    assert expected.is_file(), f"no baseline {expected}: see this module's docstring"
    difference = compare_images(str(expected), str(actual), tol=TOLERANCE)
    assert difference is None, difference
