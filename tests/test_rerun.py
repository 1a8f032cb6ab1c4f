"""Every notebook can be re-run in the kernel it ran in (on the CPU, in quick mode like the other tests).

Each notebook runs top to bottom, then each code cell runs once more, in order, in the same kernel. No cell may
fail the second time, and a cell that seeds the random generators (``manual_seed``, ``set_seed``) prints the same
the second time, lines reporting a wall-clock time or speed aside: its seed sits in the cell whose randomness it
fixes. The book's seeded splits (chapter 5 In[12], chapter 6 In[3]) must be among those cells, and print the same
split once more when re-run alone at the end.

Chapter 2 runs on the stand-in weights (the CycleGAN notebooks from the ``p1ch2_layout`` fixture, with its copy
of dlwpt, as tests/test_p1ch2.py runs them) and chapter 7 on the CIFAR-10 stand-in (tests/standins/), as nbval does.
Cost: one more run of every notebook plus a second pass of its cells.
"""

import copy
import os
import re
from pathlib import Path

import nbformat
import pytest

from conftest import CELL_TIMEOUT, output_text
from tests.standins.pretrained import LAYOUT_NOTEBOOKS, use_real_downloads

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("p1ch*/*.ipynb"))
SEEDS = ("manual_seed(", "set_seed(")
# The book's seeded train/validation splits: (notebook, the cell's first line)
SEEDED_SPLITS = {"p1ch5/3_optimizers.ipynb": "# In[12]", "p1ch6/1_neural_networks.ipynb": "# In[3]"}


def _param(relpath):
    marks = [pytest.mark.cifar10] if relpath.startswith("p1ch7/") else []
    return pytest.param(relpath, marks=marks, id=relpath)


TIMING = re.compile(r"\d\s*(s|ms|seconds|samples/s)\b")  # a wall-clock time or speed: differs run to run


def _printed(outputs):
    """What a cell printed and returned as text (figures, stderr and lines reporting a time or speed left out)."""
    text = output_text([o for o in outputs if o.get("name") != "stderr"])
    return "\n".join(line for line in text.splitlines() if not TIMING.search(line))


def run_twice(path, timeout=CELL_TIMEOUT, alone_at_end=None):
    """Run a notebook top to bottom, then each code cell once more in the same kernel; then the cell whose
    source starts with ``alone_at_end`` (if given) a third time, alone.

    Returns [(source, first outputs, second outputs)] of the code cells, and the third run's outputs; a failing
    cell raises nbclient's CellExecutionError naming it.
    """
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    where = {"metadata": {"path": str(path.parent)}}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=where)
    with client.setup_kernel():
        for i, cell in code:
            client.execute_cell(cell, i)
        first = [copy.deepcopy(cell.outputs) for _, cell in code]
        for i, cell in code:
            client.execute_cell(cell, i)
        cells = [(cell.source, before, copy.deepcopy(cell.outputs)) for (_, cell), before in zip(code, first)]
        third = None
        if alone_at_end:
            (i, cell), = [(i, c) for i, c in code if c.source.startswith(alone_at_end)]
            client.execute_cell(cell, i)
            third = cell.outputs
    return cells, third


@pytest.mark.parametrize("relpath", [_param(nb) for nb in NOTEBOOKS])
def test_every_cell_runs_again_and_seeded_cells_print_the_same(relpath, request, monkeypatch):
    path = ROOT / relpath
    if relpath.startswith("p1ch2/") and not use_real_downloads(request.config):
        layout = request.getfixturevalue("p1ch2_layout")  # builds the stand-in weights, as for tests/test_p1ch2.py
        if path.name in LAYOUT_NOTEBOOKS:
            path = layout / relpath  # reads the stand-in CycleGAN weights from the layout's data/
            monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(layout), os.getenv("PYTHONPATH")])))
    cells, alone = run_twice(path, alone_at_end=SEEDED_SPLITS.get(relpath))  # raises if a cell fails

    seeded = [(src, a, b) for src, a, b in cells if any(s in src for s in SEEDS)]
    for src, first, second in seeded:
        assert _printed(second) == _printed(first), f"seeded cell printed something else when re-run:\n{src}"
    if relpath in SEEDED_SPLITS:
        (split,) = [(src, a) for src, a, _ in seeded if src.startswith(SEEDED_SPLITS[relpath])]
        assert "randperm" in split[0] and "tensor([" in _printed(split[1])  # the split, printed both times
        assert _printed(alone) == _printed(split[1]), "the split cell re-run alone at the end drew another split"
