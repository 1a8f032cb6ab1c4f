"""The notebooks' setup on Google Colab and Kaggle: their first cell clones this repository, then calls ``setup``.

There ``setup(chapter)`` installs what the service lacks for the chapter, fetches the chapter's data, enters the
chapter's folder (the book's relative paths need it) and prints one line; a failing step raises with its whole
output. Elsewhere it does nothing.
"""

import importlib.util
import os
import subprocess
import sys

from .data import REPO_ROOT
from .doctor import HOSTED_INSTALLS, hosted_service, read_requirements

KAGGLE_HINT = " (on Kaggle, switch Internet on in the notebook's settings)"


def run_step(command, service):
    """Run ``command`` in the repository; a failure raises ``RuntimeError`` with its whole output."""
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        hint = KAGGLE_HINT if service == "Kaggle" else ""
        raise RuntimeError(f"{service} setup failed{hint}: {' '.join(command)}\n{done.stdout}{done.stderr}")


def installed(name):
    return importlib.util.find_spec(name) is not None


def setup(chapter):
    """On Colab or Kaggle, make this clone ready for ``chapter``'s notebooks and return its folder; else None."""
    service = hosted_service()
    if service is None:
        return None
    missing = [name for name in HOSTED_INSTALLS.get(chapter, []) if not installed(name)]
    if missing:
        ranges = dict(read_requirements())
        run_step([sys.executable, "-m", "pip", "install", "-q", *(name + ranges.get(name, "") for name in missing)],
                 service)
    run_step([sys.executable, "-m", "dlwpt.fetch", chapter], service)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    os.chdir(REPO_ROOT / chapter)
    note = f", installed {' '.join(missing)}" if missing else ""
    print(f"{service} setup: repository in {REPO_ROOT}{note}, {chapter} data fetched; working in {chapter}/")
    return REPO_ROOT / chapter
