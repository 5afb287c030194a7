"""Where the tests find the real Fashion-MNIST files, and a skip mark for when they can't.

``TINYCNN_DATA`` if set, else the verified copy in ``../shared/data/fashion-mnist``
beside the repository (CI points ``TINYCNN_DATA`` there).
"""

import os
from pathlib import Path

import pytest

from tinycnn.datasets import fashion_mnist as fm

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = Path(
    os.environ.get("TINYCNN_DATA") or REPO_ROOT.parent / "shared" / "data" / "fashion-mnist"
)


def data_present(folder: Path) -> bool:
    return all((folder / f"{name}.gz").is_file() or (folder / name).is_file() for name in fm.FILES)


requires_real_data = pytest.mark.skipif(
    not data_present(DATA),
    reason=f"Fashion-MNIST data not found in {DATA} (set TINYCNN_DATA to the folder "
    "holding the four IDX files)",
)
