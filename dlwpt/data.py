"""Where the book's data lives and whether it is there: the manifest of its files, ``data/``, the chapter folders.

``require_data("p1ch4/tabular-wine")`` checks the files are in ``data/`` (or ``$DLWPT_DATA``) and, if not, says
which command fetches them (``python -m dlwpt.fetch``, which downloads and verifies them).
"""

import csv
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
DATA_ENV = "DLWPT_DATA"  # another data folder for require_data (the tests point chapter 2 at stand-in weights)
MANIFEST = Path(__file__).with_name("manifest.tsv")
COLUMNS = ["path", "size", "sha256", "url", "git_blob"]


@dataclass(frozen=True)
class Entry:
    path: str  # relative to data/
    size: "int | None"
    sha256: "str | None"
    url: str
    git_blob: "str | None"  # SHA-1 of b"blob <size>\0" + content, for files with no published SHA-256

    @property
    def optional(self):
        # Hosted outside the book's second-edition repository and not mirrored:
        # its absence is reported but does not fail a fetch.
        return self.git_blob is not None


class ManifestError(Exception):
    pass


def _check_row(r):
    """The reason a manifest row (a dict of COLUMNS) is unusable, or None."""
    parts = r["path"].split("/")
    if "\\" in r["path"] or re.match(r"[A-Za-z]:", r["path"]) or any(p in {"", ".", ".."} for p in parts):
        return f"path {r['path']!r} must be relative to the data folder (no '..', '.', '//', '/...' or '\\')"
    if r["size"] and not r["size"].isdigit():
        return f"size {r['size']!r} is not a whole number of bytes"
    if r["sha256"] and not re.fullmatch(r"[0-9a-fA-F]{64}", r["sha256"]):
        return f"sha256 {r['sha256']!r} is not 64 hexadecimal digits"
    if r["git_blob"] and not re.fullmatch(r"[0-9a-fA-F]{40}", r["git_blob"]):
        return f"git_blob {r['git_blob']!r} is not 40 hexadecimal digits"
    if not (r["sha256"] or r["git_blob"]):
        return "neither sha256 nor git_blob: the file could not be checked"
    if urllib.parse.urlsplit(r["url"]).scheme not in {"http", "https"}:
        return f"url {r['url']!r} is not an http(s) URL"
    return None


def load_manifest(path=MANIFEST):
    """The manifest's entries; ``ManifestError`` naming the file and line if it is not well formed."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t"))
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"cannot read the manifest {path}: {getattr(e, 'strerror', None) or e}") from None
    if not rows or rows[0] != COLUMNS:
        raise ManifestError(f"{path} line 1: the header must be the tab-separated columns {' '.join(COLUMNS)}")
    entries, lines = [], {}
    for n, row in enumerate(rows[1:], 2):
        if not row:
            continue  # a blank line
        if len(row) != len(COLUMNS):
            raise ManifestError(f"{path} line {n}: {len(row)} columns, expected {len(COLUMNS)}: {' '.join(COLUMNS)}")
        r = dict(zip(COLUMNS, row))
        twice = f"{r['path']} is listed twice (line {lines[r['path']]})" if r["path"] in lines else None
        reason = _check_row(r) or twice
        if reason:
            raise ManifestError(f"{path} line {n}: {reason}")
        lines[r["path"]] = n
        size = int(r["size"]) if r["size"] else None
        entries.append(Entry(r["path"], size, r["sha256"].lower() or None, r["url"], r["git_blob"].lower() or None))
    if not entries:
        raise ManifestError(f"{path} lists no files")
    return entries


def under(path, prefix):
    """True if the manifest ``path`` is ``prefix`` itself or lies in the folder ``prefix``."""
    prefix = prefix.strip("/")
    return path == prefix or path.startswith(prefix + "/")



def fetch_command(prefix=None):
    """The shell command that fetches the data under ``prefix`` (a chapter or folder)."""
    chapter = prefix.split("/")[0] if prefix else ""
    return f"python -m dlwpt.fetch {chapter}".rstrip()


class WorkingDirectoryError(RuntimeError):
    """A notebook runs outside its chapter folder, where the book's relative paths miss."""


def require_chapter_folder(chapter=None):
    """Check that the working directory is a chapter folder of this repository; return it.

    The notebooks open files by the book's relative paths (``../data/p1ch4/...``,
    ``../data-unversioned/p1ch7/``), which hold only there. Elsewhere (papermill or
    VS Code started from the repository root) this raises ``WorkingDirectoryError``
    saying what to do. ``chapter`` (``"p1ch7"``) names the folder in that message.
    """
    cwd = Path.cwd().resolve()
    if cwd.parent == REPO_ROOT.resolve():
        return cwd
    folder = REPO_ROOT / (chapter or "p1chN")
    raise WorkingDirectoryError(
        f"This notebook must run in its chapter's folder, e.g. {folder}, but the working directory is {cwd}.\n"
        "Its cells open the book's files by relative paths (../data/..., ../data-unversioned/p1ch7/),\n"
        "which would miss the data of this repository. Do one of:\n"
        f"  - start Jupyter anywhere in {REPO_ROOT} and open the notebook: its folder is then the working directory;\n"
        f"  - papermill: add --cwd {folder}; VS Code: set jupyter.notebookFileRoot to ${{fileDirname}};\n"
        f"  - run this first in a cell, then this one again: import os; os.chdir({str(folder)!r})"
    )


def require_data(prefix, data_dir=None):
    """Check that every manifest file under ``prefix`` is present in ``data/``.

    Returns ``data/<prefix>`` (``$DLWPT_DATA/<prefix>`` when that is set). A missing file raises a
    ``FileNotFoundError`` that names the file and the command that fetches it.
    (Presence and size are checked here; ``python -m dlwpt.fetch`` checks SHA-256.)
    Unless ``data_dir`` is an absolute path, the notebook must also run in a chapter
    folder, where the book's ``../data/`` is this ``data/`` (``require_chapter_folder``).
    """
    if data_dir is None or not Path(data_dir).is_absolute():
        require_chapter_folder(prefix.split("/")[0])
    data_dir = Path(data_dir if data_dir is not None else os.environ.get(DATA_ENV) or DATA_DIR)
    # Optional files (the CycleGAN weights) count only when asked for by name.
    entries = [e for e in load_manifest() if under(e.path, prefix) and (e.path == prefix or not e.optional)]
    if not entries:
        raise ValueError(f"no data files of the book are listed under {prefix!r}")
    missing = []
    for entry in entries:
        target = data_dir / entry.path
        if not target.is_file() or (entry.size is not None and target.stat().st_size != entry.size):
            missing.append(entry.path)
    if missing:
        shown = "\n  ".join(missing[:5]) + ("\n  ..." if len(missing) > 5 else "")
        raise FileNotFoundError(
            f"{len(missing)} data file(s) of the book are missing or incomplete in {data_dir}:\n  {shown}\n"
            f"Fetch them from the repository root with:\n  {fetch_command(prefix)}"
        )
    return data_dir / prefix
