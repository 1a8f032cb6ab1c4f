"""What the GitHub workflow (.github/workflows/tests.yml) would do, since it cannot run here (`make test` runs
actionlint on it): the legs, each leg's Python and pins through `make -n`, PowerShell that stops at the first
failing command and runs the documented commands, chapter 7 never skipped, the weekly and the manual jobs."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.standins import cifar as cifar_standin

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = yaml.safe_load((ROOT / ".github/workflows/tests.yml").read_text(encoding="utf-8"))
JOBS = WORKFLOW["jobs"]
PS_STOP = ["$ErrorActionPreference = 'Stop'", "$PSNativeCommandUseErrorActionPreference = $true"]


def make_dry_run(*args, env=None):
    """`make -n -B ARGS` as typed in a shell: without the variables of a make that runs these tests."""
    if sys.platform == "win32" or shutil.which("make") is None:  # windows-latest has a make.exe, but no POSIX shell
        pytest.skip("needs make and a POSIX shell; on Windows the documented PowerShell commands stand in for make")
    outer = ("MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES", "MAKELEVEL", "VENV", "REQUIREMENTS", "PYTHON", "BIN")
    env = {k: v for k, v in (env or os.environ).items() if k not in outer}
    proc = subprocess.run(["make", "-n", "-B", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def legs():
    """Every leg of the test job with its include values, as GitHub expands the matrix."""
    matrix = JOBS["test"]["strategy"]["matrix"]
    combos = [{"os": o, "versions": v} for o in matrix["os"] for v in matrix["versions"]]
    for extra in matrix["include"]:
        matching = [c for c in combos if all(extra.get(k, c[k]) == c[k] for k in ("os", "versions"))]
        if not matching:
            combos.append({})
            matching = combos[-1:]
        for c in matching:
            c.update(extra)
    return combos


def steps(job):
    return {step.get("name", step.get("uses")): step for step in JOBS[job]["steps"]}


def test_both_ends_run_on_three_systems_and_colabs_set_on_linux_each_on_its_python():
    got = {(leg["os"], leg["versions"]): leg["python"] for leg in legs()}
    systems = {"ubuntu-latest", "macos-latest", "windows-latest"}
    assert set(got) == {(o, v) for o in systems for v in ("newest", "oldest")} | {("ubuntu-latest", "hosted")}
    floor = re.search(r'requires-python = ">=(3\.\d+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"))[1]
    python = {v: p for (_, v), p in got.items()}  # the same on every system
    assert python == {"oldest": floor, "newest": "3.14", "hosted": "3.13"}  # strings: YAML reads 3.10 as 3.1
    colab = ROOT.parent / "shared/hosted/colab-os-info.gpu.txt"
    assert not colab.is_file() or re.search(r"^Python 3\.13\.", colab.read_text(encoding="utf-8"), re.M)
    setup = steps("test")["actions/setup-python@v6"]["with"]
    assert setup["cache-dependency-path"].splitlines() == ["${{ matrix.requirements }}", "requirements-dev.txt"]


@pytest.mark.parametrize("versions", ["newest", "oldest", "hosted"])
def test_each_leg_installs_its_pins_and_the_tools_lints_and_tests(versions):
    (leg,) = [leg for leg in legs() if leg["versions"] == versions and leg["os"] == "ubuntu-latest"]
    out = make_dry_run(leg["target"])
    assert f"-m pip install -r {leg['requirements']} -r requirements-dev.txt" in out
    assert "ruff check ." in out and "actionlint" in out and f"{leg['venv']}/bin/python -m pytest" in out
    cifar = steps("test")["CIFAR-10 download (Linux, macOS)"]["run"].splitlines()[0]  # make ... VENV=... REQ...
    cifar = cifar.replace("${{ matrix.venv }}", leg["venv"]).replace("${{ matrix.requirements }}", leg["requirements"])
    prepared = make_dry_run(*cifar.split()[1:])
    assert f"-m venv {leg['venv']}" in prepared and f"-m pip install -r {leg['requirements']}" in prepared


def powershell(doc):
    block = (ROOT / doc).read_text(encoding="utf-8").split("```powershell\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.split("  #")[0].strip()]


def test_windows_runs_the_documented_powershell_commands_and_stops_at_the_first_failure():
    """In pwsh only the last command's exit status counts unless the script asks to stop on errors, programs'
    exit codes included (PowerShell 7.3+; GitHub's windows runners have 7.4)."""
    found = [s for job in JOBS for s in JOBS[job]["steps"] if s.get("shell") in ("pwsh", "powershell")]
    assert found and all(s["run"].strip().splitlines()[:2] == PS_STOP for s in found)
    (step,) = found
    commands = [line.strip().replace("$env:REQUIREMENTS", "requirements.txt") for line in step["run"].splitlines()]
    assert commands == [c for c in powershell("INSTALL.md") if c != "jupyter lab"] + powershell("CONTRIBUTING.md")
    assert step["env"]["REQUIREMENTS"] == "${{ matrix.requirements }}"


def test_chapter7_cannot_be_skipped_and_cifar10_is_cached_before_it_is_downloaded():
    assert WORKFLOW["env"][cifar_standin.REQUIRE_ENV] == "1"
    for job in ("test", "real-downloads", "book-outputs"):
        runs = [s.get("run", "") + s.get("uses", "") for s in JOBS[job]["steps"]]
        cache = next(i for i, r in enumerate(runs) if r.startswith("actions/cache"))
        download = next(i for i, r in enumerate(runs) if "-m dlwpt.cifar10" in r)
        tests = next(i for i, r in enumerate(runs) if re.search(r"make (test|\$\{\{)|pytest|tests\.book_run", r))
        assert cache < download <= tests, job
    assert steps("test")["CIFAR-10 into the cache"]["if"].startswith("always()")  # even when a test fails


def test_macos_weekly_manual_and_superseded_runs():
    assert JOBS["test"]["env"]["DLWPT_DEVICE"] == "${{ startsWith(matrix.os, 'macos') && 'cpu' || '' }}"
    assert "env -u DLWPT_DEVICE" in steps("test")["the device dlwpt picks by itself (macOS)"]["run"]
    weekly, book = JOBS["real-downloads"], JOBS["book-outputs"]
    assert "schedule" in weekly["if"] and "make test PYTEST_ARGS=--real-downloads" in str(weekly["steps"])
    assert weekly["env"]["GITHUB_TOKEN"] == book["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    assert WORKFLOW[True]["workflow_dispatch"]["inputs"]["book_outputs"]["default"] is False  # YAML 1.1: on=True
    assert book["if"] == "github.event_name == 'workflow_dispatch' && inputs.book_outputs"
    assert "!inputs.book_outputs" in JOBS["test"]["if"] and "!inputs.book_outputs" in weekly["if"]
    out = re.search(r"tests\.book_run --out (\S+)", "\n".join(s.get("run", "") for s in book["steps"]))[1]
    upload = steps("book-outputs")["upload the executed notebooks"]
    assert upload["with"]["path"].rstrip("/") == out and upload["if"] == "always()"
    assert "DLWPT_QUICK" not in str(book) and "schedule" not in WORKFLOW["concurrency"]["cancel-in-progress"]
