"""Fetch the book's data files into ``data/``, verified.

Usage (from the repository root)::

    python -m dlwpt.fetch                 # everything
    python -m dlwpt.fetch p1ch4           # one chapter (or a folder: p1ch4/tabular-wine)
    python -m dlwpt.fetch --mirror DIR    # copy from a local mirror instead of the internet
                                          # (or set DLWPT_DATA_MIRROR=DIR)

Every file is checked against ``manifest.tsv`` (size and SHA-256, or a git blob
id). A file is written to a temporary name next to its target and renamed into
place only after it checked out, so ``data/`` never holds a partial or corrupt
file. Files already present and correct are skipped. Temporary files that an
interrupted run left behind (``.<name>.<random>.part``) are removed by the next.
"""

import argparse
import csv
import hashlib
import http.client
import os
import re
import ssl
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import DATA_DIR

MANIFEST = Path(__file__).with_name("manifest.tsv")
MIRROR_ENV = "DLWPT_DATA_MIRROR"
CHUNK = 1 << 20
PROGRESS_MIN_BYTES = 1 << 20  # progress bar for files of 1 MiB and more
CHAPTERS = {f"p1ch{n}" for n in range(2, 8)}  # chapter 7's CIFAR-10 comes through torchvision
# Data a chapter's notebooks read from another chapter's folder (chapter 6's exercises use the wine data).
CHAPTER_NEEDS = {"p1ch6": ["p1ch4/tabular-wine"]}


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


class FetchError(Exception):
    pass


def load_manifest(path=MANIFEST):
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.DictReader(f, delimiter="\t")
        return [
            Entry(
                path=r["path"],
                size=int(r["size"]) if r["size"] else None,
                sha256=r["sha256"] or None,
                url=r["url"],
                git_blob=r["git_blob"] or None,
            )
            for r in rows
        ]


def under(path, prefix):
    """True if the manifest ``path`` is ``prefix`` itself or lies in the folder ``prefix``."""
    prefix = prefix.strip("/")
    return path == prefix or path.startswith(prefix + "/")


def select(entries, wanted):
    """Entries whose path equals or lies under one of ``wanted`` (all if empty)."""
    if not wanted:
        return list(entries)
    wanted = [w for want in wanted for w in [want, *CHAPTER_NEEDS.get(want.strip("/"), [])]]
    return [entry for entry in entries if any(under(entry.path, w) for w in wanted)]


def git_blob_id(path):
    h = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def check_file(path, entry):
    """Return None if ``path`` matches ``entry``, else the reason it does not."""
    size = os.path.getsize(path)
    if entry.size is not None and size != entry.size:
        return f"wrong size: {size} bytes, expected {entry.size}"
    if entry.sha256:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
        if h.hexdigest() != entry.sha256:
            return f"SHA-256 mismatch: got {h.hexdigest()[:16]}..., expected {entry.sha256[:16]}..."
    if entry.git_blob and git_blob_id(path) != entry.git_blob:
        return f"git blob id mismatch: expected {entry.git_blob}"
    return None


# How to repair Python's missing certificate authorities, the usual cause of a failed TLS check.
CERT_FIX = (
    "Python cannot verify the server's TLS certificate; usually its certificate authorities are missing. "
    'macOS with the python.org installer: run "Install Certificates.command" in its Applications folder; '
    "elsewhere: pip install certifi, then export SSL_CERT_FILE=$(python -m certifi)"
)


def _temporary_name(target):
    """Pattern of the temporary names ``fetch_one`` gives ``target`` (``tempfile.mkstemp``: 8 random characters)."""
    return re.compile(re.escape(f".{target.name}.") + r"[a-z0-9_]{8}" + re.escape(".part"))


def remove_stale_temporaries(target):
    """Delete what an interrupted fetch of ``target`` left behind: only names ``fetch_one`` makes.

    Returns the names removed.
    """
    if not target.parent.is_dir():
        return []
    pattern = _temporary_name(target)
    stale = [p for p in target.parent.iterdir() if pattern.fullmatch(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return [p.name for p in stale]


def _open_source(entry, mirror, timeout):
    """Return (readable binary stream, total size or None, description)."""
    if mirror is not None:
        src = Path(mirror) / entry.path
        if not src.is_file():
            raise FetchError(f"not in the mirror {mirror}")
        return open(src, "rb"), src.stat().st_size, f"mirror {mirror}"
    try:
        resp = urllib.request.urlopen(entry.url, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise FetchError(f"HTTP {e.code} from {entry.url}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise FetchError(f"TLS certificate check failed for {entry.url} ({reason}). {CERT_FIX}") from None
        raise FetchError(f"cannot reach {entry.url} ({reason}); offline? use --mirror DIR") from None
    except (ValueError, http.client.InvalidURL) as e:  # malformed URL, e.g. a raw space
        raise FetchError(f"bad URL {entry.url!r}: {e}") from None
    except http.client.HTTPException as e:  # a reply that is not HTTP (BadStatusLine, LineTooLong, ...)
        raise FetchError(f"bad reply from {entry.url}: {e!r}") from None
    length = resp.headers.get("Content-Length")
    return resp, int(length) if length else None, entry.url


def _progress(total, label):
    if total is None or total < PROGRESS_MIN_BYTES:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False, mininterval=0.5)


def fetch_one(entry, data_dir, mirror=None, timeout=60):
    """Make ``data_dir/entry.path`` a verified copy. Returns "present" or "fetched ...".

    Raises ``FetchError`` with the reason on failure; then no file (neither a
    partial download nor a corrupt earlier one) is left under the target name.
    """
    target = Path(data_dir) / entry.path
    remove_stale_temporaries(target)
    replaced = None
    if target.exists():
        replaced = check_file(target, entry)
        if replaced is None:
            return "present"
        target.unlink()  # a corrupt file is never left in place
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        stream, total, source = _open_source(entry, mirror, timeout)
        bar = _progress(total, entry.path)
        with stream, os.fdopen(fd, "wb") as out:
            fd = None
            try:
                for chunk in iter(lambda: stream.read(CHUNK), b""):
                    out.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as e:  # reset, timeout, IncompleteRead
                raise FetchError(f"transfer from {source} broke off: {e!r}") from None
            finally:
                if bar is not None:
                    bar.close()
        reason = check_file(tmp, entry)
        if reason:
            raise FetchError(f"download from {source} rejected: {reason}")
        os.replace(tmp, target)
        tmp = None
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return "fetched" if replaced is None else "fetched (replaced a bad copy: " + replaced + ")"


def fetch(wanted=(), data_dir=DATA_DIR, mirror=None, out=None, manifest=MANIFEST):
    """Fetch the selected entries; print a summary; return the exit status."""
    out = out or sys.stdout
    entries = select(load_manifest(manifest), wanted)
    if not entries:
        if all(w.strip("/") in CHAPTERS for w in wanted):
            # e.g. the Colab setup cell of chapter 3: nothing to download is not an error
            print(f"{' '.join(wanted)}: no data files to fetch for this chapter", file=out)
            return 0
        print(f"Nothing in the manifest matches {' '.join(wanted)!r}. Chapters: p1ch2, p1ch4.", file=out)
        return 2
    print(f"Fetching {len(entries)} file(s) into {data_dir} from {mirror or 'the internet'}", file=out)
    fetched, present, failed, skipped = [], [], [], []
    for entry in entries:
        try:
            status = fetch_one(entry, data_dir, mirror)
        except FetchError as e:
            (skipped if entry.optional else failed).append((entry, str(e)))
            continue
        (present if status == "present" else fetched).append((entry, status))
        if status != "present":
            print(f"  {status:8s} {entry.path}", file=out)

    retry = "python -m dlwpt.fetch " + " ".join(wanted) + (f" --mirror {mirror}" if mirror else "")
    print(
        f"Summary: {len(fetched)} fetched, {len(present)} already present, {len(failed)} failed"
        + (f", {len(skipped)} optional not available" if skipped else ""),
        file=out,
    )
    for entry, reason in failed:
        print(f"  FAILED {entry.path}: {reason}", file=out)
    for entry, reason in skipped:
        print(f"  NOT AVAILABLE (optional) {entry.path}: {reason}", file=out)
        print(f"    only needed by the notebooks of {entry.path.split('/')[0]}; online, get it with:", file=out)
        print(f"    python -m dlwpt.fetch {entry.path}", file=out)
    if failed:
        print(f"Retry with: {' '.join(retry.split())}", file=out)
        return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m dlwpt.fetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="*", help="chapters or folders to fetch (p1ch2, p1ch4/tabular-wine); default all")
    parser.add_argument(
        "--mirror", default=os.environ.get(MIRROR_ENV) or None, help=f"local mirror folder (default ${MIRROR_ENV})"
    )
    parser.add_argument("--data-dir", default=str(DATA_DIR), help="where to put the files (default: data/)")
    parser.add_argument("--manifest", default=str(MANIFEST), help="files to fetch (default: dlwpt/manifest.tsv)")
    args = parser.parse_args(argv)
    if args.mirror and not Path(args.mirror).is_dir():
        parser.error(f"mirror folder {args.mirror} does not exist")
    return fetch(args.what, Path(args.data_dir), args.mirror, manifest=Path(args.manifest))


if __name__ == "__main__":
    sys.exit(main())
