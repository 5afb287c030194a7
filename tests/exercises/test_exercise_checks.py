"""What a check does besides catching bugs: seeds and replays, the report (text, Markdown,
HTML), a student's exceptions and wrong return values turned into clear messages, the
worst entry found, nothing of the solution shown, speed, docstrings and imports."""

from __future__ import annotations

import inspect
import subprocess
import sys
import time
from pathlib import Path

import exercise_bugs
import exercise_solutions as good
import numpy as np
import pytest

from tinycnn import exercises
from tinycnn.exercises import (
    CheckReport,
    check_adam_step,
    check_conv2d_backward,
    check_dense_backward,
    check_im2col,
    check_maxpool_backward,
    check_softmax_cross_entropy,
)

CHECKS = [name for name in exercises.__all__ if name.startswith("check_")]


# ---- seeds ----------------------------------------------------------------------------------
def test_each_call_draws_new_cases_and_a_seed_replays_them():
    bug = exercise_bugs.conv_backward_col2im_assign
    first, second = check_conv2d_backward(bug), check_conv2d_backward(bug)
    assert first.seed != second.seed  # fresh entropy on every call
    assert str(first) != str(second)  # so different numbers in the failing case
    replay = check_conv2d_backward(bug, seed=first.seed)
    assert str(replay) == str(first)
    assert f"check_conv2d_backward(conv_backward_col2im_assign, seed={first.seed})" in str(first)


def test_the_cases_cover_what_the_issue_asks_for():
    from tinycnn.exercises import cases

    rng = np.random.default_rng(0)
    conv = cases.conv_cases(rng)
    assert {c.args["stride"] for c in conv} >= {1, 2}
    assert {c.args["padding"] for c in conv} == {"valid", "same"}
    assert any("odd total" in c.hint for c in conv)
    pool = cases.pool_cases(rng, backward=True)
    overlapping = [c for c in pool if c.args["stride"] < c.args["pool_size"]]
    assert overlapping and any("ties" in c.hint for c in overlapping)
    ties = [c for c in pool if "ties" in c.hint]
    assert all(np.array_equal(c.args["x"], np.round(c.args["x"])) for c in ties)
    logits = [np.abs(c.args["logits"]).min() for c in cases.softmax_cases(rng)]
    assert max(logits) > 900
    adam = cases.adam_cases(rng)
    assert {c.args["t"] for c in adam} >= {1, 2, 3}
    assert min(np.sqrt(c.args["grad"] ** 2 * 1e-3).max() for c in adam) < 1e-7  # sqrt(v) ~ eps


# ---- the report -----------------------------------------------------------------------------
def test_a_passing_report():
    report = check_dense_backward(good.dense_backward, seed=3)
    assert report.ok and report.failure is None and report.passed == report.n_cases
    assert str(report) == f"check_dense_backward: passed all {report.n_cases} cases (seed 3)"
    assert "passed all" in report._repr_html_() and "passed all" in report._repr_markdown_()


def test_the_failing_report_names_the_worst_entry_with_expected_and_got():
    def off_by_a_bit(x, kernel, dy):
        dx, dkernel, dbias = good.dense_backward(x, kernel, dy)
        dkernel[1, 0] += 0.5  # one entry wrong
        dkernel[0, 0] += 1e-12  # and one within the tolerance
        return dx, dkernel, dbias

    report = check_dense_backward(off_by_a_bit, seed=5)
    assert not report.ok and report.failure.case_number == 1
    assert report.failure.problem == "dkernel is wrong at index (1, 0)"
    case = exercises.cases.dense_cases(np.random.default_rng(5))[0]
    right = good.dense_backward(**case.args)[1][1, 0]
    details = dict(report.failure.details)
    assert details["expected"] == f"{right:.10g}"
    assert details["got"].startswith(f"{right + 0.5:.10g}")
    assert details["outputs"] == "dx ok, dkernel wrong (1 of 6 entries), dbias ok"
    text = str(report)
    assert f"case:     x {case.args['x'].shape}, kernel (3, 2), dy (1, 2)" in text
    assert "hint:     one sample" in text


def test_html_and_markdown_escape_what_they_show():
    def lt(x, kh, kw, stride):
        raise ValueError("x <b>bold</b> * _under_")

    report = check_im2col(lt, seed=0)
    assert "<b>bold</b>" not in report._repr_html_()
    assert "&lt;b&gt;bold&lt;/b&gt;" in report._repr_html_()
    assert "\\*" in report._repr_markdown_().splitlines()[0]
    assert report._repr_markdown_().startswith("❌")


# ---- what the student's function did --------------------------------------------------------
def test_an_exception_is_reported_with_the_line_it_came_from():
    def im2col(x, kh, kw, stride):
        n = x.shape[0]
        return x.reshape(n, kh * kw)  # the student's line

    report = check_im2col(im2col, seed=1)
    assert not report.ok
    assert report.failure.problem.startswith("im2col raised ValueError: cannot reshape array")
    where = dict(report.failure.details)["where"]
    assert where.endswith(", in im2col: return x.reshape(n, kh * kw)  # the student's line")


def test_not_implemented_yet_says_where_to_write():
    def adam_step(*args):
        raise NotImplementedError("your code here")

    report = check_adam_step(adam_step, seed=0)
    assert report.failure.problem == (
        "adam_step raised NotImplementedError: write your code where it says 'your code here'"
    )
    assert report.failure.case_number == 1 and report.passed == 0


@pytest.mark.parametrize(
    "returned, problem",
    [
        (lambda r: None, "fn returned None: did you forget the return (dx, dkernel, dbias)?"),
        (lambda r: r[:2], "fn returned a tuple of 2; expected a tuple of 3: (dx, dkernel, dbias)"),
        (lambda r: r[0], "fn returned a ndarray; expected a tuple of 3: (dx, dkernel, dbias)"),
        (lambda r: (r[0], r[1], list(r[2])), "dbias is a list; expected a NumPy array"),
        (lambda r: (r[0], r[1], None), "fn returned None for dbias: did you forget a return?"),
        (lambda r: (r[0], r[1].T, r[2]), "dkernel has shape (2, 3), expected (3, 2)"),
        (lambda r: (r[0].astype(complex), r[1], r[2]), "dx has dtype complex128; expected"),
    ],
)
def test_a_wrong_return_value_is_named(returned, problem):
    def fn(x, kernel, dy):
        return returned(good.dense_backward(x, kernel, dy))

    report = check_dense_backward(fn, seed=0)
    assert not report.ok and report.failure.problem.startswith(problem)


def test_a_transposed_shape_is_pointed_out():
    def fn(x, kernel, dy):
        dx, dkernel, dbias = good.dense_backward(x, kernel, dy)
        return dx, dkernel.T, dbias

    notes = [t for label, t in check_dense_backward(fn, seed=0).failure.details if label == "note"]
    assert "got the transposed shape" in notes


def test_the_loss_may_be_a_float_a_numpy_scalar_or_a_0d_array_not_a_vector():
    for wrap in (float, np.float64, np.asarray):

        def fn(logits, labels, wrap=wrap):
            loss, dlogits = good.softmax_cross_entropy(logits, labels)
            return wrap(loss), dlogits

        assert check_softmax_cross_entropy(fn, seed=0).ok, wrap

    def vector(logits, labels):
        loss, dlogits = good.softmax_cross_entropy(logits, labels)
        return np.array([loss]), dlogits

    report = check_softmax_cross_entropy(vector, seed=0)
    assert report.failure.problem == "loss has shape (1,), expected ()"


def test_float32_results_are_caught_and_said():
    # a float64 answer cast to float32 at the end is within the tolerance on most
    # entries: without a dtype rule it passed every seed, and float32 arithmetic failed
    # about one seed in ten; now both fail on every seed, with the same words
    def cast(x, kernel, dy):
        dx, dkernel, dbias = good.dense_backward(x, kernel, dy)
        return dx.astype(np.float32), dkernel, dbias

    def computed(x, kernel, dy):
        return good.dense_backward(*(a.astype(np.float32) for a in (x, kernel, dy)))

    for fn, first in ((cast, "dx"), (computed, "dx")):
        for seed in range(20):
            report = check_dense_backward(fn, seed=seed)
            assert report.failure.case_number == 1, (fn.__name__, seed)
            assert report.failure.problem == f"{first} has dtype float32; expected float64"
    half = check_maxpool_backward(
        lambda x, dy, p, s: good.maxpool_backward(x, dy, p, s).astype(np.float16), seed=0
    )
    assert half.failure.problem == "dx has dtype float16; expected float64"
    notes = [t for label, t in half.failure.details if label == "note"]
    assert notes[0].startswith("the inputs are float64: compute and return float64")


def test_a_single_number_off_by_an_odd_factor_gets_no_factor_note():
    # for a single number "every entry is the expected one times 0.686" says nothing;
    # a factor like the batch size does
    def entropy(logits, labels):  # the entropy of p instead of the cross-entropy
        loss, dlogits = good.softmax_cross_entropy(logits, labels)
        p = np.exp(good.log_softmax(logits))
        return -(p * np.log(p)).sum(axis=1).mean(), dlogits

    def summed(logits, labels):
        loss, dlogits = good.softmax_cross_entropy(logits, labels)
        return loss * len(labels), dlogits

    notes = [t for label, t in check_softmax_cross_entropy(entropy, seed=0).failure.details]
    assert not any("times" in t for t in notes)
    failure = check_softmax_cross_entropy(summed, seed=0).failure
    assert ("note", "every entry is the expected one times 4") in failure.details


def test_a_solution_may_work_in_place_on_its_arguments():
    def adam_in_place(param, grad, m, v, t, learning_rate, beta_1, beta_2, epsilon):
        m *= beta_1
        m += (1 - beta_1) * grad
        v *= beta_2
        v += (1 - beta_2) * grad * grad
        param -= (
            learning_rate * np.sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (np.sqrt(v) + epsilon)
        )
        return param, m, v

    assert check_adam_step(adam_in_place, seed=0).ok


def test_a_check_wants_a_function():
    with pytest.raises(TypeError, match="check_im2col expects your function, got ndarray"):
        check_im2col(np.zeros(3))


def test_no_report_shows_the_solution():
    """A report holds numbers, shapes and the student's own line, never tinycnn's code."""
    sources = [
        Path(exercises.expected.__file__),
        Path(exercises.expected.reference.__file__),
        Path(good.__file__),
    ]
    code = {
        line.strip()
        for path in sources
        for line in path.read_text().splitlines()
        if len(line.strip()) > 12 and not line.strip().startswith(("#", '"', "def ", "return"))
    }
    assert len(code) > 100
    for bug in exercise_bugs.ZOO:
        report = getattr(exercises, bug.check)(bug.fn, seed=0)
        # the "where" line quotes the bug's own code, which may share a line with good's
        text = "\n".join([report.headline()] + [t for k, t in report.lines() if k != "where"])
        leaked = [line for line in code if line in text]
        assert not leaked, (bug.id, leaked)


def test_the_report_shown_in_the_docs_is_a_real_one():
    """docs/exercises.md shows a report: it is exactly what the check prints for that bug."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "exercises.md").read_text()
    shown = page.split("```text\n", 1)[1].split("```", 1)[0].rstrip("\n")

    def conv2d_backward(x, kernel, dy, stride, padding):  # the student's name for it
        return exercise_bugs.conv_backward_dbias_mean(x, kernel, dy, stride, padding)

    assert str(check_conv2d_backward(conv2d_backward, seed=0)) == shown
    assert f"against {len(exercise_bugs.ZOO)} wrong solutions" in page


# ---- speed, docs, imports -------------------------------------------------------------------
@pytest.mark.parametrize("check", CHECKS)
def test_a_check_takes_well_under_a_second(check):
    fn = good.SOLUTIONS[check]
    seconds = []
    for seed in range(3):
        start = time.perf_counter()
        getattr(exercises, check)(fn, seed=seed)
        seconds.append(time.perf_counter() - start)
    print(f"\n{check}: {min(seconds) * 1000:.0f} ms")
    assert min(seconds) < 0.5


def test_every_public_name_has_a_docstring_with_shapes():
    assert set(exercises.__all__) == {*CHECKS, "CheckReport", "Failure"}
    for name in exercises.__all__:
        doc = inspect.getdoc(getattr(exercises, name))
        assert doc and len(doc) > 60, name
    for name in CHECKS:
        assert "(N" in inspect.getdoc(getattr(exercises, name)) or name == "check_adam_step"
    for name in ("ok", "replay", "headline", "lines"):
        assert inspect.getdoc(getattr(CheckReport, name)), name


def test_importing_the_exercises_loads_no_plotting_or_notebook_library():
    code = (
        "import sys, tinycnn.exercises\n"
        "bad = [m for m in ('matplotlib', 'nbclient', 'IPython', 'jupytext', 'sphinx', 'h5py')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---- exercises: a NaN in a student's result --------------------------------------------------
@pytest.mark.parametrize("where", [0, -1])
def test_a_nan_in_the_result_fails_the_check(where):
    """mutant ex-nan-passes: |NaN - expected| / tol > 1 is False, so a comparison that
    does not treat NaN as wrong passes a result full of NaNs."""

    def dense_backward_with_a_nan(x, kernel, dy):
        dbias = dy.sum(axis=0)
        dbias[where] = np.nan
        return dy @ kernel.T, x.T @ dy, dbias

    report = check_dense_backward(dense_backward_with_a_nan, seed=0)
    assert not report.ok
    assert report.passed == 0  # the first case already has the NaN
    assert "dbias is wrong" in str(report) and "got:      nan" in str(report)


def test_a_result_of_all_nans_fails_the_check():
    """mutant ex-nan-passes, the blunt version: every output NaN."""

    def all_nan(x, kernel, dy):
        return (
            np.full(x.shape, np.nan),
            np.full(kernel.shape, np.nan),
            np.full(kernel.shape[1], np.nan),
        )

    report = check_dense_backward(all_nan, seed=1)
    assert not report.ok and "dx is wrong" in str(report)
