"""The requirement files and what is made of them stay in step: oldest pins at the floors, Colab's releases in the
hosted pins, the tested versions and this very run inside the ranges, conda's file with the readers' packages."""

import re
import runpy
from importlib.metadata import distributions
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from dlwpt.doctor import HOSTED_SKIP, read_requirements

ROOT = Path(__file__).resolve().parents[1]
READERS = dict(read_requirements(ROOT / "requirements.txt"))
DEV = dict(read_requirements(ROOT / "requirements-dev.txt"))  # the maintainers' tools
RANGES = {**READERS, **DEV}
FREEZE = ROOT.parent / "shared/hosted/colab-pip-freeze.gpu.txt"  # the package list Google publishes for Colab


def pins(name):
    return {package: spec[2:] for package, spec in read_requirements(ROOT / name) if spec.startswith("==")}


def test_environment_yml_has_the_readers_packages_and_ranges(tmp_path):
    conda = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))["dependencies"]
    listed = [d for d in conda if isinstance(d, str) and not d.startswith(("python", "pip"))]
    (tmp_path / "conda.txt").write_text("\n".join(listed).replace("pytorch", "torch"), encoding="utf-8")
    assert dict(read_requirements(tmp_path / "conda.txt")) == READERS and not set(READERS) & set(DEV)


def test_oldest_pins_are_the_floors_of_the_ranges():
    assert pins("requirements-oldest.txt") == {name: re.search(r">=([\d.]+)", spec)[1] for name, spec in RANGES.items()}


def test_hosted_pins_are_colabs_releases():
    if not FREEZE.is_file():
        pytest.skip(f"no {FREEZE}")
    hosted = runpy.run_path(str(ROOT / ".ci/hosted_pins.py"))  # make hosted-pins
    ours = hosted["pins"](FREEZE).split("# what they pull in")[0]  # ours at Colab's release, or our range if none
    assert (ROOT / "requirements-colab.txt").read_text(encoding="utf-8").startswith(ours)
    colab, pinned = hosted["read_freeze"](FREEZE), pins("requirements-colab.txt")
    assert len(pinned) >= 40 and all(colab.get(canonicalize_name(name)) == v for name, v in pinned.items())


def test_tested_versions_are_the_pins_and_inside_the_ranges():
    """CONTRIBUTING.md's table, written by `make versions` from real runs: oldest end, Colab's set, newest end."""
    table = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8").split("<!-- tested-versions:begin -->")[1]
    lines = table.split("<!-- tested-versions:end -->")[0].strip().splitlines()[3:]  # after the header and python
    rows = {cells[0]: cells[1:] for cells in (line.strip("| ").split(" | ") for line in lines)}
    oldest, hosted = pins("requirements-oldest.txt"), pins("requirements-colab.txt")
    assert list(rows) == list(RANGES)
    for name, (old, colab, new) in rows.items():
        assert Version(old) == Version(oldest[name]) and Version(new) in SpecifierSet(RANGES[name]), name
        if name in hosted:
            assert Version(colab) == Version(hosted[name]), name
        else:  # Colab lacks it: our range, or not installed (JupyterLab)
            assert colab == "-" or Version(colab) in SpecifierSet(RANGES[name]), name


def test_installed_versions_are_inside_the_ranges():
    """This run is at one end of the ranges or between them; in Colab's set, save Colab's Jupyter and test tools."""
    have = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    colab = all(have.get(canonicalize_name(name)) == v for name, v in pins("requirements-colab.txt").items())
    for name, spec in RANGES.items():
        if (colab and name in HOSTED_SKIP) or (name in DEV and name not in have):
            continue
        assert name in have and Version(have[name]) in SpecifierSet(spec), f"{name} {have.get(name)} not in {spec}"


def test_gitignore_keeps_downloads_out():
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert {"data/*", "data-unversioned/", ".venv*/", "outputs/"} <= set(ignored)
