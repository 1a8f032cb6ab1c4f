"""A newcomer's first run: `make lab` as root and as a normal user, and chapter 7 without internet."""

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.harness import offline_env

ROOT = Path(__file__).resolve().parents[1]
CH7 = ["p1ch7/1_datasets.ipynb", "p1ch7/2_birds_airplanes.ipynb", "p1ch7/exercises_solutions.ipynb"]


# --- make lab ------------------------------------------------------------------------------------------------


def lab_command(tmp_path, user_id):
    """The JupyterLab command `make lab` would run for a user whose `id -u` prints ``user_id``."""
    if sys.platform == "win32":  # windows-latest has a make.exe, but not the POSIX shell, `id` and .venv/bin
        pytest.skip("the Makefile is for Linux and macOS; on Windows the README's PowerShell commands start the lab")
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "id").write_text(f"#!/bin/sh\necho {user_id}\n", encoding="utf-8")
    (fake / "id").chmod(0o755)
    # not the variables of a make that runs this test: `make test-oldest` passes VENV=.venv-oldest down, both in
    # MAKEFLAGS and, as make does with command-line variables, in the environment
    outer = ("MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES", "MAKELEVEL", "VENV", "REQUIREMENTS", "PYTHON", "BIN")
    env = {k: v for k, v in os.environ.items() if k not in outer}
    env["PATH"] = f"{fake}{os.pathsep}{os.environ['PATH']}"
    proc = subprocess.run(["make", "-n", "lab"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stdout.splitlines() if "jupyter lab" in line]
    return line.split()


def test_make_lab_passes_allow_root_for_root_only(tmp_path):
    assert lab_command(tmp_path, 0) == [".venv/bin/jupyter", "lab", "--allow-root"]
    assert lab_command(tmp_path, 1000) == [".venv/bin/jupyter", "lab"]


def test_on_windows_make_lab_is_skipped_saying_why(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(pytest.skip.Exception, match="README's PowerShell commands"):
        lab_command(tmp_path, 0)
    assert not (tmp_path / "bin").exists()  # skipped before writing the POSIX `id` stand-in


def test_readme_says_how_root_starts_the_server_by_hand():
    """The README's JupyterLab commands: `make lab` handles root, by hand root adds the flag (troubleshooting too)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`make lab` adds JupyterLab's `--allow-root` by itself" in readme
    assert "by hand as root, add it yourself: `jupyter lab --allow-root`" in readme
    (row,) = [line for line in readme.splitlines() if line.startswith("| `Running as root is not recommended.")]
    assert "`jupyter lab --allow-root`" in row


# --- chapter 7 without internet ----------------------------------------------------------------------------------


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_data_cells(notebook):
    """The not-in-the-book download cell and the book's first `datasets.CIFAR10(..., download=True)` cell."""
    code = [c for c in nbformat.read(ROOT / notebook, as_version=4).cells if c.cell_type == "code"]
    guard = next(c for c in code if "download_cifar10()" in c.source)
    book_cell = next(c for c in code if "datasets.CIFAR10(" in c.source and c is not guard)
    return code, guard, book_cell


@pytest.mark.parametrize("notebook", CH7)
def test_chapter7_downloads_in_a_marked_cell_right_before_the_books_first_data_cell(notebook):
    code, guard, book_cell = first_data_cells(notebook)
    assert code.index(guard) == code.index(book_cell) - 1
    assert guard.source.startswith("# Not in the book") and guard.source == first_data_cells(CH7[0])[1].source
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
    nb = nbformat.read(ROOT / CH7[0], as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    guard = next(c for c in code if "download_cifar10()" in c.source)
    book_cell = code[code.index(guard) + 1]
    nb.cells = nb.cells[: nb.cells.index(book_cell) + 1]  # stop after the book's download cell

    # no stand-in: a fresh IPython profile (no startup file) and no stand-in root; the copy's helper package
    monkeypatch.delenv("DLWPT_CIFAR_STANDIN", raising=False)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("PYTHONPATH", str(repo))
    for name, value in offline_env(closed_port()).items():
        monkeypatch.setenv(name, value)
    for name in ["all_proxy", "ALL_PROXY"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")

    where = {"metadata": {"path": str(repo / "p1ch7")}}
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources=where)
    with pytest.raises(CellExecutionError) as failure:
        client.execute()

    ran = [c for c in nb.cells if c.cell_type == "code" and c.execution_count is not None]
    assert ran[-1] is guard and book_cell.execution_count is None  # stopped there, before the book's cell
    message = str(failure.value)
    archive = repo / "data-unversioned" / "p1ch7" / "cifar-10-python.tar.gz"
    assert "CIFAR-10 could not be downloaded" in message and "URLError" in message
    assert str(archive) in message
    assert "170,498,071 bytes, about 163 MiB" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert not archive.exists()  # nothing half-downloaded under the archive's name
