"""tinycnn.viz is optional: ``import tinycnn`` never loads matplotlib, and without
matplotlib ``import tinycnn.viz`` says how to install it."""

from __future__ import annotations

import subprocess
import sys

import tinycnn.viz as viz

SIX = [
    "plot_history",
    "plot_confusion_matrix",
    "show_images",
    "show_filters",
    "show_feature_maps",
    "show_saliency",
]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_tinycnn_does_not_import_matplotlib():
    result = run_python("import sys, tinycnn; print('matplotlib' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_without_matplotlib_the_error_says_what_to_install():
    # sys.modules[name] = None makes "import name" fail as if it were not installed
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import tinycnn\n"
        "try:\n    import tinycnn.viz\n"
        "except ImportError as error:\n    print(error)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert 'pip install "tinycnn[plot]"' in result.stdout


def test_exports():
    assert set(SIX) <= set(viz.__all__)
    assert {"saliency_map", "gradcam_map", "occlusion_map"} <= set(viz.__all__)
    for name in viz.__all__:
        assert callable(getattr(viz, name)), name
