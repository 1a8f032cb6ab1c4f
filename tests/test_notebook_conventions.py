"""Conventions every notebook keeps: Colab and Kaggle badges, the folded setup cell, and the outputs policy.

Outputs policy: notebooks on real data and real weights (chapters 3-6) are committed with the outputs of
a full run; chapter 2 (stand-in weights in tests) and chapter 7 (CIFAR stand-in in tests) are committed
without outputs, or with those of the workflow's book-settings run on the real downloads, recorded in the
notebook's metadata (tests/book_run.py), never a stand-in's.
Cells tagged ``nbval-check-output`` are re-checked by nbval on every test run.
"""

import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

import dlwpt
from tests.book_run import policy_problems
from tests.harness import mirror_file

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("p1ch*/*.ipynb"))
WITH_OUTPUTS = {"p1ch3", "p1ch4", "p1ch5", "p1ch6"}
SETUP_FIRST_LINE = "# @title Colab and Kaggle setup: does nothing elsewhere"
FOLDED_NOTE = "*The folded cell below sets this notebook up in Google Colab or Kaggle; elsewhere it does nothing.*"
# In requirements.txt but not preinstalled on Colab or Kaggle (both have torch, torchvision, numpy, matplotlib,
# pillow, h5py, imageio, transformers, tokenizers, safetensors, tqdm): the setup cell installs only these.
NOT_PREINSTALLED = {"pydicom"}


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
def test_colab_and_kaggle_badges_point_at_this_notebook(path):
    first = read(path).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    github = f"{dlwpt.REPO_URL}/blob/{dlwpt.REPO_BRANCH}/{path.relative_to(ROOT).as_posix()}"
    colab = github.replace("https://github.com/", "https://colab.research.google.com/github/")
    assert f"colab-badge.svg)]({colab})" in first.source
    assert f"open-in-kaggle.svg)](https://kaggle.com/kernels/welcome?src={github})" in first.source


def setup_cell(path):
    cell = read(path).cells[1]
    assert cell.cell_type == "code" and cell.source.startswith(SETUP_FIRST_LINE), "cell 2 must be the setup cell"
    return cell


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_setup_cell_is_folded_with_a_visible_title(path):
    """Folded in JupyterLab/Notebook (source_hidden) and Colab (form view); the title cell says what it is."""
    cell = setup_cell(path)
    assert cell.metadata.get("jupyter", {}).get("source_hidden") is True
    assert cell.metadata.get("cellView") == "form"
    assert re.fullmatch(r"# @title [^{}]+ \{ display-mode: \"form\" \}", cell.source.split("\n")[0])
    assert read(path).cells[0].source.rstrip().endswith(FOLDED_NOTE)


def run_setup_cell(source, monkeypatch, host, fail_at=None):
    """Run the cell as if on ``host`` (None, "Colab", "Kaggle"); record the commands instead of running them.

    ``fail_at``: the first word of a command (``git``, ``pip``, ``dlwpt.fetch``) that fails with some output.
    """
    calls = []

    def fake_run(cmd, **kw):
        calls.append(("run", list(cmd), kw.get("cwd")))
        assert kw.get("capture_output") and kw.get("text"), "capture the output, to show it if the step fails"
        failed = fail_at is not None and fail_at in cmd
        out = f"stdout of {cmd[0]}\n" if failed else ""
        return subprocess.CompletedProcess(cmd, 1 if failed else 0, out, "fatal: the reason\n" if failed else "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(os, "chdir", lambda d: calls.append(("chdir", d)))
    monkeypatch.setattr(os.path, "isdir", lambda d: False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    if host == "Kaggle":
        monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    elif host == "Colab":
        google = types.ModuleType("google")
        google.colab = types.ModuleType("google.colab")
        monkeypatch.setitem(sys.modules, "google", google)
        monkeypatch.setitem(sys.modules, "google.colab", google.colab)
    exec(compile(source, "<setup cell>", "exec"), {})
    return calls


def notebook_imports(path):
    code = "\n".join(c.source for c in read(path).cells[2:] if c.cell_type == "code")
    return set(re.findall(r"^\s*(?:import|from)\s+(\w+)", code, re.M))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_setup_cell_is_a_no_op_and_silent_outside_colab_and_kaggle(path, monkeypatch, capsys):
    assert run_setup_cell(setup_cell(path).source, monkeypatch, host=None) == []
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("host", ["Colab", "Kaggle"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_setup_cell_clones_installs_fetches_and_enters_chapter(path, host, monkeypatch, capsys):
    """Simulated Colab and Kaggle: the commands the cell would run, checked against this repository."""
    chapter = path.parent.name
    calls = run_setup_cell(setup_cell(path).source, monkeypatch, host)
    repo = {"Colab": "/content/dlwpt-2e", "Kaggle": "/kaggle/working/dlwpt-2e"}[host]
    clone, *installs, fetch, chdir = calls
    assert clone == ("run", ["git", "clone", "--depth", "1", "--branch", dlwpt.REPO_BRANCH, dlwpt.REPO_URL, repo], None)
    assert sys.path[0] == repo  # the helper package comes from the clone, not from an (editable) install
    # only what the services lack, and only where the notebook imports it
    wanted = sorted(NOT_PREINSTALLED & notebook_imports(path))
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    assert [cmd for _, cmd, _ in installs] == ([pip + wanted] if wanted else [])
    assert fetch == ("run", [sys.executable, "-m", "dlwpt.fetch", chapter], repo)
    assert chdir == ("chdir", f"{repo}/{chapter}")
    assert (ROOT / chapter).is_dir()
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"{host} setup: ") and chapter in out, out


@pytest.mark.parametrize("fail_at", ["git", "pip", "dlwpt.fetch"])
def test_setup_cell_shows_a_failing_step_in_full_and_stops(fail_at, monkeypatch, capsys):
    path = ROOT / "p1ch4/2_volumetric_ct.ipynb"  # the one notebook with all three steps
    with pytest.raises(RuntimeError) as failure:
        run_setup_cell(setup_cell(path).source, monkeypatch, "Colab", fail_at=fail_at)
    message = str(failure.value)
    assert message.startswith("Colab setup failed: ") and fail_at in message.split("\n")[0]
    assert "stdout of " in message and "fatal: the reason" in message
    assert capsys.readouterr().out == ""  # no "setup done" line


def test_setup_cell_failure_on_kaggle_names_the_internet_switch(monkeypatch):
    with pytest.raises(RuntimeError, match="switch Internet on"):
        run_setup_cell(setup_cell(NOTEBOOKS[0]).source, monkeypatch, "Kaggle", fail_at="git")


def test_packages_installed_on_colab_are_in_requirements():
    req = (ROOT / "requirements.txt").read_text(encoding="utf-8").lower()
    assert NOT_PREINSTALLED and all(re.search(rf"^{pkg}\b", req, re.M) for pkg in NOT_PREINSTALLED)


@pytest.mark.parametrize("chapter", sorted({p.parent.name for p in NOTEBOOKS}))
def test_setup_cell_fetch_step_works_from_a_fresh_clone(chapter, tmp_path):
    """The fetch the setup cell runs, from a copy of the helper package that is not installed (as in a fresh
    clone), against the local data mirror instead of the internet."""
    mirror = mirror_file().parent
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "dlwpt", clone / "dlwpt", ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import dlwpt, runpy; print('helper from', dlwpt.__file__); "
        "runpy.run_module('dlwpt.fetch', run_name='__main__')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, chapter, "--mirror", str(mirror), "--data-dir", str(tmp_path / "data")],
        cwd=clone,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"helper from {clone / 'dlwpt' / '__init__.py'}" in proc.stdout
    if chapter in {"p1ch3", "p1ch5", "p1ch7"}:
        # nothing to download (p1ch7's CIFAR-10 comes through torchvision)
        assert "no data files to fetch for this chapter" in proc.stdout
    else:
        assert " fetched, 0 already present, 0 failed" in proc.stdout
    if chapter == "p1ch6":  # its exercises use chapter 4's wine data
        assert (tmp_path / "data/p1ch4/tabular-wine/winequality-white.csv").is_file()


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
    else:  # without outputs, or with those of one recorded book-settings run on the real downloads
        assert policy_problems(nb, path.parent.name) == [], "commit without outputs (see tests/book_run.py)"
