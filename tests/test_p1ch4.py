"""Chapter 4 on a fresh run over the book's data: the figures the book prints, and hour-fixed.csv's provenance."""

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIKES = ROOT / "data/p1ch4/bike-sharing-dataset"


def cell(n, note=False):
    """Source marker of the book's cell ``In[n]`` (the newline keeps In[1] apart from In[10]; a cell whose first
    line carries a note, ``# In[2]: ...``, is marked by the colon)."""
    return f"# In[{n}]" + (": " if note else "\n")


def numbers(text):
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d*)?(?:e[+-]\d+)?", text)]


# --- 4.1 images --------------------------------------------------------------------------------------------


def test_image_shapes(executed_notebook):
    nb = executed_notebook("p1ch4/1_image_dog.ipynb")
    assert nb.result(cell(2)) == "(720, 1280, 3)"
    assert nb.result("the filled batch") == "(torch.Size([3, 3, 256, 256]), torch.uint8)"


# --- 4.2 CT ------------------------------------------------------------------------------------------------


def test_ct_volume_shapes(executed_notebook):
    nb = executed_notebook("p1ch4/2_volumetric_ct.ipynb")
    assert nb.result(cell(2, note=True)) == "(99, 512, 512)"
    assert nb.result(cell(3)) == "torch.Size([1, 99, 512, 512])"


def test_ct_reads_without_deprecation_warning(executed_notebook):
    nb = executed_notebook("p1ch4/2_volumetric_ct.ipynb")
    assert "DeprecationWarning" not in nb.stderr()
    assert "Warning" not in nb.stderr()


def test_ct_cells_run_with_deprecation_warnings_as_errors():
    """The kernel hides warnings raised inside libraries; here any DeprecationWarning raised while the CT
    cells run is an error, except those matplotlib's own modules trigger (matplotlib 3.8 calls pyparsing
    APIs that newer pyparsing deprecates: not the CT reader's doing)."""
    script = (
        "import warnings\n"
        "import nbformat\n"
        "nb = nbformat.read('2_volumetric_ct.ipynb', 4)\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "warnings.filterwarnings('ignore', category=DeprecationWarning, module=r'matplotlib\\.')\n"
        "ns = {}\n"
        "for c in nb.cells[2:]:\n"  # after the title and the Colab setup cell
        "    if c.cell_type == 'code':\n"
        "        exec(c.source, ns)\n"
        "print(tuple(ns['vol'].shape))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT / "p1ch4", capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("(1, 99, 512, 512)")


# --- 4.3 wine ----------------------------------------------------------------------------------------------

WINE_COLUMNS = [
    "fixed acidity", "volatile acidity", "citric acid", "residual sugar", "chlorides", "free sulfur dioxide",
    "total sulfur dioxide", "density", "pH", "sulphates", "alcohol", "quality",
]

# Out[15] of the book, whitespace collapsed
WINE_MEANS_TABLE = """
0 fixed acidity 7.60 6.89 6.73
1 volatile acidity 0.33 0.28 0.27
2 citric acid 0.34 0.34 0.33
3 residual sugar 6.39 6.71 5.26
4 chlorides 0.05 0.05 0.04
5 free sulfur dioxide 53.33 35.42 34.55
6 total sulfur dioxide 170.60 141.83 125.25
7 density 0.99 0.99 0.99
8 pH 3.19 3.18 3.22
9 sulphates 0.47 0.49 0.50
10 alcohol 10.34 10.26 11.42
"""


@pytest.fixture(scope="module")
def wine(executed_notebook):
    return executed_notebook("p1ch4/3_tabular_wine.ipynb")


def test_wine_shape_and_columns(wine):
    shape, columns = ast.literal_eval(wine.result(cell(3)))
    assert shape == (4898, 12)
    assert columns == WINE_COLUMNS
    assert wine.result(cell(4)) == "(torch.Size([4898, 12]), torch.float32)"


def test_wine_column_statistics(wine):
    # Out[10]/Out[11]; the book's Out[10] shows 3.53e+00 for free sulfur dioxide, a slip for 3.53e+01 (mean 35.3)
    assert numbers(wine.result(cell(10))) == [6.85, 0.278, 0.334, 6.39, 0.0458, 35.3, 138, 0.994, 3.19, 0.49, 10.5]
    assert numbers(wine.result(cell(11))) == [
        0.712, 0.0102, 0.0146, 25.7, 0.000477, 289, 1810, 8.95e-06, 0.0228, 0.013, 1.51
    ]


def test_wine_bad_wines(wine):
    assert wine.result(cell(13)) == "(torch.Size([4898]), torch.bool, tensor(20))"
    assert wine.result(cell(14)) == "torch.Size([20, 11])"


def test_wine_means_table(wine):
    printed = [" ".join(line.split()) for line in wine.text(cell(15)).strip().splitlines()]
    assert printed == WINE_MEANS_TABLE.strip().splitlines()


def test_wine_threshold_predictions(wine):
    assert wine.result(cell(16)) == "(torch.Size([4898]), torch.bool, tensor(2727))"
    assert wine.result(cell(17)) == "(torch.Size([4898]), torch.bool, tensor(3258))"
    n_matches, precision, recall = ast.literal_eval(wine.result(cell(18)))
    assert n_matches == 2018
    assert precision == pytest.approx(0.74000733406674, abs=1e-12)
    assert recall == pytest.approx(0.6193984039287906, abs=1e-12)


# --- 4.4 bikes ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bikes(executed_notebook):
    return executed_notebook("p1ch4/4_time_series_bikes.ipynb")


def test_bikes_shapes_and_strides(bikes):
    assert bikes.result(cell(3)) == "(torch.Size([17520, 17]), (17, 1))"
    assert bikes.result(cell(4)) == "(torch.Size([730, 24, 17]), (408, 17, 1))"
    assert bikes.result(cell(5)) == "(torch.Size([730, 17, 24]), (408, 1, 17))"


def test_bikes_first_day_weather(bikes):
    printed = bikes.result(cell(6))
    # the book's Out[6], whose first line is cut at the right edge
    assert printed.startswith("tensor([1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3,")
    assert printed.endswith("2, 2])")
    assert numbers(printed) == [1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 2, 2, 2, 2]


def test_bikes_weather_onehot(bikes):
    printed = bikes.result(cell(7))
    assert printed.startswith("tensor([[1., 0., 0., 0.],\n        [1., 0., 0., 0.],")
    assert printed.endswith("[0., 1., 0., 0.],\n        [0., 1., 0., 0.]])")
    # first hour with its one-hot weather appended (Out[8])
    assert numbers(bikes.result(cell(8))) == [
        1, 1, 1, 0, 1, 0, 0, 6, 0, 1, 0.24, 0.2879, 0.81, 0, 3, 13, 16, 1, 0, 0, 0
    ]
    assert bikes.result(cell(9)) == "torch.Size([730, 4, 24])"
    assert bikes.result(cell(10)) == "torch.Size([730, 4, 24])"


def test_bikes_temperature_standardized(bikes):
    mean, std = ast.literal_eval(bikes.result("the temperature now has mean"))
    assert abs(mean) < 1e-3 and std == pytest.approx(1.0, abs=1e-3)


# --- 4.5 text ----------------------------------------------------------------------------------------------

AUSTEN_WORDS = [
    (0, 3394, "impossible"), (1, 4305, "mr"), (2, 813, "bennet"), (3, 3394, "impossible"), (4, 7078, "when"),
    (5, 3315, "i"), (6, 415, "am"), (7, 4436, "not"), (8, 239, "acquainted"), (9, 7148, "with"), (10, 3215, "him"),
]


@pytest.fixture(scope="module")
def austen(executed_notebook):
    return executed_notebook("p1ch4/5_text_jane_austen.ipynb")


def test_austen_line_and_characters(austen):
    line = ast.literal_eval(austen.result(cell(3)))
    assert line == "\u201cImpossible, Mr. Bennet, impossible, when I am not acquainted with him"
    assert austen.result(cell(4)) == "torch.Size([70, 128])"


def test_austen_words(austen):
    line, words = ast.literal_eval(austen.result(cell(6)))
    assert words == [w for _, _, w in AUSTEN_WORDS]
    assert austen.result(cell(7)) == "(7261, 3394)"
    *rows, shape = austen.text(cell(8)).strip().splitlines()
    assert [(int(i), int(idx), w) for i, idx, w in (r.split() for r in rows)] == AUSTEN_WORDS
    assert shape == "torch.Size([11, 7261])"


# --- hour-fixed.csv provenance -----------------------------------------------------------------------------


def load_bikes(path):
    # as the notebook reads it: the date becomes the day of the month
    return np.loadtxt(path, dtype=np.float32, delimiter=",", skiprows=1, converters={1: lambda x: float(x[8:10])})


def test_make_hour_fixed_reproduces_published_file(tmp_path):
    out = tmp_path / "hour-fixed.csv"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "data/make_hour_fixed.py"), str(out), "--src", str(BIKES / "hour.csv")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    ours, published = load_bikes(out), load_bikes(BIKES / "hour-fixed.csv")
    assert ours.shape == published.shape == (17520, 17)
    assert np.array_equal(ours, published)
    # the dates too (the notebook's converter keeps only the day of the month)
    dates = [np.loadtxt(p, dtype=str, delimiter=",", skiprows=1, usecols=1) for p in (out, BIKES / "hour-fixed.csv")]
    assert np.array_equal(*dates)


def test_make_hour_fixed_rule_on_stand_in_rows():
    """Stand-in rows (not the book's data): a gap within a day and one across midnight."""
    spec = importlib.util.spec_from_file_location("make_hour_fixed", ROOT / "data/make_hour_fixed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def row(instant, day, hr, cnt):
        weather = ["0", "6", "0", "1", "0.2", "0.2", "0.8", "0", "1", "2"]
        return [str(instant), day, "1", "0", "1", str(hr), *weather, str(cnt)]

    rows = [row(1, "d1", h, 10 + h) for h in range(0, 22) if h != 5] + [row(99, "d2", h, 5) for h in range(2, 24)]
    fixed = mod.fix_rows(rows)
    assert len(fixed) == 48
    assert [int(r[5]) for r in fixed] == list(range(24)) * 2
    # inside the day: a copy of the row before, counted as zero rentals
    assert fixed[5][:5] == fixed[4][:5] and fixed[5][16] == "0" and fixed[5][14:16] == fixed[4][14:16]
    # across midnight: copies of the row before up to hour 23, of the row after from hour 0
    assert fixed[22][1] == fixed[23][1] == "d1" and fixed[24][1] == fixed[25][1] == "d2"
    assert all(r[16] == "0" for r in fixed[22:26])


# --- exercises ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exercises(executed_notebook):
    return executed_notebook("p1ch4/exercises_solutions.ipynb")


def test_exercise_channel_means(exercises):
    import imageio.v2 as imageio

    table = exercises.text("# 1b:").strip().splitlines()
    bobby = next(line.split() for line in table if line.startswith("bobby.jpg"))
    img = imageio.imread(ROOT / "data/p1ch4/image-dog/bobby.jpg").astype(np.float64) / 255.0
    expected = [img.mean(), *img.mean(axis=(0, 1))]
    assert [float(x) for x in bobby[1:5]] == pytest.approx(expected, abs=1e-4)
    assert bobby[5] == ["red", "green", "blue"][int(np.argmax(expected[1:]))]


def test_exercise_source_code_index(exercises):
    import argparse

    words = re.sub(r"[^a-zA-Z0-9_]+", " ", Path(argparse.__file__).read_text(encoding="utf8")).split()
    vocabulary = len(set(words))
    assert f"tokens: {len(words)}, vocabulary: {vocabulary}" in exercises.text("# 2a:")
    assert f"Pride and Prejudice: 7261 words; source file: {vocabulary} words" in exercises.text("# 2b:")
    assert exercises.result("# 2c:") == f"torch.Size([{len(words)}, {vocabulary}])"
