"""Small helpers for the notebooks of *Deep Learning with PyTorch, 2nd ed.*

- ``get_device()`` / ``describe_device()``: CUDA, else Apple MPS, else CPU
  (``DLWPT_DEVICE=cpu`` forces a choice). In ``dlwpt.device``.
- ``require_data("p1ch4/tabular-wine")``: checks the book's data files are in
  ``data/`` and, if not, says which command fetches them. In ``dlwpt.data``, with
  ``require_chapter_folder()``, which stops a notebook run from a working directory where
  the book's relative paths (``../data/...``) miss, saying what to do.
- ``quick_mode()``: ``DLWPT_QUICK=1`` shortens long training runs (tests).

Commands: ``python -m dlwpt.fetch`` (the data), ``dlwpt.doctor`` (an environment report),
``dlwpt.cifar10``, ``dlwpt.publish``; ``dlwpt.hosted.setup`` is the notebooks' Colab and Kaggle setup.
"""

import os

from .data import DATA_DIR, REPO_ROOT, WorkingDirectoryError, fetch_command, require_chapter_folder, require_data
from .device import describe_device, get_device

__all__ = [
    "REPO_URL",
    "REPO_BRANCH",
    "REPO_ROOT",
    "DATA_DIR",
    "get_device",
    "describe_device",
    "quick_mode",
    "require_data",
    "require_chapter_folder",
    "WorkingDirectoryError",
    "fetch_command",
]

# Where the repository is published: the notebooks' Colab and Kaggle badges and their setup cell
# point here. `python -m dlwpt.publish OWNER/NAME [--branch BRANCH]` rewrites all of them at once.
REPO_URL = "https://github.com/dlwpt-2e/dlwpt-2e"
REPO_BRANCH = "main"

QUICK_ENV = "DLWPT_QUICK"


def quick_mode():
    """True when ``DLWPT_QUICK`` is set to 1/true/yes: tests shorten training with it."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
