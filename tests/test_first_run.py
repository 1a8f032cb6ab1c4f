"""A newcomer's first run: `make lab` as root and as a normal user, and chapter 7 without internet."""

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from tests.harness import offline_env
from tests.test_workflow import make_dry_run

ROOT = Path(__file__).resolve().parents[1]
CH7 = ["p1ch7/1_datasets.ipynb", "p1ch7/2_birds_airplanes.ipynb", "p1ch7/exercises_solutions.ipynb"]


@pytest.mark.parametrize("user_id, flags", [(0, ["--allow-root"]), (1000, [])])
def test_make_lab_installs_only_the_readers_packages_and_passes_allow_root_for_root_only(tmp_path, user_id, flags):
    fake = tmp_path / "id"  # `id -u` as that user
    fake.write_text(f"#!/bin/sh\necho {user_id}\n", encoding="utf-8")
    fake.chmod(0o755)
    out = make_dry_run("lab", env={**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"})
    assert "-m pip install -r requirements.txt\n" in out and "requirements-dev" not in out
    (line,) = [line for line in out.splitlines() if "jupyter lab" in line]
    assert line.split() == [".venv/bin/jupyter", "lab", *flags]


def first_data_cells(notebook):
    """The notebook, its code cells, the not-in-the-book download cell and the book's first `datasets.CIFAR10(...,
    download=True)` cell."""
    nb = nbformat.read(ROOT / notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    guard = next(c for c in code if "download_cifar10()" in c.source)
    return nb, code, guard, next(c for c in code if "datasets.CIFAR10(" in c.source and c is not guard)


@pytest.mark.parametrize("notebook", CH7)
def test_chapter7_downloads_in_a_marked_cell_right_before_the_books_first_data_cell(notebook):
    _, code, guard, book_cell = first_data_cells(notebook)
    assert code.index(guard) == code.index(book_cell) - 1
    assert guard.source.startswith("# Not in the book") and guard.source == first_data_cells(CH7[0])[2].source
    assert re.search(r"datasets\.CIFAR10\(\s*data_path, train=True, download=True", book_cell.source)  # the book's


def test_chapter7_offline_stops_at_its_first_data_cell_saying_where_to_put_the_archive(tmp_path, monkeypatch):
    """Runs p1ch7/1_datasets.ipynb up to its first data cell in a kernel WITHOUT the CIFAR-10 stand-in, on a copy
    of the repository, with every HTTP(S) request sent to a closed local port (offline, even on a machine online).
    The other two notebooks have the same cell in the same place (test above)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "dlwpt", repo / "dlwpt", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "p1ch7").mkdir()
    nb, _, guard, book_cell = first_data_cells(CH7[0])
    nb.cells = nb.cells[: nb.cells.index(book_cell) + 1]  # stop after the book's download cell

    # no stand-in: a fresh IPython profile (no startup file) and no stand-in root; the copy's helper package
    env = {**offline_env(), "IPYTHONDIR": str(tmp_path / "ipython"), "PYTHONPATH": str(repo), "MPLBACKEND": "Agg"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ["DLWPT_CIFAR_STANDIN", "all_proxy", "ALL_PROXY"]:
        monkeypatch.delenv(name, raising=False)

    where = {"metadata": {"path": str(repo / "p1ch7")}}
    with pytest.raises(CellExecutionError) as failure:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources=where).execute()

    ran = [c for c in nb.cells if c.cell_type == "code" and c.execution_count is not None]
    assert ran[-1] is guard and book_cell.execution_count is None  # stopped there, before the book's cell
    message = str(failure.value)
    archive = repo / "data-unversioned" / "p1ch7" / "cifar-10-python.tar.gz"
    assert "CIFAR-10 could not be downloaded" in message and "URLError" in message and str(archive) in message
    assert "170,498,071 bytes, about 163 MiB" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert not archive.exists()  # nothing half-downloaded under the archive's name
