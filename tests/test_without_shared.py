"""A checkout with no ../shared beside it and no internet (a contributor's laptop offline, a public CI
service with its network cut): the data mirror comes from another folder, and whatever cannot be had
(CIFAR-10, the CycleGAN facts) is skipped with a reason that names it, never failed, never waited for."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.shared import MIRROR, mirror_file, offline_env

ROOT = Path(__file__).resolve().parents[1]
# The tests that read ../shared (mirror, CIFAR-10 JPEGs, CycleGAN facts), plus one notebook on the fetched data.
SUBSET = [
    "tests/test_fetch.py::test_manifest_copies_the_mirror_facts",
    "tests/test_fetch.py::test_cli_with_shared_mirror_verifies_real_data",
    "tests/test_notebook_conventions.py",
    "tests/test_p1ch2.py::test_generator_state_dict_matches_published_file",
    "tests/test_p1ch2.py::test_cyclegan_notebook_loads_weights_and_makes_an_image",
    "tests/test_p1ch2.py::test_exercise_bobby_through_the_generator",
    "tests/test_p1ch7.py",
    "tests/test_p1ch7_official.py",
    "p1ch7",
    "p1ch4/3_tabular_wine.ipynb",
]
# Set by this very run's stand-ins; a fresh run must not inherit them.
INHERITED = ("IPYTHONDIR", "DLWPT_CIFAR_STANDIN", "TORCH_HOME", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE",
             "TRANSFORMERS_OFFLINE", "DLWPT_SHARED", "DLWPT_DATA_MIRROR", "DLWPT_REQUIRE_CIFAR10")


def copy_checkout(dest):
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)


def test_suite_without_shared_and_offline_skips_what_it_cannot_have(tmp_path):
    mirror_file()  # skips where there is no mirror to give from elsewhere
    checkout, elsewhere = tmp_path / "clone", tmp_path / "elsewhere" / "data-mirror"
    copy_checkout(checkout)
    shutil.copytree(MIRROR, elsewhere)
    assert not (checkout.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if k not in INHERITED}
    env.update(offline_env())  # no internet
    # the copy's own dlwpt, also in the notebook kernels (the environment may hold an editable install of ROOT)
    env.update(DLWPT_DATA_MIRROR=str(elsewhere), PYTHONPATH=str(checkout))
    env["DLWPT_CIFAR_STANDIN_CACHE"] = str(tmp_path / "cache")  # nothing cached from this run either
    fetch = subprocess.run([sys.executable, "-m", "dlwpt.fetch"], cwd=checkout, env=env, capture_output=True,
                           text=True, timeout=300)
    assert fetch.returncode == 0, fetch.stdout + fetch.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *SUBSET],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=1500,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    skipped = int(re.search(r"(\d+) skipped", summary).group(1))
    assert skipped > 0
    assert "CIFAR-10 unavailable" in out and "cifar10-jpeg" in out  # the reason names what is missing
    assert "horse2zebra_0.4.0.state_dict_manifest.json" in out  # the CycleGAN stand-in's facts
