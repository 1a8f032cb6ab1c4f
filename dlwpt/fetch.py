"""Fetch the book's data files into ``data/``, verified.

Usage (from the repository root)::

    python -m dlwpt.fetch                 # everything
    python -m dlwpt.fetch p1ch4           # one chapter (or a folder: p1ch4/tabular-wine)
    python -m dlwpt.fetch --mirror DIR    # copy from a local mirror instead of the internet
                                          # (or set DLWPT_DATA_MIRROR=DIR)

Every file is checked against ``manifest.tsv`` (size and SHA-256, or a git blob
id). A file is written to a temporary name next to its target and renamed into
place only after it checked out, so ``data/`` never holds a partial or corrupt
file. Files already present and correct are skipped. One run at a time writes
into a data folder (``.fetch.lock``; a second run waits and says so); each run
first removes the temporary files that interrupted runs left next to any file
of the manifest (``.<name>.<random>.part``), and nothing else.
"""

import argparse
import contextlib
import errno
import hashlib
import http.client
import math
import os
import re
import secrets
import shlex
import shutil
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

# The manifest and its reader live in dlwpt.data (require_data reads them too); named here as before.
from .data import COLUMNS, DATA_DIR, MANIFEST, Entry, ManifestError, load_manifest, under  # noqa: F401

MIRROR_ENV = "DLWPT_DATA_MIRROR"
CHUNK = 1 << 20
PROGRESS_MIN_BYTES = 1 << 20  # progress bar for files of 1 MiB and more
CHAPTERS = {f"p1ch{n}" for n in range(2, 8)}  # chapter 7's CIFAR-10 comes through torchvision
# Data a chapter's notebooks read from another chapter's folder (chapter 6's exercises use the wine data).
CHAPTER_NEEDS = {"p1ch6": ["p1ch4/tabular-wine"]}
# Bounds on a slow or dead server (stated in the README): a connection may stay silent TIMEOUT seconds
# (connecting or mid-transfer); a file must arrive within GRACE seconds plus its size at MIN_RATE bytes/s.
TIMEOUT = 30
GRACE = 30
MIN_RATE = 10_000
LOCK_NAME = ".fetch.lock"  # in the data folder: one run at a time writes there


class FetchError(Exception):
    pass


class Unreachable(FetchError):
    """The server of a URL could not be reached: its other files are not tried in this run."""

    def __init__(self, host, message):
        super().__init__(message)
        self.host = host


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
    """Pattern of the temporary names ``fetch_one`` gives ``target``: ``.<name>.<8 random characters>.part``."""
    return re.compile(re.escape(f".{target.name}.") + r"[a-z0-9_]{8}" + re.escape(".part"))


def remove_stale_temporaries(data_dir, entries):
    """Delete the temporaries that interrupted runs left next to any file of ``entries``; nothing else.

    Call it only while holding the data folder's lock (``locked``): then no other run is writing one.
    Returns the paths removed.
    """
    patterns = {}
    for entry in entries:
        target = Path(data_dir) / entry.path
        patterns.setdefault(target.parent, []).append(_temporary_name(target))
    removed = []
    for folder, names in patterns.items():
        try:
            for path in folder.iterdir():
                if any(name.fullmatch(path.name) for name in names) and path.is_file():
                    path.unlink()
                    removed.append(path)
        except OSError:
            continue  # a folder that is missing or unreadable: nothing to sweep there
    return removed


def _lock(f, wait):
    """Lock the open file ``f`` exclusively; False if another process holds it and ``wait`` is False."""
    if os.name == "nt":
        import msvcrt

        while True:
            try:
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not wait:
                    return False
                time.sleep(0.2)
    import fcntl

    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False


@contextlib.contextmanager
def locked(data_dir, out):
    """Hold ``data_dir/.fetch.lock`` (waiting, and saying so, while another run holds it).

    Yields False where the lock file cannot be opened (a read-only folder): nothing can be written there anyway.
    """
    try:
        f = open(Path(data_dir) / LOCK_NAME, "a+b")
    except OSError:
        yield False
        return
    with f:
        if not _lock(f, wait=False):
            print(f"Another fetch is writing into {data_dir}: waiting for it to finish...", file=out, flush=True)
            _lock(f, wait=True)
        yield True  # closing the file releases the lock


def _open_source(entry, mirror, timeout):
    """Return (readable binary stream, total size or None, description)."""
    if mirror is not None:
        src = Path(mirror) / entry.path
        if not src.is_file():
            raise FetchError(f"not in the mirror {mirror}")
        return open(src, "rb"), src.stat().st_size, f"mirror {mirror}"
    host = urllib.parse.urlsplit(entry.url).netloc
    try:
        resp = urllib.request.urlopen(entry.url, timeout=timeout)
    except urllib.error.HTTPError as e:  # a redirect loop is one: its message says so
        detail = str(e.msg or "").splitlines()
        raise FetchError(f"HTTP {e.code} from {entry.url}" + (f" ({detail[0]})" if detail else "")) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise FetchError(f"TLS certificate check failed for {entry.url} ({reason}). {CERT_FIX}") from None
        raise Unreachable(host, f"cannot reach {entry.url} ({reason}); offline? use --mirror DIR") from None
    except (ValueError, http.client.InvalidURL) as e:  # malformed URL, e.g. a raw space
        raise FetchError(f"bad URL {entry.url!r}: {e}") from None
    except http.client.HTTPException as e:  # a reply that is not HTTP (BadStatusLine, LineTooLong, ...)
        raise FetchError(f"bad reply from {entry.url}: {e!r}") from None
    length = resp.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    if total is not None and entry.size is not None and total > entry.size:
        resp.close()
        raise FetchError(f"download from {entry.url} rejected: {total} bytes announced, expected {entry.size}")
    return resp, total, entry.url


def _progress(total, label):
    if total is None or total < PROGRESS_MIN_BYTES:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # no progress bar, then
        return None
    return tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False, mininterval=0.5)


def _copy(stream, out, entry, source, bar):
    """Copy ``stream`` to ``out``: at most one byte more than the expected size, within the time bound.

    Errors reading are the source's (``FetchError``); errors writing (a full disk) propagate as ``OSError``.
    """
    start, received = time.monotonic(), 0
    while True:
        want = CHUNK if entry.size is None else min(CHUNK, entry.size + 1 - received)
        try:
            chunk = stream.read1(want) if want > 0 else b""
        except (OSError, http.client.HTTPException) as e:  # reset, timeout, IncompleteRead
            raise FetchError(f"transfer from {source} broke off: {e!r}") from None
        if not chunk:
            return
        received += len(chunk)
        if entry.size is not None and received > entry.size:
            raise FetchError(f"download from {source} rejected: more than the {entry.size} bytes expected")
        elapsed = time.monotonic() - start
        if elapsed > GRACE + received / MIN_RATE:
            raise FetchError(
                f"{source} is too slow: {received} bytes in {elapsed:.0f} s (the limit: {GRACE} s plus "
                f"{MIN_RATE // 1000} kB/s); retry later, or use --mirror DIR"
            )
        out.write(chunk)
        if bar is not None:
            bar.update(len(chunk))


def fetch_one(entry, data_dir, mirror=None, timeout=None):
    """Make ``data_dir/entry.path`` a verified copy. Returns "present" or "fetched ...".

    Raises ``FetchError`` with the reason if the source fails, ``OSError`` if the local disk does; either
    way no file (neither a partial download nor a corrupt earlier one) is left under the target name.
    """
    target = Path(data_dir) / entry.path
    if target.is_dir():
        raise FetchError(f"{target} is a folder where this file belongs: move it away, then run again")
    replaced = None
    if target.exists():
        replaced = check_file(target, entry)
        if replaced is None:
            return "present"
        target.unlink()  # a corrupt file is never left in place
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        # "x": created with the permissions of any new file (the umask's), not tempfile's 0600
        with open(tmp, "xb") as out:
            stream, total, source = _open_source(entry, mirror, TIMEOUT if timeout is None else timeout)
            bar = _progress(total, entry.path)
            try:
                with stream:
                    _copy(stream, out, entry, source, bar)
            finally:
                if bar is not None:
                    bar.close()
        reason = check_file(tmp, entry)
        if reason:
            raise FetchError(f"download from {source} rejected: {reason}")
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()  # gone already once renamed
    return "fetched" if replaced is None else "fetched (replaced a bad copy: " + replaced + ")"


def _disk_problem(err, data_dir, still_needed):
    """(one line naming the cause and what to do, whether the run must stop) for a local ``OSError``."""
    if err.errno in {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}:
        where = Path(data_dir).absolute()
        while not where.exists() and where != where.parent:
            where = where.parent
        need = max(1, math.ceil((still_needed - shutil.disk_usage(where).free) / 1e6))
        return f"no space left on device under {data_dir}: free {need} MB, then run again", True
    if err.errno == errno.EROFS:
        return f"{data_dir} is on a read-only file system: fetch into a writable folder with --data-dir DIR", True
    what = err.filename or data_dir
    if err.errno in {errno.EACCES, errno.EPERM}:
        return f"no permission to write {what}: make it writable for you, or use --data-dir DIR", False
    return f"cannot write {what}: {err.strerror or err}", False


def fetch(wanted=(), data_dir=DATA_DIR, mirror=None, out=None, manifest=MANIFEST, err=None):
    """Fetch the selected entries; print a summary on ``out``, errors on ``err``; return the exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    data_dir = Path(data_dir)
    try:
        everything = load_manifest(manifest)
    except ManifestError as e:
        print(f"error: {e}", file=err)
        return 2
    unknown = [w for w in wanted if w.strip("/") not in CHAPTERS and not select(everything, [w])]
    if unknown:
        print(f"Nothing in the manifest matches {' '.join(unknown)!r}. Chapters: p1ch2, p1ch4.", file=err)
        return 2
    entries = select(everything, wanted)
    if not entries:  # e.g. the Colab setup cell of chapter 3: nothing to download is not an error
        print(f"{' '.join(wanted)}: no data files to fetch for this chapter", file=out)
        return 0
    if data_dir.exists() and not data_dir.is_dir():
        print(f"error: the data folder {data_dir} is a file: use --data-dir with a folder", file=err)
        return 2
    print(f"Fetching {len(entries)} file(s) into {data_dir} from {mirror or 'the internet'}", file=out)
    fetched, present, failed, skipped = [], [], [], []
    stop = None
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        stop = _disk_problem(e, data_dir, sum(entry.size or 0 for entry in entries))[0]
    with contextlib.ExitStack() as stack:
        if stop is None and stack.enter_context(locked(data_dir, out)):
            remove_stale_temporaries(data_dir, everything)
        dead_hosts = set()
        for i, entry in enumerate(entries):
            if stop is not None:
                break
            host = urllib.parse.urlsplit(entry.url).netloc
            try:
                if mirror is None and host in dead_hosts:
                    raise FetchError(f"not tried: {host} could not be reached for an earlier file")
                status = fetch_one(entry, data_dir, mirror)
            except FetchError as e:
                if isinstance(e, Unreachable):
                    dead_hosts.add(e.host)
                (skipped if entry.optional else failed).append((entry, str(e)))
                continue
            except OSError as e:
                todo = [x for x in entries[i:] if not (data_dir / x.path).is_file()]
                reason, must_stop = _disk_problem(e, data_dir, sum(x.size or 0 for x in todo))
                failed.append((entry, reason))
                if must_stop:
                    stop = reason
                continue
            (present if status == "present" else fetched).append((entry, status))
            if status != "present":
                print(f"  {status:8s} {entry.path}", file=out)
    left = len(entries) - len(fetched) - len(present) - len(failed) - len(skipped)
    print(
        f"Summary: {len(fetched)} fetched, {len(present)} already present, {len(failed)} failed"
        + (f", {len(skipped)} optional not available" if skipped else "")
        + (f", {left} not attempted" if left else ""),
        file=out,
    )
    if stop is not None and not failed:
        print(f"  FAILED: {stop}", file=err)
    for entry, reason in failed:
        print(f"  FAILED {entry.path}: {reason}", file=err)
    for entry, reason in skipped:
        print(f"  NOT AVAILABLE (optional) {entry.path}: {reason}", file=out)
        print(f"    only needed by the notebooks of {entry.path.split('/')[0]}; online, get it with:", file=out)
        print(f"    python -m dlwpt.fetch {entry.path}", file=out)
    if failed or stop is not None:
        retry = ["python", "-m", "dlwpt.fetch", *wanted]
        retry += ["--mirror", str(mirror)] if mirror else []
        retry += ["--data-dir", str(data_dir)] if data_dir != DATA_DIR else []
        retry += ["--manifest", str(manifest)] if Path(manifest) != MANIFEST else []
        print(f"Retry with: {shlex.join(retry)}", file=err)
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
    if args.mirror and not Path(args.mirror).exists():
        parser.error(f"mirror folder {args.mirror} does not exist")
    if args.mirror and not Path(args.mirror).is_dir():
        parser.error(f"--mirror {args.mirror} is a file: name a folder laid out like data/")
    try:
        return fetch(args.what, Path(args.data_dir), args.mirror, manifest=Path(args.manifest))
    except KeyboardInterrupt:  # the file being fetched has been removed on the way out
        print("\ninterrupted: no partial file kept; run the same command again to go on", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
