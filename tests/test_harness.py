"""The notebook harness itself: a failing or hanging cell must fail the run, with its traceback."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]


def run_nbval(tmp_path, *cells, timeout=60, args=()):
    """pytest + nbval on a notebook made of ``cells``, outside this project's conftest; ``args``: more pytest
    arguments (this checkout is on PYTHONPATH, so ``-p tests.nbval_rerun`` loads the re-run plugin)."""
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "sample.ipynb"
    nbformat.write(nb, path)
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", *args]
    cmd += [f"--nbval-cell-timeout={timeout}", str(path)]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_passing_notebook_passes_and_runs_in_its_own_folder(tmp_path):
    (tmp_path / "here.txt").write_text("hi", encoding="utf-8")
    proc = run_nbval(tmp_path, "x = 1", "assert open('here.txt').read() == 'hi'")
    assert proc.returncode == 0, proc.stdout
    assert "2 passed" in proc.stdout


def test_failing_cell_fails_with_its_traceback(tmp_path):
    proc = run_nbval(tmp_path, "x = 1", "def deep():\n    raise ValueError('broken on purpose')\ndeep()")
    assert proc.returncode == 1
    assert "ValueError" in proc.stdout and "broken on purpose" in proc.stdout and "deep()" in proc.stdout


def test_hanging_cell_times_out(tmp_path):
    proc = run_nbval(tmp_path, "import time\ntime.sleep(30)", timeout=2)
    assert proc.returncode == 1
    assert "Timeout" in proc.stdout or "timed out" in proc.stdout.lower()


def test_helper_package_builds_with_its_manifest(tmp_path):
    """What `pip install` (Colab, or a non-editable install) gets: dlwpt with manifest.tsv inside."""
    import shutil
    import zipfile

    src = tmp_path / "src"  # a copy, so the build leaves nothing in the repository
    shutil.copytree(ROOT / "dlwpt", src / "dlwpt", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ["pyproject.toml", "README.md", "LICENSE"]:
        shutil.copy(ROOT / name, src / name)
    proc = subprocess.run(
        # with build isolation, as pip installs it: pyproject's build-system asks for the setuptools it needs
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path)]
        + [str(src)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("dlwpt-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dlwpt/manifest.tsv" in names and "dlwpt/fetch.py" in names


def test_output_sanitizer_ignores_reprs_but_not_values():
    """nbval compares outputs after tests/nbval_sanitize.cfg: library reprs differ, values must not."""
    import re

    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text(encoding="utf-8"))

    def clean(text):
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    numpy2 = "array([[ 7.  ,  0.27],\n       [ 6.  ,  0.21]],\n      shape=(4898, 12), dtype=float32)"
    numpy1 = "array([[ 7.  ,  0.27],\n       [ 6.  ,  0.21]], dtype=float32)"
    assert clean(numpy2) == clean(numpy1)
    assert clean(numpy2) != clean(numpy1.replace("0.21", "0.22"))
    assert clean("tensor(2., grad_fn=<ViewBackward0>)") == clean("tensor(2., grad_fn=<AddBackward0>)")
    assert clean("tensor(2., grad_fn=<ViewBackward0>)") != clean("tensor(3., grad_fn=<AddBackward0>)")
