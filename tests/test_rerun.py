"""Every notebook can be re-run in the kernel it ran in (on the CPU, in quick mode like the other tests).

The re-run itself happens in the notebook runs: tests/nbval_rerun.py adds, after each notebook's last cell, each
code cell once more in nbval's kernel ("Cell 5 re-run"); a seeded cell runs again with the random generators in
another state and must print the same. This file proves that harness can fail, checks it covers every notebook
cell and the book's seeded splits (chapter 5 In[12], chapter 6 In[3]). The two chapter 2 notebooks that nbval
does not run offline (they run from the stand-in layout) are re-run and checked in tests/test_p1ch2.py.
"""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.nbval_rerun import is_seeded, printed
from tests.notebook_paths import notebook_keys
from tests.standins.pretrained import LAYOUT_NOTEBOOKS
from tests.test_harness import run_nbval as harness_run_nbval

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = notebook_keys()  # with "/" on every system, as pytest writes node ids
# The book's seeded train/validation splits: (notebook, the cell's first line)
SEEDED_SPLITS = {"p1ch5/3_optimizers.ipynb": "# In[12]", "p1ch6/1_neural_networks.ipynb": "# In[3]"}


def run_nbval(tmp_path, *cells):
    """pytest + nbval + the re-run plugin on a notebook made of ``cells``, outside this project's conftest."""
    return harness_run_nbval(tmp_path, *cells, args=("-v", "-p", "tests.nbval_rerun"))


def test_cells_run_again_in_the_same_kernel(tmp_path):
    proc = run_nbval(tmp_path, "import os\npid = os.getpid()", "assert os.getpid() == pid\nprint('same kernel')")
    assert proc.returncode == 0, proc.stdout
    assert "Cell 1 re-run PASSED" in proc.stdout and "4 passed" in proc.stdout


def test_a_cell_that_fails_when_re_run_fails(tmp_path):
    (tmp_path / "sub").mkdir()
    proc = run_nbval(tmp_path, "import os", "os.chdir('sub')")  # works once: the second time there is no sub/sub
    assert proc.returncode == 1
    assert "Cell 1 re-run FAILED" in proc.stdout and "FileNotFoundError" in proc.stdout


def test_a_seed_in_another_cell_fails(tmp_path):
    seeded_elsewhere = "import torch\ntorch.manual_seed(0)\nprint(random.random())"  # random is seeded in cell 0
    proc = run_nbval(tmp_path, "import random\nrandom.seed(1)", seeded_elsewhere, "print(random.random())")
    assert proc.returncode == 1, proc.stdout
    assert "Cell 1 re-run FAILED" in proc.stdout and "seeded cell printed something else" in proc.stdout


def test_a_cell_holding_its_seed_prints_the_same(tmp_path):
    holds_its_seed = "import torch\ntorch.manual_seed(3)\nprint(torch.randperm(5))"
    proc = run_nbval(tmp_path, holds_its_seed, "torch.randperm(5)")
    assert proc.returncode == 0, proc.stdout
    assert "Cell 0 re-run PASSED" in proc.stdout


def collected_notebook_cells(request):
    """Node ids of the notebook cells this session collected; when it did not collect every chapter folder (this
    file run alone), those of a separate collection of all of them."""
    folders = sorted({nb.split("/")[0] for nb in NOTEBOOKS})
    ids = [item.nodeid for item in request.session.items if ".ipynb::" in item.nodeid]
    if all(any(i.startswith(folder + "/") for i in ids) for folder in folders):
        return ids
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *folders],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in proc.stdout.splitlines() if ".ipynb::" in line]


def test_notebook_runs_are_followed_by_a_re_run_of_every_cell(request):
    ids = collected_notebook_cells(request)
    assert NOTEBOOKS and all("/" in key and "\\" not in key for key in NOTEBOOKS)
    for relpath in NOTEBOOKS:
        mine = [i.split("::", 1)[1] for i in ids if i.startswith(relpath + "::")]
        if not mine:  # only chapter 2's CycleGAN notebooks on stand-in weights: run from tests/test_p1ch2.py
            assert relpath.removeprefix("p1ch2/") in LAYOUT_NOTEBOOKS, f"{relpath}: no notebook cell collected"
            continue
        first = [i for i in mine if "re-run" not in i]
        assert mine[: len(first)] == first, f"{relpath}: a re-run comes before the notebook's last cell"
        assert [i for i in mine if i.endswith(" re-run")] == [f"{c} re-run" for c in first], relpath
    assert sum(".ipynb::" in i and "re-run" not in i for i in ids) > 300


@pytest.mark.parametrize("relpath", list(SEEDED_SPLITS))
def test_the_books_seeded_splits_are_checked_on_re_run(relpath):
    code = [c for c in nbformat.read(ROOT / relpath, as_version=4).cells if c.cell_type == "code"]
    (split,) = [c for c in code if c.source.startswith(SEEDED_SPLITS[relpath])]
    assert is_seeded(split.source) and "randperm(" in split.source  # so its re-run must draw the same split
    assert "tensor([" in printed(split.outputs)  # the committed run prints the split the re-run must repeat


def test_nbclient_re_run_scrambles_the_generators_too(tmp_path):
    """conftest.run_notebook(again=True), used for the two chapter 2 notebooks nbval does not run offline."""
    from conftest import run_notebook

    nb = new_notebook(cells=[new_code_cell("import random\nrandom.seed(1)"),
                             new_code_cell("import torch\ntorch.manual_seed(0)\nprint(random.random())"),
                             new_code_cell("torch.manual_seed(5)\nprint(torch.rand(3))")])
    nbformat.write(nb, tmp_path / "sample.ipynb")
    ran = run_notebook(tmp_path / "sample.ipynb", again=True)
    assert printed(ran.again[1]) != printed(ran.cells[1][1])  # random was seeded in cell 0: caught
    assert printed(ran.again[2]) == printed(ran.cells[2][1]) != ""  # holds its own seed


def test_a_notebook_that_failed_its_first_run_is_not_re_run(tmp_path):
    proc = run_nbval(tmp_path, "raise ValueError('broken on purpose')", "x = 1")
    assert proc.returncode == 1
    assert "Cell 0 FAILED" in proc.stdout and "Cell 1 PASSED" in proc.stdout
    assert "Cell 0 re-run SKIPPED" in proc.stdout and "Cell 1 re-run SKIPPED" in proc.stdout
