"""Chapter 4 on a fresh run over the book's data: what the notebooks compute beyond their printed figures, and
hour-fixed.csv's provenance."""

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tools.notebooks import run_notebook

ROOT = Path(__file__).resolve().parents[1]
BIKES = ROOT / "data/p1ch4/bike-sharing-dataset"


def printed_after(notebook, then, before=""):
    """The last line ``then`` prints after a fresh run of p1ch4/``notebook``: what the notebook computes but does not
    print."""
    _, printed = run_notebook(ROOT / "p1ch4" / notebook, before=before, after=then)
    return printed.strip().splitlines()[-1]


# Cells tagged nbval-check-output hold the book's printed figures (shapes, the wine statistics and table, the
# bikes tensors, the Austen words); nbval compares them on every run. These tests check what a tag cannot.


def test_ct_reads_without_warnings(executed_notebook):
    """The kernel hides warnings raised inside libraries: the cells run here too, a DeprecationWarning an error."""
    assert "Warning" not in executed_notebook("p1ch4/2_volumetric_ct.ipynb").stderr()
    # matplotlib 3.8 calls pyparsing APIs that newer pyparsing deprecates: not the notebook's doing
    strict = ("import warnings\nwarnings.simplefilter('error', DeprecationWarning)\n"
              "warnings.filterwarnings('ignore', category=DeprecationWarning, module=r'matplotlib\\.')")
    assert printed_after("2_volumetric_ct.ipynb", "print(tuple(vol.shape))", strict) == "(1, 99, 512, 512)"


def test_bikes_weather_rescaled():
    """In[11] and In[12] print nothing. The book: In[11] appends the weather's one-hot columns, and In[12] maps the
    weather situations 1..4 onto a variable that runs from 0.0 to 1.0."""
    then = "print((tuple(daily_bikes.shape), sorted(set(daily_bikes[:, 9, :].flatten().tolist()))))"
    shape, weather = ast.literal_eval(printed_after("4_time_series_bikes.ipynb", then))
    assert shape == (730, 21, 24)
    assert weather == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0]), "the weather should run from 0.0 to 1.0"


@pytest.mark.parametrize("notebook, cell", [("1_image_dog", "each channel now has mean"),
                                            ("4_time_series_bikes", "the temperature now has mean")])
def test_standardized_to_mean_0_and_std_1(executed_notebook, notebook, cell):
    printed = ast.literal_eval(executed_notebook(f"p1ch4/{notebook}.ipynb").result(cell))
    for mean, std in printed if isinstance(printed, list) else [printed]:  # the image: one pair per channel
        assert abs(mean) < 1e-3 and std == pytest.approx(1.0, abs=1e-3)


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
