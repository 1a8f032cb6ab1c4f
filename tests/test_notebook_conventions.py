"""Conventions every notebook keeps: Colab badge and setup cell, and the outputs policy.

Outputs policy: notebooks on real data and real weights (chapters 3-6) are committed with the outputs of
a full run; chapter 2 (stand-in weights in tests) and chapter 7 (CIFAR stand-in in tests) are committed
without outputs. Cells tagged ``nbval-check-output`` are re-checked by nbval on every test run.
"""

import ast
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

import dlwpt
from tests.shared import mirror_file

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("p1ch*/*.ipynb"))
WITH_OUTPUTS = {"p1ch3", "p1ch4", "p1ch5", "p1ch6"}
SETUP_FIRST_LINE = "# Colab setup: does nothing outside Google Colab."


def ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def read(path):
    return nbformat.read(path, as_version=4)


def test_there_are_notebooks_for_every_chapter():
    chapters = {p.parent.name for p in NOTEBOOKS}
    assert chapters == {"p1ch2", "p1ch3", "p1ch4", "p1ch5", "p1ch6", "p1ch7"}
    for chapter in chapters:
        assert (ROOT / chapter / "README.md").is_file()
        assert (ROOT / chapter / "exercises_solutions.ipynb").is_file()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_colab_badge_points_at_this_notebook(path):
    first = read(path).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    rel = path.relative_to(ROOT).as_posix()
    owner_repo = dlwpt.REPO_URL.removeprefix("https://github.com/")
    badge = f"(https://colab.research.google.com/github/{owner_repo}/blob/main/{rel})"
    assert "colab-badge.svg" in first.source and badge in first.source


def setup_cell(path):
    cell = read(path).cells[1]
    assert cell.cell_type == "code" and cell.source.startswith(SETUP_FIRST_LINE), "cell 2 must be the Colab setup"
    return cell.source


def run_setup_cell(source, monkeypatch, in_colab):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(("run", cmd, kw.get("cwd"))))
    monkeypatch.setattr(os, "chdir", lambda d: calls.append(("chdir", d)))
    monkeypatch.setattr(os.path, "isdir", lambda d: False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    if in_colab:
        google = types.ModuleType("google")
        google.colab = types.ModuleType("google.colab")
        monkeypatch.setitem(sys.modules, "google", google)
        monkeypatch.setitem(sys.modules, "google.colab", google.colab)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(source, "<setup cell>", "exec"), {})
    return calls


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_setup_cell_is_a_no_op_outside_colab(path, monkeypatch):
    assert run_setup_cell(setup_cell(path), monkeypatch, in_colab=False) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_setup_cell_in_colab_clones_installs_fetches_and_enters_chapter(path, monkeypatch):
    """Simulated Colab: the commands the cell would run, checked against this repository."""
    chapter = path.parent.name
    calls = run_setup_cell(setup_cell(path), monkeypatch, in_colab=True)
    repo = "/content/dlwpt-2e"
    clone, install, fetch, chdir = calls
    assert clone == ("run", ["git", "clone", "--depth", "1", dlwpt.REPO_URL, repo], None)
    assert install[1][:7] == [sys.executable, "-m", "pip", "install", "-q", "-e", repo]
    extra = install[1][7:]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]<>=]+", pkg) for pkg in extra)
    assert fetch == ("run", [sys.executable, "-m", "dlwpt.fetch", chapter], repo)
    assert chdir == ("chdir", f"{repo}/{chapter}")
    assert (ROOT / chapter).is_dir()


@pytest.mark.parametrize("chapter", sorted({p.parent.name for p in NOTEBOOKS}))
def test_setup_cell_fetch_step_works_for_each_chapter(chapter, tmp_path):
    """The fetch the setup cell runs, done here against the local mirror instead of the internet."""
    proc = subprocess.run(
        [sys.executable, "-m", "dlwpt.fetch", chapter, "--mirror", str(mirror_file().parent)]
        + ["--data-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if chapter in {"p1ch3", "p1ch5", "p1ch7"}:
        # nothing to download (p1ch7's CIFAR-10 comes through torchvision)
        assert "no data files to fetch for this chapter" in proc.stdout
    else:
        assert " fetched, 0 already present, 0 failed" in proc.stdout
    if chapter == "p1ch6":  # its exercises use chapter 4's wine data
        assert (tmp_path / "p1ch4/tabular-wine/winequality-white.csv").is_file()


def test_setup_cell_pip_extras_are_known_packages():
    req = (ROOT / "requirements.txt").read_text().lower()
    for path in NOTEBOOKS:
        tree = ast.parse(setup_cell(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Starred) and isinstance(node.value, ast.List):
                for elt in node.value.elts:
                    assert elt.value.lower() in req, f"{path.name}: {elt.value} is not in requirements.txt"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_outputs_policy(path):
    nb = read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert not any(o.get("output_type") == "error" for o in cell.outputs), "committed error output"
        assert "execution" not in cell.metadata, "strip nbconvert's timestamps (noisy diffs on every rerun)"
    if path.parent.name in WITH_OUTPUTS:
        counts = [c.execution_count for c in code]
        assert counts == list(range(1, len(code) + 1)), "commit the outputs of one full, in-order run"
        assert any("nbval-check-output" in c.metadata.get("tags", []) for c in code), "tag the book's figures"
    else:
        assert all(c.execution_count is None and not c.outputs for c in code), "commit without outputs"
