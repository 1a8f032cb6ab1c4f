"""Project files that must stay in step with each other."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> pip name


def requirement_specs(lines):
    specs = {}
    for line in lines:
        line = line.split("#")[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*([<>=!~,.\d\s]*)", line)
        if m:
            specs[m.group(1).lower()] = m.group(2).replace(" ", "")
    return specs


def test_environment_yml_and_requirements_name_the_same_packages():
    pip = requirement_specs((ROOT / "requirements.txt").read_text().splitlines())
    conda_lines = []
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        m = re.match(r"\s+- ([A-Za-z][^=<>\s]*)([<>=].*)?$", line)
        if m and m.group(1) not in {"python", "pip"} and not line.strip().startswith("- -"):
            name = CONDA_NAMES.get(m.group(1), m.group(1))
            conda_lines.append(name + (m.group(2) or ""))
    conda = requirement_specs(conda_lines)
    assert len(pip) >= 15
    assert conda == pip


def test_gitignore_keeps_downloads_out():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for pattern in ["data/*", "data-unversioned/", ".venv/", "outputs/"]:
        assert pattern in ignored


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    assert "make test" in readme and "make test MIRROR=" in ci
