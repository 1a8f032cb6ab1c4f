"""Chapter 7 where CIFAR-10 cannot be had (no stand-in, official data absent, offline): an ordinary run skips the
tests that read the data, saying why, and still runs those that do not; CI (DLWPT_REQUIRE_CIFAR10=1, set by the
GitHub workflow) fails instead of skipping. Run in a subprocess on this checkout with ../shared hidden."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shared import offline_env
from tests.standins import cifar as standin

ROOT = Path(__file__).resolve().parents[1]
NOT_READING_DATA = ["test_training_runs_on_the_helper_device", "test_notebooks_have_no_outputs_committed"]


def run_chapter7_tests(tmp_path, *args, **env):
    if (standin.OFFICIAL_DIR / "batches.meta").is_file():
        pytest.skip(f"the official CIFAR-10 is in {standin.OFFICIAL_DIR}: nothing would be skipped")
    environ = {k: v for k, v in os.environ.items()
               if k not in {standin.ROOT_ENV, standin.REQUIRE_ENV, "IPYTHONDIR", "PYTEST_XDIST_WORKER"}}
    environ.update(offline_env(), DLWPT_SHARED=str(tmp_path / "no-shared"), **env)
    environ["DLWPT_CIFAR_STANDIN_CACHE"] = str(tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-rs", "-q",
                           "tests/test_p1ch7.py", *args], cwd=ROOT, env=environ, capture_output=True, text=True,
                          timeout=600)
    return proc, proc.stdout + proc.stderr


def summary_line(proc):
    """pytest's closing line (a kernel's stderr, e.g. ipykernel 6.17's debugger notes, may come after it)."""
    return [line for line in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed|skipped)", line)][-1]


def test_without_cifar10_only_the_tests_reading_it_skip(tmp_path):
    proc, out = run_chapter7_tests(tmp_path)
    assert proc.returncode == 0, out[-4000:]
    summary = summary_line(proc)
    assert re.search(r"\b2 passed", summary), summary  # the two that read no data ran
    assert "CIFAR-10 unavailable" in out and "needs the CIFAR-10 stand-in's source" in out
    assert int(re.search(r"(\d+) skipped", summary).group(1)) >= 20


def test_in_ci_a_missing_cifar10_fails_instead_of_skipping(tmp_path):
    proc, out = run_chapter7_tests(tmp_path, "-k", "test_cifar2_sizes or " + " or ".join(NOT_READING_DATA),
                                   DLWPT_REQUIRE_CIFAR10="1")
    assert proc.returncode == 1, out[-4000:]
    assert "CIFAR-10 unavailable" not in out
    assert "CIFAR-10 could not be downloaded" in out  # the notebook's own message, from the failed download
    summary = summary_line(proc)
    assert re.search(r"\b2 passed", summary) and re.search(r"\b1 (failed|error)", summary), summary


def test_the_download_step_fails_offline_saying_where_the_archive_goes(tmp_path, monkeypatch, capsys):
    """`python -m dlwpt.cifar10`, the workflow's step before the tests: exit status 1 and the notebooks' message."""
    from dlwpt import cifar10

    for name, value in offline_env().items():
        monkeypatch.setenv(name, value)
    assert cifar10.main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "CIFAR-10 could not be downloaded" in err and str(tmp_path.resolve() / "cifar-10-python.tar.gz") in err
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()
