"""Figure 7.11 (cross entropy vs. MSE of the probabilities, as functions of the two scores), drawn in
p1ch7/exercises_solutions.ipynb: the cell is run here on its own, and what it draws and prints is checked
against the closed forms (p = sigmoid(right - wrong); CE = -log p; MSE = (1 - p)^2). Pure math: no data."""

import contextlib
import io
import math
import re

import matplotlib
import nbformat
import pytest
import torch
from torch import nn

import dlwpt

NOTEBOOK = dlwpt.REPO_ROOT / "p1ch7" / "exercises_solutions.ipynb"


def figure_cell():
    cells = [c for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.get("id") == "figure-7-11"]
    assert len(cells) == 1 and cells[0].cell_type == "code"
    return cells[0].source


@pytest.fixture(scope="module")
def drawn():
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    plt.close("all")
    namespace = {"torch": torch, "nn": nn, "plt": plt}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(figure_cell(), "figure-7-11", "exec"), namespace)
    figure = plt.gcf()
    yield namespace, printed.getvalue(), figure
    plt.close("all")


def closed_form(right, wrong):
    p = 1 / (1 + math.exp(wrong - right))
    return p, -math.log(p), (1 - p) ** 2


def test_two_surfaces_cross_entropy_left_mse_right(drawn):
    _, _, figure = drawn
    axes = figure.get_axes()
    assert [ax.name for ax in axes] == ["3d", "3d"]
    assert "cross entropy" in axes[0].get_title() and "MSE" in axes[1].get_title()
    for ax in axes:
        assert "right class" in ax.get_xlabel() and "wrong class" in ax.get_ylabel()


def test_surfaces_follow_the_closed_forms(drawn):
    namespace, _, _ = drawn
    right, wrong = namespace["right"].flatten(), namespace["wrong"].flatten()
    ce, mse = namespace["ce"], namespace["mse"]
    for i in range(0, len(right), 97):
        p, ce_exact, mse_exact = closed_form(float(right[i]), float(wrong[i]))
        assert float(ce[i]) == pytest.approx(ce_exact, rel=1e-4, abs=1e-6)
        assert float(mse[i]) == pytest.approx(mse_exact, rel=1e-4, abs=1e-7)
    # The book's point: where the wrong class leads by 4 or more, the MSE has saturated (nearly flat, near 1),
    # while the cross entropy keeps growing with the lead.
    far_wrong = (wrong - right) >= 4
    assert float(mse[far_wrong].min()) > 0.96 and float(mse[far_wrong].max() - mse[far_wrong].min()) < 0.04
    assert float(ce[far_wrong].min()) < 4.1 and float(ce[far_wrong].max()) > 7.9


def test_printed_points_and_slopes(drawn):
    _, text, _ = drawn
    rows = {}
    for line in text.splitlines():
        name = line[:21].strip()
        rows[name] = [float(x) for x in re.findall(r"[-+]?\d+\.\d+", line[21:])]
    assert set(rows) == {"right class far ahead", "undecided", "wrong class far ahead"}
    for name, (right, wrong) in [("right class far ahead", (4, -4)), ("undecided", (0, 0)),
                                 ("wrong class far ahead", (-4, 4))]:
        p, ce_exact, mse_exact = closed_form(right, wrong)
        p_printed, ce, ce_slope, mse, mse_slope = rows[name]
        assert p_printed == pytest.approx(p, abs=1e-4)
        assert ce == pytest.approx(ce_exact, abs=1e-4) and ce_slope == pytest.approx(p - 1, abs=1e-4)
        assert mse == pytest.approx(mse_exact, abs=1e-4)
        assert mse_slope == pytest.approx(-2 * p * (1 - p) ** 2, abs=1e-6)
    assert f"{rows['right class far ahead'][0]:.2%}" == "99.97%"  # the book's low-loss corner
    _, _, ce_slope, _, mse_slope = rows["wrong class far ahead"]
    assert abs(ce_slope) > 1000 * abs(mse_slope)  # confidently wrong: cross entropy still pulls, MSE barely
