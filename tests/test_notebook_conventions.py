"""Conventions every notebook keeps: Colab and Kaggle badges, the folded setup cell (and what it does on Colab and
Kaggle), and the outputs policy (chapters 3-6 with the outputs of a full run; chapters 2 and 7: tests/book_run.py)."""

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
from dlwpt import hosted
from dlwpt.doctor import HOSTED_INSTALLS, read_requirements
from tests.book_run import policy_problems
from tests.harness import mirror_file

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("p1ch*/*.ipynb"))
CHAPTERS = sorted({p.parent.name for p in NOTEBOOKS})
WITH_OUTPUTS = {"p1ch3", "p1ch4", "p1ch5", "p1ch6"}
SETUP_FIRST_LINE = "# @title Colab and Kaggle setup: does nothing elsewhere"
NOT_PREINSTALLED = {"pydicom"}  # of requirements.txt, on Colab or Kaggle (both have torch, ..., transformers)


def ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def read(path):
    return nbformat.read(path, as_version=4)


def setup_cell(path):
    cell = read(path).cells[1]
    assert cell.cell_type == "code" and cell.source.startswith(SETUP_FIRST_LINE), "cell 2 must be the setup cell"
    return cell


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_badges_and_a_folded_setup_cell(path):
    """Badges opening this notebook; the setup cell folded in JupyterLab (source_hidden) and Colab (form view), at
    most 6 lines, the same in every notebook but for its chapter."""
    first = read(path).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    github = f"{dlwpt.REPO_URL}/blob/{dlwpt.REPO_BRANCH}/{path.relative_to(ROOT).as_posix()}"
    colab = github.replace("https://github.com/", "https://colab.research.google.com/github/")
    assert f"colab-badge.svg)]({colab})" in first.source
    assert f"open-in-kaggle.svg)](https://kaggle.com/kernels/welcome?src={github})" in first.source
    cell, chapter = setup_cell(path), path.parent.name
    assert cell.metadata.get("jupyter", {}).get("source_hidden") is True and cell.metadata.get("cellView") == "form"
    assert re.fullmatch(r"# @title [^{}]+ \{ display-mode: \"form\" \}", cell.source.split("\n")[0])
    assert len(cell.source.splitlines()) <= 6 and f'.setup("{chapter}")' in cell.source
    assert cell.source.replace(chapter, "CH") == setup_cell(NOTEBOOKS[0]).source.replace("p1ch2", "CH")
    code = "\n".join(c.source for c in read(path).cells[2:] if c.cell_type == "code")
    imports = set(re.findall(r"^\s*(?:import|from)\s+(\w+)", code, re.M))  # what the services lack, installed
    assert NOT_PREINSTALLED & imports <= set(HOSTED_INSTALLS.get(chapter, [])) <= {n for n, _ in read_requirements()}


def as_host(monkeypatch, tmp_path, host, served=True, fail_at=None):
    """As on ``host`` (None, "Colab": lacking HOSTED_INSTALLS, "Kaggle"), home in ``tmp_path``: the cell clones a local
    repository (if ``served``); ``hosted.setup``'s commands are recorded, the one naming ``fail_at`` fails."""
    if host and os.name == "nt":
        pytest.skip("the cell runs on Colab and Kaggle (Linux), where its shell expands ~; cmd.exe does not")
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ["KAGGLE_KERNEL_RUN_TYPE", "COLAB_RELEASE_TAG"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    if host == "Kaggle":
        monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    elif host == "Colab":
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    source = tmp_path / "served"
    if served:
        subprocess.run(["git", "init", "-q", "-b", dlwpt.REPO_BRANCH, str(source)], check=True)
        subprocess.run(["git", "-C", str(source), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "0",
                        "--allow-empty"], check=True)
    for key, value in {"KEY_0": f"url.{source.as_uri()}.insteadOf", "VALUE_0": dlwpt.REPO_URL, "COUNT": "1"}.items():
        monkeypatch.setenv(f"GIT_CONFIG_{key}", value)
    calls = []

    def run(cmd, **kw):
        calls.append((cmd, kw.get("cwd")))
        failed = fail_at in cmd
        return subprocess.CompletedProcess(cmd, int(failed), "its stdout\n" * failed, "fatal: the reason\n" * failed)

    monkeypatch.setattr(hosted, "subprocess", types.SimpleNamespace(run=run))  # the cell's git clone stays real
    monkeypatch.setattr(hosted, "os", types.SimpleNamespace(chdir=lambda folder: calls.append(("chdir", folder))))
    monkeypatch.setattr(hosted, "installed", lambda name: host != "Colab")
    return calls


@pytest.mark.parametrize("host", [None, "Colab", "Kaggle"])
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_setup_cell_clones_installs_fetches_and_enters_chapter(chapter, host, tmp_path, monkeypatch, capsys):
    """Elsewhere the cell does nothing, silently; on Colab and Kaggle it clones and calls ``dlwpt.hosted.setup``."""
    calls, before = as_host(monkeypatch, tmp_path, host), list(sys.path)
    exec(setup_cell(ROOT / chapter / "exercises_solutions.ipynb").source, {})
    out = capsys.readouterr().out
    if host is None:
        assert out == "" and calls == [] and sys.path == before and not (tmp_path / "dlwpt-2e").exists()
        assert hosted.setup(chapter) is None and calls == [] and capsys.readouterr().out == ""
        return
    assert (tmp_path / "dlwpt-2e/.git/shallow").is_file()
    assert sys.path[0] == str(tmp_path / "dlwpt-2e")  # the helper package comes from the clone, not an install
    *installs, fetch, chdir = calls
    ranges = dict(read_requirements())  # what the service lacks (only), in requirements.txt's range
    wanted = [name + ranges[name] for name in HOSTED_INSTALLS.get(chapter, []) if host == "Colab"]
    assert installs == ([([sys.executable, "-m", "pip", "install", "-q", *wanted], dlwpt.REPO_ROOT)] if wanted else [])
    assert fetch == ([sys.executable, "-m", "dlwpt.fetch", chapter], dlwpt.REPO_ROOT)
    assert chdir == ("chdir", dlwpt.REPO_ROOT / chapter)
    assert out.count("\n") == 1 and out.startswith(f"{host} setup: ") and chapter in out, out


@pytest.mark.parametrize("host, fail_at", [("Colab", "git"), ("Colab", "pip"), ("Kaggle", "dlwpt.fetch")])
def test_setup_cell_shows_a_failing_step_in_full_and_stops(host, fail_at, tmp_path, monkeypatch, capsys):
    as_host(monkeypatch, tmp_path, host, served=fail_at != "git", fail_at=fail_at)
    with pytest.raises((AssertionError, RuntimeError)) as failure:
        exec(setup_cell(ROOT / "p1ch4/2_volumetric_ct.ipynb").source, {})  # the one chapter with all three steps
    message = str(failure.value)
    if fail_at == "git":  # git's own message, and the hint (the helper package is not there yet)
        assert "fatal: " in message and "On Kaggle, switch Internet on" in message
    else:
        hint = " (on Kaggle, switch Internet on in the notebook's settings)" if host == "Kaggle" else ""
        assert message.startswith(f"{host} setup failed{hint}: ") and fail_at in message.split("\n")[0]
        assert "its stdout" in message and "fatal: the reason" in message
    assert capsys.readouterr().out == ""  # no "setup done" line


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_setup_cell_fetch_step_works_from_a_fresh_clone(chapter, tmp_path):
    """The setup's fetch from a fresh clone (dlwpt not installed; no runpy warning), from the local data mirror."""
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "dlwpt", clone / "dlwpt", ignore=shutil.ignore_patterns("__pycache__"))
    code = "import dlwpt, runpy; print('from', dlwpt.__file__); runpy.run_module('dlwpt.fetch', run_name='__main__')"
    mirror, data = str(mirror_file().parent), str(tmp_path / "data")
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code, chapter, "--data-dir", data], cwd=clone,
                          env={**os.environ, "DLWPT_DATA_MIRROR": mirror}, capture_output=True, text=True)
    assert proc.returncode == 0 and f"from {clone / 'dlwpt' / '__init__.py'}" in proc.stdout, proc.stdout + proc.stderr
    nothing = chapter in {"p1ch3", "p1ch5", "p1ch7"}  # p1ch7's CIFAR-10 comes through torchvision
    assert ("no data files to fetch" if nothing else " fetched, 0 already present, 0 failed") in proc.stdout
    if chapter == "p1ch2":  # the optional weights (not mirrored) are reported with their own fetch command
        assert "1 optional not available" in proc.stdout and "dlwpt.fetch p1ch2/horse2zebra_0.4.0.pth" in proc.stdout
    assert (tmp_path / "data/p1ch4/tabular-wine").is_dir() == (chapter in {"p1ch4", "p1ch6"})  # ch. 6 reads ch. 4's


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_outputs_policy(path):
    nb = read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert not any(o.get("output_type") == "error" for o in cell.outputs), "committed error output"
        assert "execution" not in cell.metadata, "strip nbconvert's timestamps (noisy diffs on every rerun)"
    if path.parent.name in WITH_OUTPUTS:
        assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "outputs of one in-order run"
        assert any("nbval-check-output" in c.metadata.get("tags", []) for c in code), "tag the book's figures"
    else:  # without outputs, or with those of one recorded book-settings run on the real downloads
        assert policy_problems(nb, path.parent.name) == [], "commit without outputs (see tests/book_run.py)"
