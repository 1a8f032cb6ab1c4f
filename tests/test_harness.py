"""The test machinery itself (tests/harness.py, tools/notebooks.py, tools/standins.py): a failing or hanging cell
fails the run with its traceback; every notebook cell runs once more after its notebook, and a seeded cell must
print the same then (this catches a seed that sits in another cell: chapter 5 In[12], chapter 6 In[3]); notebook
keys hold on Windows; chapter 2's data folder for the stand-in weights leaves data/ alone."""

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PureWindowsPath

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from nbval.plugin import get_sanitize_patterns

from tests import test_device_slips
from tests.harness import is_seeded, printed, shared_file
from tools import speed, standins
from tools.notebooks import ROOT, notebook_key, notebook_keys

NOTEBOOKS = notebook_keys()
# The book's seeded train/validation splits: (notebook, the cell's first line)
SEEDED_SPLITS = {"p1ch5/3_optimizers.ipynb": "# In[12]", "p1ch6/1_neural_networks.ipynb": "# In[3]"}
# Tiny notebooks: their cells, what nbval + the harness make of each (Cell N, then Cell N re-run), what it says
SAMPLES = {
    "works": (["import os\npid = os.getpid()", "assert os.getpid() == pid\nopen('here.txt').read()",
               "import torch\ntorch.manual_seed(3)\nprint(torch.randperm(5))"], ["PASSED"] * 6, []),
    "fails_twice": (["import os", "os.chdir('sub')"], ["PASSED"] * 3 + ["FAILED"], ["FileNotFoundError"]),  # sub/sub
    "seed_elsewhere": (["import random\nrandom.seed(1)", "import torch\ntorch.manual_seed(0)\nprint(random.random())"],
                       ["PASSED"] * 3 + ["FAILED"], ["seeded cell printed something else"]),
    "broken": (["def deep():\n    raise ValueError('broken on purpose')\ndeep()", "x = 1"],
               ["FAILED", "PASSED", "SKIPPED", "SKIPPED"], ["broken on purpose", "deep()"]),
    "hangs": (["import time\ntime.sleep(300)"], ["FAILED", "SKIPPED"], ["Timeout"]),
}


@pytest.fixture(scope="module")
def nbval_run(tmp_path_factory):
    """pytest + nbval + the harness (its re-run of every cell) on the SAMPLES, outside this project's conftest."""
    folder = tmp_path_factory.mktemp("samples")
    (folder / "sub").mkdir()
    (folder / "here.txt").write_text("hi", encoding="utf-8")
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    for name, (cells, *_) in SAMPLES.items():
        nb = new_notebook(cells=[new_code_cell(c) for c in cells])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / f"{name}.ipynb")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", "-v",
           "-p", "tests.harness", "--nbval-cell-timeout=30", *(f"{name}.ipynb" for name in SAMPLES)]
    return subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=600).stdout


@pytest.mark.parametrize("name", SAMPLES)
def test_every_cell_runs_again_and_a_re_run_that_goes_wrong_fails(nbval_run, name):
    """Cells run in their folder, in one kernel per notebook; after the last cell each runs again: a cell failing
    then fails, and so does a seeded cell that prints something else (its seed sits in another cell). A failing
    cell fails with its traceback (its notebook is not re-run); a hanging one times out."""
    cells, statuses, says = SAMPLES[name]
    ids = [f"Cell {n}" for n in range(len(cells))] + [f"Cell {n} re-run" for n in range(len(cells))]
    got = [re.search(rf"{name}\W+ipynb::{re.escape(i)} (PASSED|FAILED|SKIPPED)", nbval_run) for i in ids]
    assert [m and m.group(1) for m in got] == statuses, nbval_run[-3000:]
    assert all(text in nbval_run for text in says), nbval_run[-3000:]


def test_every_notebook_runs_in_place_followed_by_a_re_run_of_every_cell(request):
    """Of this session's collection, or (this file run alone) of a separate collection of every chapter folder."""
    folders = sorted({nb.split("/")[0] for nb in NOTEBOOKS})
    ids = [item.nodeid for item in request.session.items if ".ipynb::" in item.nodeid]
    if not all(any(i.startswith(folder + "/") for i in ids) for folder in folders):
        cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *folders]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        ids = [line for line in proc.stdout.splitlines() if ".ipynb::" in line]
    for relpath in NOTEBOOKS:
        mine = [i.split("::", 1)[1] for i in ids if i.startswith(relpath + "::")]
        first = [i for i in mine if "re-run" not in i]
        assert first and mine == first + [f"{c} re-run" for c in first], relpath
    assert sum(".ipynb::" in i and "re-run" not in i for i in ids) > 300


@pytest.mark.parametrize("relpath", list(SEEDED_SPLITS))
def test_the_books_seeded_splits_are_checked_on_re_run(relpath):
    code = [c for c in nbformat.read(ROOT / relpath, as_version=4).cells if c.cell_type == "code"]
    (split,) = [c for c in code if c.source.startswith(SEEDED_SPLITS[relpath])]
    assert is_seeded(split.source) and "randperm(" in split.source  # so its re-run must draw the same split
    assert "tensor([" in printed(split.outputs)  # the committed run prints the split the re-run must repeat


def test_output_sanitizer_ignores_reprs_but_not_values():
    """nbval compares outputs after tests/nbval_sanitize.cfg: library reprs differ, values must not."""
    patterns = get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text(encoding="utf-8"))

    def clean(text):
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    numpy2 = "array([[ 7.  ,  0.27],\n       [ 6.  ,  0.21]],\n      shape=(4898, 12), dtype=float32)"
    numpy1 = "array([[ 7.  ,  0.27],\n       [ 6.  ,  0.21]], dtype=float32)"
    assert clean(numpy2) == clean(numpy1) != clean(numpy1.replace("0.21", "0.22"))
    assert clean("tensor(2., grad_fn=<ViewBackward0>)") == clean("tensor(2., grad_fn=<AddBackward0>)")
    assert clean("tensor(2., grad_fn=<ViewBackward0>)") != clean("tensor(3., grad_fn=<AddBackward0>)")


def test_keys_of_windows_paths_have_forward_slashes():
    """The tables (speed.DEVICE_NOTEBOOKS, SEEDED_SPLITS, node ids) write ``/``; Windows paths have ``\\``."""
    root = PureWindowsPath("C:/dlwpt-2e")
    path = root / "p1ch7" / "2_birds_airplanes.ipynb"
    assert str(path.relative_to(root)) == "p1ch7\\2_birds_airplanes.ipynb"  # what a naive key would be
    assert notebook_key(path, root) == "p1ch7/2_birds_airplanes.ipynb"
    assert len(NOTEBOOKS) >= 20 and set(SEEDED_SPLITS) | set(speed.DEVICE_NOTEBOOKS) <= set(NOTEBOOKS)
    assert set(test_device_slips.DEVICE_NOTEBOOKS) <= set(NOTEBOOKS) and len(test_device_slips.DEVICE_NOTEBOOKS) >= 5


@pytest.mark.parametrize("links", [True, False], ids=["links", "copies (no symlinks, as on Windows)"])
def test_stand_in_data_folder_leaves_data_alone(tmp_path, monkeypatch, links):
    shared_file(standins.FACTS_FILE)
    data = tmp_path / "data"
    for name in ("p1ch2/horse.jpg", "p1ch4/tabular-wine/wine.csv"):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_text(name, encoding="utf-8")
    if not links:
        monkeypatch.setattr(Path, "symlink_to", lambda *args, **kwargs: (_ for _ in ()).throw(OSError("no right")))
    base = standins.data_folder_with_standin_weights(tmp_path / "elsewhere", data)
    assert (base / "p1ch2" / "horse.jpg").read_text(encoding="utf-8") == "p1ch2/horse.jpg"
    assert (base / "p1ch4" / "tabular-wine" / "wine.csv").is_file()
    assert (base / "p1ch4").is_symlink() == links
    assert (base / standins.CYCLEGAN_WEIGHTS).stat().st_size > 40_000_000  # 11.4 million float32 values
    assert sorted(p.relative_to(data).as_posix() for p in data.rglob("*")) == [
        "p1ch2", "p1ch2/horse.jpg", "p1ch4", "p1ch4/tabular-wine", "p1ch4/tabular-wine/wine.csv"]


def test_only_verified_cyclegan_weights_count(tmp_path, monkeypatch):
    """With the published weights in data/ (python -m dlwpt.fetch online), nothing is redirected."""
    from dlwpt.fetch import Entry, git_blob_id

    weights = tmp_path / standins.CYCLEGAN_WEIGHTS
    assert not standins.real_cyclegan_weights(tmp_path)  # absent
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"the published weights, standing in")
    published = Entry(path=standins.CYCLEGAN_WEIGHTS, size=None, sha256=None, url="https://example.invalid",
                      git_blob=git_blob_id(weights))
    monkeypatch.setattr("dlwpt.fetch.load_manifest", lambda: [published])
    assert standins.real_cyclegan_weights(tmp_path)
    weights.write_bytes(b"a stand-in, or a download cut short")  # another file: checked again
    assert not standins.real_cyclegan_weights(tmp_path)


def test_helper_package_builds_with_its_manifest(tmp_path):
    """What `pip install` (Colab, or a non-editable install) gets: dlwpt with manifest.tsv inside."""
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the repository
    shutil.copytree(ROOT / "dlwpt", src / "dlwpt", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ["pyproject.toml", "README.md", "LICENSE"]:
        shutil.copy(ROOT / name, src / name)
    # with build isolation, as pip installs it: pyproject's build-system asks for the setuptools it needs
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("dlwpt-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dlwpt/manifest.tsv" in names and "dlwpt/fetch.py" in names
