"""CIFAR-10 for chapter 7: torchvision's download, with a clear message when it cannot be had.

The chapter 7 notebooks call ``download_cifar10()`` in a cell of their own (not in the book) just
before the book's ``datasets.CIFAR10(data_path, ..., download=True)``: online it is that same
download (once; later runs only verify the files); offline it stops with where to put the archive
by hand instead of a bare ``URLError``.
"""

import http.client
from pathlib import Path

from . import REPO_ROOT

# Where the notebooks' '../data-unversioned/p1ch7/' points when run from the chapter's folder.
CIFAR10_DIR = REPO_ROOT / "data-unversioned" / "p1ch7"
ARCHIVE_BYTES = 170_498_071  # cifar-10-python.tar.gz, as published


def download_cifar10(root=None):
    """Download (once) and verify CIFAR-10 into ``root``; return the folder.

    Any network or file error becomes a ``RuntimeError`` that says where torchvision expects the
    archive, how big it is and where to get it, so that a reader can place it by hand.
    """
    from torchvision import datasets

    root = Path(root) if root is not None else CIFAR10_DIR
    try:
        datasets.CIFAR10(root, train=False, download=True)  # the 10,000 test images load fastest
    except (OSError, http.client.HTTPException) as err:
        raise RuntimeError(offline_message(root, err)) from None
    return root


def offline_message(root, err):
    from torchvision import datasets

    cls = datasets.CIFAR10
    archive = Path(root).resolve() / cls.filename
    return (
        f"CIFAR-10 could not be downloaded ({type(err).__name__}: {err}).\n"
        f"torchvision expects the archive at\n  {archive}\n"
        f"({ARCHIVE_BYTES:,} bytes, about {ARCHIVE_BYTES / 2**20:.0f} MiB, MD5 {cls.tgz_md5}).\n"
        f"Download it where there is internet from\n  {cls.url}\n"
        "copy it there unchanged (do not unpack it) and rerun this cell: torchvision checks and unpacks it."
    )


def main(argv=None):
    """``python -m dlwpt.cifar10 [FOLDER]``: download and verify CIFAR-10 now (CI does, before the tests, so that a
    failed download fails there, saying why); exit status 1 with the message above when it cannot be had."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    try:
        root = download_cifar10(args[0] if args else None)
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"CIFAR-10 verified in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
