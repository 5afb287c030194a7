"""plot_history draws exactly the History's numbers: per epoch, and per step."""

from __future__ import annotations

import numpy as np
import pytest
from viz_models import small_cnn

from tinycnn import viz
from tinycnn.callbacks import History


@pytest.fixture(scope="module")
def history():
    rng = np.random.default_rng(0)
    x = rng.random((40, 12, 12, 1)).astype("float32")
    y = rng.integers(0, 3, 40)
    model = small_cnn()
    model.compile("adam")
    return model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0, seed=0)


def lines_by_label(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


def test_per_epoch_and_per_step_curves_are_the_history(history, tmp_path):
    fig = viz.plot_history(history)
    fig.savefig(tmp_path / "history.png")
    assert (tmp_path / "history.png").stat().st_size > 0
    (loss_ax, acc_ax), (step_loss_ax, step_acc_ax) = np.reshape(fig.axes, (2, 2))
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        lines = lines_by_label(ax)
        assert lines["training"].get_ydata().tolist() == history.history[metric]
        assert lines["validation"].get_ydata().tolist() == history.history[f"val_{metric}"]
        assert lines["training"].get_xdata().tolist() == [1, 2, 3]
        assert ax.get_title() == f"{metric} per epoch"
    # 30 training images in batches of 16: 2 steps per epoch, 6 in all
    for ax, metric in ((step_loss_ax, "loss"), (step_acc_ax, "accuracy")):
        line = lines_by_label(ax)["training batch"]
        assert len(history.batch_history[metric]) == 6
        assert line.get_ydata().tolist() == history.batch_history[metric]
        assert line.get_xdata().tolist() == [1, 2, 3, 4, 5, 6]
    assert fig.tinycnn_data["history"] == history.history


def test_a_dict_gives_the_epoch_row_only():
    fig = viz.plot_history({"loss": [1.0, 0.5], "accuracy": [0.4, 0.7]})
    assert len(fig.axes) == 2
    assert lines_by_label(fig.axes[0])["training"].get_ydata().tolist() == [1.0, 0.5]
    assert "validation" not in lines_by_label(fig.axes[0])


def test_epochs_are_numbered_from_initial_epoch():
    history = History()
    for epoch, loss in ((4, 0.9), (5, 0.8)):  # fit(initial_epoch=4)
        history.on_epoch_end(epoch, {"loss": loss})
    fig = viz.plot_history(history)
    assert len(fig.axes) == 1  # no accuracy, no batch logs
    assert lines_by_label(fig.axes[0])["training"].get_xdata().tolist() == [5, 6]


def test_bad_arguments():
    with pytest.raises(TypeError, match="History"):
        viz.plot_history([0.5, 0.4])
    with pytest.raises(ValueError, match="no 'loss' or 'accuracy'.*'lr'"):
        viz.plot_history({"lr": [0.1]})
