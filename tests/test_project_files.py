"""Project files that must stay in step with each other."""

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from dlwpt.doctor import HOSTED_SKIP

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
    rows = [[cell.strip() for cell in line.split("|")[1:5]] for line in table.strip().splitlines()[2:]]
    return {name: (old, hosted, new) for name, old, hosted, new in rows}


def test_readme_lists_every_tested_version_set():
    """The README's table (written by `make versions` from real runs): oldest end, Colab's set, newest end."""
    ranges, oldest, hosted = read_specs("requirements.txt"), read_specs("requirements-oldest.txt"), hosted_pins()
    table = readme_tested_versions()
    assert set(table) == {"python", *ranges}
    for name, (old, colab, new) in table.items():
        if name == "python":
            continue
        assert Version(old) == Version(oldest[name].removeprefix("==")), f"{name}: oldest tested {old}"
        assert Version(new) in SpecifierSet(ranges[name]), f"{name}: newest tested {new} outside {ranges[name]}"
        if name in hosted:
            assert Version(colab) == Version(hosted[name]), f"{name}: tested {colab}, pinned {hosted[name]}"
        else:
            assert colab == "-" or Version(colab) in SpecifierSet(ranges[name]), f"{name}: {colab} on Colab's set"


def hosted_pins():
    """{name: version} of the exact pins in requirements-colab.txt."""
    specs = read_specs("requirements-colab.txt")
    return {name: spec[2:] for name, spec in specs.items() if spec.startswith("==")}


def colab_freeze():
    """{name: release} from the package list Google publishes for Colab (../shared/hosted), local tags dropped."""
    path = ROOT.parent / "shared/hosted/colab-pip-freeze.gpu.txt"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else pytest.skip(f"no {path}")
    return {canonicalize_name(n): v.split("+")[0] for n, v in (line.split("==", 1) for line in lines if "==" in line)}


def test_hosted_pins_are_colabs_versions():
    """requirements-colab.txt (make hosted-pins) names every package the notebooks and tests use, at Colab's version."""
    pins, colab = hosted_pins(), colab_freeze()
    ranged = read_specs("requirements-colab.txt")
    assert set(read_specs("requirements.txt")) - set(ranged) == {"jupyterlab"}  # Colab's front end stands in
    assert len(pins) >= 40
    for name, pinned in pins.items():
        assert colab.get(canonicalize_name(name)) == pinned, f"{name}=={pinned}, Colab has {colab.get(name)}"
    for name, spec in ranged.items():  # what Colab lacks keeps requirements.txt's range
        assert spec.startswith("==") or canonicalize_name(name) not in colab, name


def in_hosted_configuration():
    """True when this run's packages are requirements-colab.txt's (`make test-hosted`)."""
    return all(installed(name) == pinned for name, pinned in hosted_pins().items())


def installed(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def test_installed_versions_are_inside_the_ranges():
    """This very run is at one end of the ranges or between them, never outside; on Colab's set, the pins exactly."""
    hosted = in_hosted_configuration()
    for name, spec in read_specs("requirements.txt").items():
        if hosted and name in HOSTED_SKIP:  # Colab's own Jupyter (ipykernel 6.17.1, no JupyterLab)
            continue
        have = installed(name)
        assert have and Version(have) in SpecifierSet(spec), f"{name} {have} not in {spec}"
