"""The data fetcher: verified copies from a mirror or URL, and clear failures that leave no bad file."""

import csv
import hashlib
import http.client
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest

import dlwpt
from dlwpt import fetch as F
from tests.harness import mirror_file


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def write_manifest(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["path", "size", "sha256", "url", "git_blob"])
        w.writerows(rows)
    return path


@pytest.fixture
def setup(tmp_path):
    """A mirror with two good files, a manifest describing them, and an empty data folder."""
    mirror, data = tmp_path / "mirror", tmp_path / "data"
    files = {"p1ch9/a.txt": b"alpha\n" * 100, "p1ch9/sub dir/b.bin": bytes(range(256)) * 50}
    for rel, content in files.items():
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_bytes(content)
    rows = [[rel, len(c), sha256(c), "http://127.0.0.1:9/" + quote(rel), ""] for rel, c in files.items()]
    manifest = write_manifest(tmp_path / "manifest.tsv", rows)
    return mirror, data, manifest, files


def run(setup, capsys, wanted=()):
    """Fetch from the mirror; return the exit status and what was printed (the summary on stdout, then stderr)."""
    mirror, data, manifest, _ = setup
    code = F.fetch(wanted, data, str(mirror), manifest=manifest)
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def leftovers(folder):
    """The files under ``folder``, but the fetcher's lock file."""
    return sorted(p.name for p in Path(folder).rglob("*") if p.is_file() and p.name != F.LOCK_NAME)


def test_fetch_from_mirror_then_skip_verified(setup, capsys):
    mirror, data, manifest, files = setup
    code, out = run(setup, capsys)
    assert code == 0
    assert "2 fetched, 0 already present, 0 failed" in out
    for rel, content in files.items():
        assert (data / rel).read_bytes() == content
    code, out = run(setup, capsys)
    assert code == 0 and "0 fetched, 2 already present, 0 failed" in out


def test_select_one_chapter_or_folder(setup, capsys):
    code, out = run(setup, capsys, wanted=["p1ch9/sub dir"])
    assert code == 0 and "1 fetched" in out
    assert leftovers(setup[1]) == ["b.bin"]
    assert F.fetch(["p1ch99"], setup[1], str(setup[0]), manifest=setup[2]) == 2  # unknown
    assert F.fetch(["p1ch3"], setup[1], str(setup[0]), manifest=setup[2]) == 0  # a chapter with no data


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "SHA-256 mismatch"),  # corrupt, same size
        (lambda b: b[: len(b) // 2], "wrong size"),  # truncated
        (lambda b: b + b"extra", "more than the 600 bytes expected"),  # too long: not read past the size
    ],
    ids=["corrupt", "truncated", "too-long"],
)
def test_bad_mirror_file_is_rejected_and_not_left(setup, capsys, damage, reason):
    mirror, data, _, files = setup
    bad = mirror / "p1ch9/a.txt"
    bad.write_bytes(damage(files["p1ch9/a.txt"]))
    code, out = run(setup, capsys)
    assert code == 1
    assert "FAILED p1ch9/a.txt" in out and reason in out
    assert "Retry with: python -m dlwpt.fetch --mirror" in out
    assert leftovers(data) == ["b.bin"]  # neither a.txt nor a temporary .part file


def test_file_missing_from_mirror(setup, capsys):
    (setup[0] / "p1ch9/a.txt").unlink()
    code, out = run(setup, capsys)
    assert code == 1
    assert "FAILED p1ch9/a.txt: not in the mirror" in out
    assert leftovers(setup[1]) == ["b.bin"]


def test_unreachable_url_without_network(setup, capsys):
    _, data, manifest, _ = setup
    code = F.fetch((), data, None, manifest=manifest)  # URLs point at a closed local port
    err = capsys.readouterr().err
    assert code == 1
    # one connection attempt: the host's other file fails fast, saying why
    assert err.count("cannot reach http://127.0.0.1:9/") == 1 and "use --mirror DIR" in err
    assert "not tried: 127.0.0.1:9 could not be reached for an earlier file" in err
    assert leftovers(data) == []


def test_preexisting_corrupt_file_is_replaced(setup, capsys):
    _, data, _, files = setup
    target = data / "p1ch9/a.txt"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"garbage from an earlier, interrupted download")
    code, out = run(setup, capsys)
    assert code == 0
    assert "replaced a bad copy: wrong size" in out
    assert target.read_bytes() == files["p1ch9/a.txt"]


def test_preexisting_corrupt_file_is_removed_when_refetch_fails(setup, capsys):
    mirror, data, _, files = setup
    target = data / "p1ch9/a.txt"
    target.parent.mkdir(parents=True)
    target.write_bytes(files["p1ch9/a.txt"][:10])
    (mirror / "p1ch9/a.txt").unlink()
    code, out = run(setup, capsys)
    assert code == 1
    assert not target.exists()


@pytest.mark.parametrize(
    "error", [ConnectionResetError("connection reset by peer"), http.client.IncompleteRead(b"alpha", 100)]
)
def test_interrupted_transfer_leaves_nothing(setup, capsys, monkeypatch, error):
    class Broken:
        def __init__(self):
            self.calls = 0

        def read1(self, n):
            self.calls += 1
            if self.calls > 1:
                raise error
            return b"alpha\n"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(F, "_open_source", lambda entry, mirror, timeout: (Broken(), None, "test"))
    code, out = run(setup, capsys)
    assert code == 1 and "broke off" in out
    assert leftovers(setup[1]) == []


def test_optional_file_verified_by_git_blob(tmp_path, capsys):
    content = b"not really weights" * 1000
    mirror = tmp_path / "mirror"
    (mirror / "p1ch2").mkdir(parents=True)
    (mirror / "p1ch2/w.pth").write_bytes(content)
    blob = subprocess.run(
        ["git", "hash-object", str(mirror / "p1ch2/w.pth")], capture_output=True, text=True, check=True
    ).stdout.strip()
    good = write_manifest(tmp_path / "good.tsv", [["p1ch2/w.pth", "", "", "http://127.0.0.1:9/w", blob]])
    assert F.fetch((), tmp_path / "data", str(mirror), manifest=good) == 0
    assert (tmp_path / "data/p1ch2/w.pth").read_bytes() == content

    bad = write_manifest(tmp_path / "bad.tsv", [["p1ch2/w.pth", "", "", "http://127.0.0.1:9/w", "0" * 40]])
    code = F.fetch((), tmp_path / "data2", str(mirror), manifest=bad)
    out = capsys.readouterr().out
    assert code == 0  # optional: reported (on stdout), does not fail the fetch
    assert "NOT AVAILABLE (optional) p1ch2/w.pth: download from" in out and "git blob id mismatch" in out
    assert leftovers(tmp_path / "data2") == []


def test_progress_bar_for_large_files(tmp_path, capsys):
    content = b"x" * (F.PROGRESS_MIN_BYTES + 1)
    (tmp_path / "m/p1ch9").mkdir(parents=True)
    (tmp_path / "m/p1ch9/big.bin").write_bytes(content)
    manifest = write_manifest(tmp_path / "m.tsv", [["p1ch9/big.bin", len(content), sha256(content), "http://u", ""]])
    assert F.fetch((), tmp_path / "data", str(tmp_path / "m"), manifest=manifest) == 0
    assert "p1ch9/big.bin" in capsys.readouterr().err  # tqdm's bar, labelled with the file


def test_manifest_copies_the_mirror_facts():
    """Every file the manifest fetches is in the mirror with the same facts; not the reverse: the mirror also
    keeps files the book does not use (`p1ch2/horse_mask.jpg`, added to the book's repository in 2025)."""
    ours = {e.path: e for e in F.load_manifest()}
    with open(mirror_file("MANIFEST.tsv"), newline="", encoding="utf-8") as f:
        mirror = {r["path"]: r for r in csv.DictReader(f, delimiter="\t")}
    h2z = ours.pop("p1ch2/horse2zebra_0.4.0.pth")  # optional, not mirrored: checked by its git blob id
    assert h2z.git_blob == "ce10268a67fba8227bd42a071e17eef1b358fa2b" and h2z.optional
    first_edition = "https://raw.githubusercontent.com/deep-learning-with-pytorch/dlwpt-code/"
    assert h2z.url == first_edition + "d6c0210143daa133bbdeddaffc8993b1e17b5174/data/p1ch2/horse2zebra_0.4.0.pth"
    assert len(ours) == 115 and "p1ch2/horse_mask.jpg" not in ours
    for e in ours.values():
        r = mirror[e.path]
        assert (e.size, e.sha256, e.url) == (int(r["size"]), r["sha256"], r["url"])
        # pinned to a commit of the book's repository: an upstream edit cannot change what the check expects
        pinned = r"https://raw\.githubusercontent\.com/deep-learning-with-pytorch/dlwpt-code-2e/[0-9a-f]{40}/data/"
        assert re.match(pinned, e.url)
        assert e.url.endswith("/data/" + quote(e.path))
    assert ours["p1ch2/horse.jpg"].sha256 == "478b2b255c74ad18547b6df158a08703d7c5961e89a5c46f2685f820122fff66"


# What Python needs to start on Windows (SYSTEMROOT above all), kept in every reduced environment.
WINDOWS_ENV = ["SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT", "TEMP", "TMP", "USERPROFILE",
               "LOCALAPPDATA", "APPDATA", "PROGRAMDATA"]


def reduced_env(**variables):
    """Only ``variables`` (and PATH), plus the variables Python needs on Windows."""
    kept = {name: os.environ[name] for name in WINDOWS_ENV if name in os.environ}
    return {**kept, "PATH": os.environ.get("PATH", os.defpath), **variables}


def test_reduced_environment_keeps_what_windows_needs(monkeypatch):
    monkeypatch.setenv("SYSTEMROOT", r"C:\Windows")
    monkeypatch.setenv("DLWPT_SOMETHING", "dropped")
    env = reduced_env(DLWPT_DATA_MIRROR="m")
    assert env["SYSTEMROOT"] == r"C:\Windows" and env["DLWPT_DATA_MIRROR"] == "m" and "DLWPT_SOMETHING" not in env


def test_cli_with_shared_mirror_verifies_real_data(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dlwpt.fetch", "p1ch4/tabular-wine", "p1ch2", "--data-dir", str(tmp_path)],
        env=reduced_env(DLWPT_DATA_MIRROR=str(mirror_file().parent)),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 fetched, 0 already present, 0 failed, 1 optional not available" in proc.stdout
    assert "python -m dlwpt.fetch p1ch2/horse2zebra_0.4.0.pth" in proc.stdout
    assert (tmp_path / "p1ch4/tabular-wine/winequality-white.csv").stat().st_size == 264426


def test_cli_rejects_missing_mirror_folder(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dlwpt.fetch", "--mirror", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_require_data_names_the_fetch_command(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        dlwpt.require_data("p1ch4/tabular-wine", data_dir=tmp_path)
    assert "winequality-white.csv" in str(err.value)
    assert "python -m dlwpt.fetch p1ch4" in str(err.value)
    truncated = tmp_path / "p1ch4/tabular-wine/winequality-white.csv"
    truncated.parent.mkdir(parents=True)
    truncated.write_bytes(b"fixed acidity;")
    with pytest.raises(FileNotFoundError, match="missing or incomplete"):
        dlwpt.require_data("p1ch4/tabular-wine", data_dir=tmp_path)
    with pytest.raises(ValueError):
        dlwpt.require_data("p1ch99", data_dir=tmp_path)


def test_require_data_passes_on_fetched_data(monkeypatch):
    monkeypatch.chdir(dlwpt.REPO_ROOT / "p1ch6")  # a chapter folder: where the notebooks run
    assert dlwpt.require_data("p1ch4/tabular-wine") == dlwpt.DATA_DIR / "p1ch4/tabular-wine"


# --- Interrupted runs, malformed URLs and replies, TLS failures -------------------------------------


class _Server:
    """A threaded local HTTP server for one test; ``handler(request)`` writes the whole reply."""

    def __init__(self, handler):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                handler(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _parts(folder):
    return sorted(p.name for p in Path(folder).rglob("*.part"))


def test_temporary_name_pattern_matches_what_mkstemp_makes(tmp_path):
    target = tmp_path / "winequality-white.csv"
    fd, name = tempfile.mkstemp(dir=tmp_path, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    assert F._temporary_name(target).fullmatch(Path(name).name)
    look_alikes = [".winequality-white.csv.part", ".winequality-white.csv.abc.part", ".other.csv.abcdefgh.part",
                   "x.winequality-white.csv.abcdefgh.part", ".winequality-white.csv.abcdefgh.part.bak"]
    for other in look_alikes:
        assert not F._temporary_name(target).fullmatch(other), other


def test_killed_fetch_leaves_temporaries_that_the_next_run_removes(tmp_path):
    """SIGKILL a real ``python -m dlwpt.fetch`` mid-transfer from a slow local server, then re-run it."""
    signal = pytest.importorskip("signal")
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("needs SIGKILL (POSIX)")
    import time

    files = {"p1ch9/big.bin": bytes(range(256)) * 4096, "p1ch9/deep/other.bin": b"o" * 300_000}  # 1 MiB, 300 kB
    state = {"slow": True, "sent": 0}

    def serve(request):
        content = files[request.path.lstrip("/")]
        request.send_response(200)
        request.send_header("Content-Length", str(len(content)))
        request.end_headers()
        step = 4096 if state["slow"] else len(content)
        for start in range(0, len(content), step):
            try:
                request.wfile.write(content[start : start + step])
                request.wfile.flush()
            except OSError:  # the client was killed
                return
            state["sent"] += step
            if state["slow"]:
                time.sleep(0.05)  # about 80 kB/s: a transfer takes seconds

    server = _Server(serve)
    try:
        rows = [[rel, len(c), sha256(c), server.url + rel, ""] for rel, c in files.items()]
        manifest = write_manifest(tmp_path / "manifest.tsv", rows)
        data = tmp_path / "data"
        # Files that only look like temporaries: never touched.
        (data / "p1ch9").mkdir(parents=True)
        bystanders = {".big.bin.part", "big.bin.abcdefgh.part", ".notes.txt.abcdefgh.part", "keep.part"}
        for name in bystanders:
            (data / "p1ch9" / name).write_text("mine", encoding="utf-8")
        cmd = [sys.executable, "-m", "dlwpt.fetch", "--manifest", str(manifest), "--data-dir", str(data)]
        env = {k: v for k, v in os.environ.items() if k != F.MIRROR_ENV}

        killed = 0
        for wanted in ["p1ch9/big.bin", "p1ch9/deep"]:  # two kills, two different files
            state["sent"] = 0
            proc = subprocess.Popen([*cmd, wanted], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (state["sent"] >= 40_000 and len(_parts(data)) > 4):
                time.sleep(0.05)
            # mid-transfer: its temporary file is open and part of the file has been sent; the second run
            # has removed what the first left in p1ch9/, a folder it does not fetch into
            assert state["sent"] >= 40_000 and len(_parts(data)) == 5, "the fetch never got going"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            killed += 1
        left = [name for name in _parts(data) if name not in bystanders]
        assert len(left) == 1 and killed == 2  # what the last kill left behind: its one temporary
        assert not (data / "p1ch9/big.bin").exists() and not (data / "p1ch9/deep/other.bin").exists()

        state["slow"] = False
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "2 fetched, 0 already present, 0 failed" in proc.stdout
        assert _parts(data) == sorted(bystanders)  # the temporaries are gone; look-alikes stay
        for rel, content in files.items():
            assert (data / rel).read_bytes() == content

        # A temporary left next to a file that is already present goes too.
        stale = data / "p1ch9" / ".big.bin.k1ll3d_x.part"
        stale.write_bytes(b"partial")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "0 fetched, 2 already present" in proc.stdout
        assert not stale.exists() and _parts(data) == sorted(bystanders)
    finally:
        server.close()


def test_url_with_a_raw_space_is_a_clean_failure(tmp_path, capsys):
    url = "http://127.0.0.1:9/a b.txt"
    manifest = write_manifest(tmp_path / "m.tsv", [["p1ch9/a b.txt", 3, sha256(b"abc"), url, ""]])
    code = F.fetch((), tmp_path / "data", None, manifest=manifest)
    out = capsys.readouterr().err
    assert code == 1
    assert "FAILED p1ch9/a b.txt: bad URL 'http://127.0.0.1:9/a b.txt'" in out
    assert _parts(tmp_path / "data") == []


def test_reply_that_is_not_http_is_a_clean_failure(tmp_path, capsys):
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_garbage():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")  # http.client: BadStatusLine

    threading.Thread(target=answer_garbage, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{port}/a.txt"
        manifest = write_manifest(tmp_path / "m.tsv", [["p1ch9/a.txt", 3, sha256(b"abc"), url, ""]])
        code = F.fetch((), tmp_path / "data", None, manifest=manifest)
    finally:
        listener.close()
    out = capsys.readouterr().err
    assert code == 1
    assert f"FAILED p1ch9/a.txt: bad reply from {url}: BadStatusLine" in out and "Retry with:" in out
    assert _parts(tmp_path / "data") == []


def test_tls_certificate_failure_names_the_usual_fix(tmp_path, capsys):
    """A local HTTPS server with a self-signed certificate: Python's check rejects it, as a bare macOS install would."""
    import shutil
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    server = _Server(lambda request: request.send_error(404))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    try:
        url = server.url.replace("http:", "https:") + "a.txt"
        manifest = write_manifest(tmp_path / "m.tsv", [["p1ch9/a.txt", 3, sha256(b"abc"), url, ""]])
        code = F.fetch((), tmp_path / "data", None, manifest=manifest)
    finally:
        server.close()
    out = capsys.readouterr().err
    assert code == 1
    assert f"FAILED p1ch9/a.txt: TLS certificate check failed for {url}" in out
    assert "Install Certificates.command" in out and "pip install certifi" in out and "SSL_CERT_FILE" in out
    assert "Retry with:" in out and _parts(tmp_path / "data") == []


# --- Issue 20: concurrent runs, local disk errors, permissions, hostile manifests, bad servers ---------------


def _slow_server(files, delay=0.02, step=16384):
    """A local server sending each of ``files`` (path -> bytes) in steps of ``step`` bytes, ``delay`` s apart."""
    import time

    def serve(request):
        content = files[request.path.lstrip("/")]
        request.send_response(200)
        request.send_header("Content-Length", str(len(content)))
        request.end_headers()
        for start in range(0, len(content), step):
            try:
                request.wfile.write(content[start : start + step])
                request.wfile.flush()
            except OSError:
                return
            time.sleep(delay)

    return _Server(serve)


def test_two_runs_at_once_both_end_well(tmp_path):
    """Two real ``python -m dlwpt.fetch`` into one empty data folder: the second waits for the first, says so,
    and both end with every file verified (three trials)."""
    import time

    files = {f"p1ch9/f{n}.bin": bytes([n]) * 200_000 for n in range(3)}
    server = _slow_server(files, delay=0.05)  # about 0.6 s a file: the second run starts well within the first
    try:
        rows = [[rel, len(c), sha256(c), server.url + rel, ""] for rel, c in files.items()]
        manifest = write_manifest(tmp_path / "manifest.tsv", rows)
        env = {k: v for k, v in os.environ.items() if k != F.MIRROR_ENV}
        for trial in range(3):
            data = tmp_path / f"data{trial}"
            cmd = [sys.executable, "-m", "dlwpt.fetch", "p1ch9", "--manifest", str(manifest), "--data-dir", str(data)]
            first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 30
            while not _parts(data) and time.monotonic() < deadline:  # the first is writing its first file
                time.sleep(0.01)
            second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            results = [(p.wait(timeout=60), *p.communicate()) for p in (first, second)]
            for code, out, err in results:
                assert code == 0 and err == "", out + err
            assert "3 fetched, 0 already present, 0 failed" in results[0][1]
            assert "waiting for it to finish" in results[1][1] and "0 fetched, 3 already present" in results[1][1]
            for rel, content in files.items():
                assert (data / rel).read_bytes() == content
            assert _parts(data) == []
    finally:
        server.close()


class _FailingFile:
    """Stands in for the file object of the fetcher's temporary file: fails at ``when`` with ``error``."""

    def __init__(self, real, when, error):
        self.real, self.when, self.error = real, when, error

    def write(self, data):
        if self.when == "write":
            self.real.write(data[: len(data) // 2])  # half of it went to disk
            raise self.error
        return self.real.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()
        if self.when == "close" and exc[0] is None:
            raise self.error
        return False


def _inject(monkeypatch, when, error):
    """Make the fetcher's local file-system operation ``when`` fail with ``error``."""
    import builtins

    if when == "mkdir":
        def mkdir(self, *args, **kwargs):
            raise OSError(error.errno, error.strerror, str(self))

        monkeypatch.setattr(F.Path, "mkdir", mkdir)
        return

    def fake_open(file, mode="r", *args, **kwargs):
        if mode == "xb" and when == "create":
            raise OSError(error.errno, error.strerror, str(file))
        real = builtins.open(file, mode, *args, **kwargs)
        return _FailingFile(real, when, error) if mode == "xb" else real

    monkeypatch.setattr(F, "open", fake_open, raising=False)


@pytest.mark.parametrize("when", ["mkdir", "create", "write", "close"])
def test_full_disk_is_one_line_that_stops_the_run(setup, capsys, monkeypatch, when):
    import errno

    mirror, data, manifest, files = setup
    _inject(monkeypatch, when, OSError(errno.ENOSPC, "No space left on device"))
    code = F.fetch((), data, str(mirror), manifest=manifest)
    out, err = capsys.readouterr()
    assert code == 1
    failed = [line for line in err.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and f"no space left on device under {data}: free 1 MB, then run again" in failed[0]
    assert "broke off" not in err and "Traceback" not in err
    assert "not attempted" in out  # stopped once, not one failure per remaining file
    assert f"Retry with: python -m dlwpt.fetch --mirror {mirror} --data-dir {data} --manifest {manifest}" in err
    assert leftovers(data) == []


@pytest.mark.parametrize(
    "errno_name, when, expected, stops",
    [
        ("EROFS", "mkdir", "is on a read-only file system: fetch into a writable folder with --data-dir DIR", True),
        ("EROFS", "create", "is on a read-only file system: fetch into a writable folder with --data-dir DIR", True),
        ("EACCES", "create", "no permission to write ", False),
        ("EACCES", "mkdir", "no permission to write ", True),  # the data folder itself cannot be made
    ],
)
def test_read_only_or_unwritable_folder_is_one_clear_line(setup, capsys, monkeypatch, errno_name, when, expected,
                                                          stops):
    import errno

    mirror, data, manifest, _ = setup
    code = getattr(errno, errno_name)
    _inject(monkeypatch, when, OSError(code, os.strerror(code)))
    assert F.fetch((), data, str(mirror), manifest=manifest) == 1
    out, err = capsys.readouterr()
    failed = [line for line in err.splitlines() if "FAILED" in line]
    assert len(failed) == (1 if stops else 2) and all(expected in line for line in failed), err
    assert ("not attempted" in out) is stops and "Traceback" not in err


def test_data_dir_that_is_a_file_and_target_that_is_a_folder(setup, capsys):
    mirror, data, manifest, files = setup
    data.write_text("not a folder", encoding="utf-8")
    assert F.fetch((), data, str(mirror), manifest=manifest) == 2
    assert f"the data folder {data} is a file" in capsys.readouterr().err
    data.unlink()
    (data / "p1ch9/a.txt").mkdir(parents=True)  # a folder where a file belongs
    assert F.fetch((), data, str(mirror), manifest=manifest) == 1
    out, err = capsys.readouterr()
    assert f"FAILED p1ch9/a.txt: {data / 'p1ch9/a.txt'} is a folder where this file belongs" in err
    assert "1 fetched" in out and (data / "p1ch9/sub dir/b.bin").read_bytes() == files["p1ch9/sub dir/b.bin"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_fetched_files_get_the_permissions_of_a_normal_write(setup, capsys, umask, mode):
    mirror, data, manifest, files = setup
    old = os.umask(umask)
    try:
        assert F.fetch((), data, str(mirror), manifest=manifest) == 0
    finally:
        os.umask(old)
    for rel in files:
        assert (data / rel).stat().st_mode & 0o777 == mode


GOOD_SHA = "a" * 64


@pytest.mark.parametrize(
    "row, line_error",
    [
        (["../outside.txt", "3", GOOD_SHA, "http://x/a", ""], "line 2: path '../outside.txt' must be relative"),
        (["p1ch9/../../outside.txt", "3", GOOD_SHA, "http://x/a", ""], "line 2: path"),
        (["/tmp/outside.txt", "3", GOOD_SHA, "http://x/a", ""], "line 2: path '/tmp/outside.txt' must be relative"),
        (["C:/outside.txt", "3", GOOD_SHA, "http://x/a", ""], "line 2: path"),
        (["p1ch9/a.txt", "75k", GOOD_SHA, "http://x/a", ""], "line 2: size '75k' is not a whole number of bytes"),
        (["p1ch9/a.txt", "-3", GOOD_SHA, "http://x/a", ""], "line 2: size '-3' is not a whole number of bytes"),
        (["p1ch9/a.txt", "3", "xyz" * 21 + "x", "http://x/a", ""], "line 2: sha256 'xyz"),
        (["p1ch9/a.txt", "3", GOOD_SHA, "", ""], "line 2: url '' is not an http(s) URL"),
        (["p1ch9/a.txt", "3", GOOD_SHA, "http://x/a"], "line 2: 4 columns, expected 5"),
        (["p1ch9/a.txt", "3", "", "http://x/a", ""], "line 2: neither sha256 nor git_blob"),
        (None, "lists no files"),
    ],
)
def test_manifest_is_validated_on_load(tmp_path, capsys, row, line_error):
    manifest = write_manifest(tmp_path / "m.tsv", [row] if row else [])
    data = tmp_path / "inner" / "data"
    assert F.fetch((), data, None, manifest=manifest) == 2
    out, err = capsys.readouterr()
    assert f"error: {manifest}" in err and line_error in err, err
    assert not data.exists() and not (tmp_path / "outside.txt").exists() and not (tmp_path / "inner").exists()


def test_manifest_missing_file_or_column(tmp_path, capsys):
    assert F.fetch((), tmp_path / "data", None, manifest=tmp_path / "nope.tsv") == 2
    assert f"cannot read the manifest {tmp_path / 'nope.tsv'}" in capsys.readouterr().err
    row = "p1ch9/a\t3\t" + GOOD_SHA + "\thttp://x/a\n"
    (tmp_path / "m.tsv").write_text("path\tsize\tsha256\turl\n" + row, encoding="utf-8")
    assert F.fetch((), tmp_path / "data", None, manifest=tmp_path / "m.tsv") == 2
    assert "line 1: the header must be the tab-separated columns path size sha256 url git_blob" in (
        capsys.readouterr().err
    )


def test_reply_larger_than_expected_is_not_read_past_the_size(tmp_path, capsys):
    state = {"sent": 0}
    huge = 30_000_000

    def serve(request):  # no Content-Length: 30 MB for a 75 kB file
        request.send_response(200)
        request.end_headers()
        block = b"z" * 65536
        while state["sent"] < huge:
            try:
                request.wfile.write(block)
            except OSError:
                return
            state["sent"] += len(block)

    server = _Server(serve)
    try:
        manifest = write_manifest(tmp_path / "m.tsv", [["p1ch9/a.bin", 75_000, GOOD_SHA, server.url + "a", ""]])
        code = F.fetch((), tmp_path / "data", None, manifest=manifest)
    finally:
        server.close()
    assert code == 1
    assert "rejected: more than the 75000 bytes expected" in capsys.readouterr().err
    assert state["sent"] < huge  # the client stopped reading and hung up
    assert leftovers(tmp_path / "data") == []


def test_trickling_server_is_given_up(tmp_path, capsys, monkeypatch):
    """One byte every 0.3 s: with a 1 s grace and 100 B/s, the fetcher gives up within about 2 s."""
    import time

    monkeypatch.setattr(F, "GRACE", 1)
    monkeypatch.setattr(F, "MIN_RATE", 100)
    content = b"t" * 40

    def serve(request):
        request.send_response(200)
        request.send_header("Content-Length", str(len(content)))
        request.end_headers()
        for byte in content:  # 12 s in all: today's fetcher would wait it out
            try:
                request.wfile.write(bytes([byte]))
                request.wfile.flush()
            except OSError:
                return
            time.sleep(0.3)

    server = _Server(serve)
    try:
        manifest = write_manifest(tmp_path / "m.tsv", [["p1ch9/t.bin", 40, sha256(content), server.url + "t", ""]])
        start = time.monotonic()
        code = F.fetch((), tmp_path / "data", None, manifest=manifest)
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert code == 1 and elapsed < 5
    assert f"FAILED p1ch9/t.bin: {server.url}t is too slow" in capsys.readouterr().err
    assert leftovers(tmp_path / "data") == []


def test_dead_host_costs_one_timeout_not_one_per_file(tmp_path, capsys, monkeypatch):
    """A server that accepts nothing: the first file waits TIMEOUT, the host's other files fail at once."""
    import socket
    import time

    monkeypatch.setattr(F, "TIMEOUT", 1)
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)  # never accepts: connections hang
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    rows = [[f"p1ch9/{n}.bin", 3, GOOD_SHA, f"{url}{n}", ""] for n in range(5)]
    manifest = write_manifest(tmp_path / "m.tsv", rows)
    try:
        start = time.monotonic()
        code = F.fetch((), tmp_path / "data", None, manifest=manifest)
        elapsed = time.monotonic() - start
    finally:
        listener.close()
    err = capsys.readouterr().err
    assert code == 1 and elapsed < 4  # today: one timeout per file
    assert err.count("could not be reached for an earlier file") == 4


def test_redirect_loop_says_so(tmp_path, capsys):
    def serve(request):
        request.send_response(302)
        request.send_header("Location", request.path)
        request.end_headers()

    server = _Server(serve)
    try:
        manifest = write_manifest(tmp_path / "m.tsv", [["p1ch9/a", 3, GOOD_SHA, server.url + "a", ""]])
        assert F.fetch((), tmp_path / "data", None, manifest=manifest) == 1
    finally:
        server.close()
    assert "HTTP 302" in (err := capsys.readouterr().err) and "infinite loop" in err


def test_unknown_name_among_valid_ones_is_an_error(setup, capsys):
    mirror, data, manifest, _ = setup
    assert F.fetch(["p1ch9/a.txt", "p1ch9/typo"], data, str(mirror), manifest=manifest) == 2
    assert "'p1ch9/typo'" in capsys.readouterr().err
    assert not data.exists()


def test_errors_go_to_stderr_the_summary_to_stdout(setup, capsys):
    mirror, data, manifest, _ = setup
    (mirror / "p1ch9/a.txt").unlink()
    assert F.fetch((), data, str(mirror), manifest=manifest) == 1
    out, err = capsys.readouterr()
    assert "Summary: 1 fetched" in out and "FAILED" not in out and "Retry with" not in out
    assert "FAILED p1ch9/a.txt: not in the mirror" in err and "Summary" not in err


def test_large_file_without_tqdm(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    content = b"x" * (F.PROGRESS_MIN_BYTES + 1)
    (tmp_path / "m/p1ch9").mkdir(parents=True)
    (tmp_path / "m/p1ch9/big.bin").write_bytes(content)
    manifest = write_manifest(tmp_path / "m.tsv", [["p1ch9/big.bin", len(content), sha256(content), "http://u", ""]])
    assert F.fetch((), tmp_path / "data", str(tmp_path / "m"), manifest=manifest) == 0
    assert (tmp_path / "data/p1ch9/big.bin").read_bytes() == content


def test_cli_mirror_that_is_a_file(tmp_path):
    (tmp_path / "m").write_text("x", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "dlwpt.fetch", "--mirror", str(tmp_path / "m")], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "is a file" in proc.stderr and "does not exist" not in proc.stderr


def test_stale_temporary_in_a_folder_the_run_does_not_fetch_is_swept(setup, capsys):
    mirror, data, manifest, _ = setup
    stale = data / "p1ch9" / ".a.txt.abcd1234.part"
    lookalike = data / "p1ch9" / ".notes.txt.abcd1234.part"  # not a file of the manifest: kept
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"partial")
    lookalike.write_bytes(b"mine")
    code, out = run(setup, capsys, wanted=["p1ch9/sub dir"])
    assert code == 0 and not stale.exists() and lookalike.exists()


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_ctrl_c_is_one_line_and_leaves_no_temporary(tmp_path):
    import signal
    import time

    files = {"p1ch9/big.bin": b"b" * 900_000}  # under 1 MiB: no progress bar on stderr
    server = _slow_server(files, delay=0.05, step=4096)
    try:
        rows = [[r, len(c), sha256(c), server.url + r, ""] for r, c in files.items()]
        manifest = write_manifest(tmp_path / "m.tsv", rows)
        data = tmp_path / "data"
        cmd = [sys.executable, "-m", "dlwpt.fetch", "--manifest", str(manifest), "--data-dir", str(data)]
        env = {k: v for k, v in os.environ.items() if k != F.MIRROR_ENV}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not _parts(data) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # mid-transfer
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        server.close()
    assert proc.returncode == 130
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err, err
    assert _parts(data) == [] and not (data / "p1ch9/big.bin").exists()
