"""Material kept beside the checkout (``../shared``: data mirror, CIFAR-10 JPEGs, facts about
published files), and how a test skips, with a reason that names it, where that is absent
(a contributor's clone, a public CI service).

``DLWPT_SHARED`` points at another folder; ``DLWPT_DATA_MIRROR`` at another data mirror.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DLWPT_SHARED") or ROOT.parent / "shared")
MIRROR = Path(os.environ.get("DLWPT_DATA_MIRROR") or SHARED / "data-mirror")


def shared_file(relpath):
    """``SHARED / relpath``, or skip the calling test naming what is missing."""
    path = SHARED / relpath
    if not path.exists():
        pytest.skip(f"needs {path} (the ../shared folder beside the checkout; or set DLWPT_SHARED)")
    return path


def mirror_file(relpath="MANIFEST.tsv"):
    """A file of the local data mirror, or skip the calling test naming what is missing."""
    path = MIRROR / relpath
    if not path.exists():
        pytest.skip(f"needs the data mirror file {path} (set DLWPT_DATA_MIRROR)")
    return path


def offline_env(port=9):
    """Environment variables that send every HTTP(S) download to a closed local port: offline, even on a
    machine that is online. The tests' own local servers (127.0.0.1, localhost) stay reachable."""
    closed = f"http://127.0.0.1:{port}"
    local = "127.0.0.1,localhost"
    return {"http_proxy": closed, "https_proxy": closed, "HTTP_PROXY": closed, "HTTPS_PROXY": closed,
            "no_proxy": local, "NO_PROXY": local}
