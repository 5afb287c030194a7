"""What the viz tests share: matplotlib on the Agg backend with its default settings
and one fixed font (so a picture is the same on every machine), the figures closed
after each test, and small hand-made models."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")  # the optional extra "plot"
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def plain_matplotlib():
    """matplotlib's defaults and DejaVu Sans (shipped with matplotlib) for each test,
    the previous settings restored afterwards; every figure closed."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams["font.family"] = "DejaVu Sans"
        yield
    plt.close("all")


@pytest.fixture
def images():
    """Eight 12x12 grey images in [0, 1], seeded."""
    return np.random.default_rng(0).random((8, 12, 12, 1)).astype("float32")
