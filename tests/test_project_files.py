"""Project files that must stay in step with each other."""

import re
from importlib.metadata import version
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

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
    pip = requirement_specs((ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines())
    conda_lines = []
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    for line in text.split("dependencies:", 1)[1].splitlines():
        m = re.match(r"\s+- ([A-Za-z][^=<>\s]*)([<>=].*)?$", line)
        if m and m.group(1) not in {"python", "pip"} and not line.strip().startswith("- -"):
            name = CONDA_NAMES.get(m.group(1), m.group(1))
            conda_lines.append(name + (m.group(2) or ""))
    conda = requirement_specs(conda_lines)
    assert len(pip) >= 15
    assert conda == pip


def test_gitignore_keeps_downloads_out():
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    for pattern in ["data/*", "data-unversioned/", ".venv*/", "outputs/"]:
        assert pattern in ignored


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci/run").read_text(encoding="utf-8")
    assert "make test" in readme and "make test MIRROR=" in ci


def read_specs(name):
    return requirement_specs((ROOT / name).read_text(encoding="utf-8").splitlines())


def test_oldest_pins_are_the_floors_of_the_ranges():
    """requirements-oldest.txt pins, for every package, exactly the lower bound requirements.txt promises."""
    ranges, oldest = read_specs("requirements.txt"), read_specs("requirements-oldest.txt")
    assert set(oldest) == set(ranges)
    for name, spec in ranges.items():
        floor = re.search(r">=([\d.]+)", spec)
        assert floor, f"{name}: requirements.txt gives no floor"
        assert oldest[name] == "==" + floor.group(1), f"{name}: pinned {oldest[name]}, floor {floor.group(1)}"


def readme_tested_versions():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("<!-- tested-versions:begin -->", 1)[1].split("<!-- tested-versions:end -->", 1)[0]
    rows = [line.split("|")[1:4] for line in table.strip().splitlines()[2:]]
    return {name.strip(): (old.strip(), new.strip()) for name, old, new in rows}


def test_readme_lists_both_tested_version_sets():
    """The README's table (written by `make versions` from real runs) covers every package, at both ends."""
    ranges, oldest = read_specs("requirements.txt"), read_specs("requirements-oldest.txt")
    table = readme_tested_versions()
    assert set(table) == {"python", *ranges}
    for name, (old, new) in table.items():
        if name == "python":
            continue
        assert Version(old) == Version(oldest[name].removeprefix("==")), f"{name}: oldest tested {old}"
        assert Version(new) in SpecifierSet(ranges[name]), f"{name}: newest tested {new} outside {ranges[name]}"


def test_installed_versions_are_inside_the_ranges():
    """This very run is at one end of the ranges or between them, never outside."""
    for name, spec in read_specs("requirements.txt").items():
        assert Version(version(name)) in SpecifierSet(spec), f"{name} {version(name)} not in {spec}"
