"""What the GitHub workflow would do, since it cannot run here (`make test` runs actionlint on it): each leg's system,
Python and pins (through `make -n`), chapter 7 never skipped, on Windows the documented PowerShell commands."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tools import standins as cifar_standin

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = yaml.safe_load((ROOT / ".github/workflows/tests.yml").read_text(encoding="utf-8"))
JOBS = WORKFLOW["jobs"]
MATRIX = JOBS["test"]["strategy"]["matrix"]
ENDS = {leg["versions"]: leg for leg in MATRIX["include"]}  # newest, oldest (on every os), hosted (its own os)


def make_dry_run(*args, env=None):
    """`make -n -B ARGS` as typed in a shell: without the variables of a make that runs these tests."""
    if sys.platform == "win32" or shutil.which("make") is None:  # windows-latest has a make.exe, but no POSIX shell
        pytest.skip("needs make and a POSIX shell; on Windows the documented PowerShell commands stand in for make")
    outer = ("MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES", "MAKELEVEL", "VENV", "REQUIREMENTS", "PYTHON", "BIN")
    env = {k: v for k, v in (env or os.environ).items() if k not in outer}
    proc = subprocess.run(["make", "-n", "-B", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_both_ends_run_on_three_systems_and_colabs_set_on_linux_each_on_its_python():
    assert sorted(MATRIX["os"]) == ["macos-latest", "ubuntu-latest", "windows-latest"]
    assert MATRIX["versions"] == ["newest", "oldest"] and ENDS["hosted"]["os"] == "ubuntu-latest"
    floor = re.search(r'requires-python = ">=(3\.\d+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"))[1]
    python = {end: leg["python"] for end, leg in ENDS.items()}
    assert python == {"oldest": floor, "newest": "3.14", "hosted": "3.13"}  # strings: YAML reads 3.10 as 3.1
    assert WORKFLOW["env"][cifar_standin.REQUIRE_ENV] == "1"  # chapter 7 fails, never skips, without CIFAR-10
    (setup,) = [s["with"] for s in JOBS["test"]["steps"] if s.get("uses", "").startswith("actions/setup-python")]
    assert setup["cache-dependency-path"].splitlines() == ["${{ matrix.requirements }}", "requirements-dev.txt"]


@pytest.mark.parametrize("end", ["newest", "oldest", "hosted"])
def test_each_leg_installs_its_pins_and_the_tools_lints_and_tests(end):
    leg = ENDS[end]
    out = make_dry_run(leg["target"])
    assert f"-m pip install -r {leg['requirements']} -r requirements-dev.txt" in out
    assert "ruff check ." in out and "actionlint" in out and f"{leg['venv']}/bin/python -m pytest" in out
    (cifar,) = [s["run"] for s in JOBS["test"]["steps"] if "dlwpt.cifar10" in s.get("run", "") and "make" in s["run"]]
    make = cifar.splitlines()[0].replace("${{ matrix.venv }}", leg["venv"])
    out = make_dry_run(*make.replace("${{ matrix.requirements }}", leg["requirements"]).split()[1:])
    assert f"-m venv {leg['venv']}" in out and f"-m pip install -r {leg['requirements']}" in out


def powershell(doc):
    block = (ROOT / doc).read_text(encoding="utf-8").split("```powershell\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.split("  #")[0].strip()]


def test_windows_runs_the_documented_powershell_commands_and_stops_at_the_first_failure():
    """In pwsh only the last command's exit status counts unless the script asks to stop on errors, programs'
    exit codes included (PowerShell 7.3+; GitHub's windows runners have 7.4)."""
    (step,) = [s for job in JOBS.values() for s in job["steps"] if s.get("shell") in ("pwsh", "powershell")]
    commands = [line.strip().replace("$env:REQUIREMENTS", "requirements.txt") for line in step["run"].splitlines()]
    assert commands == [c for c in powershell("INSTALL.md") if c != "jupyter lab"] + powershell("CONTRIBUTING.md")
    assert commands[:2] == ["$ErrorActionPreference = 'Stop'", "$PSNativeCommandUseErrorActionPreference = $true"]
    assert step["env"]["REQUIREMENTS"] == "${{ matrix.requirements }}"
