"""The data fetcher (dlwpt/fetch.py): verified copies from a mirror or URL; every failure is one clear line on
stderr naming the file, and leaves nothing under data/ (neither a partial download nor an earlier bad copy)."""

import csv
import errno
import hashlib
import http.server
import io
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

import dlwpt
from dlwpt import fetch as F
from tests.harness import mirror_file

A, B = "p1ch9/a.txt", "p1ch9/sub dir/b.bin"
FILES = {A: b"alpha\n" * 100, B: bytes(range(256)) * (F.PROGRESS_MIN_BYTES // 256 + 1)}
ENV = {k: v for k, v in os.environ.items() if not k.startswith("DLWPT_")}  # real runs: no inherited mirror


def row(rel, content, url):
    return [rel, len(content), hashlib.sha256(content).hexdigest(), url, ""]


def write_manifest(path, rows):
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in [F.COLUMNS, *rows]), encoding="utf-8")
    return path


def leftovers(folder):
    return sorted(p.name for p in Path(folder).rglob("*") if p.is_file() and p.name != F.LOCK_NAME)


def wait_for(condition, what):
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)


@pytest.fixture
def setup(tmp_path):
    """A mirror holding FILES, a manifest of them (URLs to a closed port), and the data folder to fill."""
    for rel, content in FILES.items():
        (tmp_path / "mirror" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "mirror" / rel).write_bytes(content)
    rows = [row(rel, content, "http://127.0.0.1:9/" + quote(rel)) for rel, content in FILES.items()]
    return tmp_path / "mirror", tmp_path / "data", write_manifest(tmp_path / "manifest.tsv", rows)


def fetch(setup, capsys, wanted=()):
    mirror, data, manifest = setup
    return F.fetch(wanted, data, str(mirror), manifest=manifest), *capsys.readouterr()


@pytest.fixture
def serve(tmp_path):
    """``serve(handler)``: a local server where ``handler(request)`` replies; ``tls=True``: HTTPS with a self-signed
    certificate, which Python rejects (as on a bare macOS install). ``.sent``: the bytes ``send`` got out."""
    servers = []

    def start(handler, tls=False):
        class Handler(http.server.BaseHTTPRequestHandler):
            do_GET = handler

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads, server.sent = True, 0
        server.url = f"http{'s' if tls else ''}://127.0.0.1:{server.server_address[1]}/"
        if tls:
            if shutil.which("openssl") is None:
                pytest.skip("needs the openssl command to make a self-signed certificate")
            cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                            "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def send(request, body, headers=None, step=None, delay=0.0):
    """Reply 200 with ``body`` in steps of ``step`` bytes, ``delay`` s apart, until the client hangs up."""
    request.send_response(200)
    for name, value in ({"Content-Length": len(body)} if headers is None else headers).items():
        request.send_header(name, str(value))
    request.end_headers()
    step = step or len(body)
    for start in range(0, len(body), step):
        try:
            request.wfile.write(body[start : start + step])
        except OSError:
            return
        request.server.sent += step
        time.sleep(delay)


@pytest.mark.parametrize("with_tqdm", [True, False])
def test_fetch_from_mirror_what_is_asked_replacing_a_bad_copy(setup, capsys, monkeypatch, request, with_tqdm):
    data = setup[1]
    code, _, err = fetch(setup, capsys, [A, "p1ch9/typo"])
    assert code == 2 and "'p1ch9/typo'" in err and not data.exists()  # a name that is not in the manifest
    data.write_text("not a folder", encoding="utf-8")
    code, _, err = fetch(setup, capsys)
    assert code == 2 and f"the data folder {data} is a file" in err
    data.unlink()
    assert fetch(setup, capsys, ["p1ch3"])[0] == 0  # a chapter with no data files: nothing to do
    if not with_tqdm:
        monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
        monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    old_umask = os.umask(0o002)  # new files: rw-rw-r--
    request.addfinalizer(lambda: os.umask(old_umask))
    (data / A).parent.mkdir(parents=True)
    (data / A).write_bytes(b"an earlier, interrupted download")
    os.close(tempfile.mkstemp(dir=data / "p1ch9", prefix=".a.txt.", suffix=".part")[0])  # named as earlier runs did
    mine = {".a.txt.part", ".a.txt.abc.part", ".notes.txt.abcdefgh.part", "x.a.txt.abcdefgh.part",
            ".a.txt.abcdefgh.part.bak", "keep.part"}  # look-alikes of the temporaries of interrupted runs
    for name in {".a.txt.k1ll3d_x.part", *mine}:
        (data / "p1ch9" / name).write_bytes(b"partial")
    code, out, err = fetch(setup, capsys, ["p1ch9/sub dir"])  # a folder
    assert code == 0 and "1 fetched, 0 already present, 0 failed" in out and "FAILED" not in err
    # the run removed the temporaries of interrupted runs, even in a folder it does not fetch into; nothing else
    assert sorted(p.name for p in (data / "p1ch9").iterdir()) == sorted({"a.txt", "sub dir", *mine})
    assert (B in err) is with_tqdm  # B is over 1 MiB: a progress bar labelled with the file, where tqdm is
    code, out, err = fetch(setup, capsys)
    assert code == 0 and err == "" and "1 fetched, 1 already present, 0 failed" in out
    assert "replaced a bad copy: wrong size" in out
    for rel, content in FILES.items():  # with the permissions of any new file (the umask's), not 0600
        assert (data / rel).read_bytes() == content
        assert os.name != "posix" or (data / rel).stat().st_mode & 0o777 == 0o664


MIRROR_FAULTS = {  # damage to the mirror's copy -> what the FAILED line says
    "corrupt": (lambda b: b[:-1] + b"?", "SHA-256 mismatch"),
    "truncated": (lambda b: b[:300], "wrong size: 300 bytes, expected 600"),
    "missing": (None, "not in the mirror"),
    "folder-in-the-way": (lambda b: b, "is a folder where this file belongs: move it away"),
}
REPLIES = {  # what the server does -> what the FAILED line says (a regular expression; {url}: the file's)
    "redirect-loop": (lambda r: (r.send_response(302), r.send_header("Location", r.path), r.end_headers()),
                      r"HTTP 302 from {url} \(.*infinite loop"),
    "not-http": (lambda r: r.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), "bad reply from {url}: BadStatusLine"),
    "announces-too-much": (lambda r: send(r, FILES[A], {"Content-Length": 1200}), "1200 bytes announced"),
    "endless": (lambda r: send(r, b"z" * 30_000_000, {}, step=65536), "more than the 600 bytes expected"),
    "cut-short": (lambda r: send(r, b"258\r\n" + FILES[A][:300], {"Transfer-Encoding": "chunked"}),
                  "transfer from {url} broke off: IncompleteRead"),
    "trickles": (lambda r: send(r, FILES[A], step=1, delay=0.1), "{url} is too slow"),
    "tls": (None, "TLS certificate check failed for {url}.*" + re.escape(F.CERT_FIX)),  # and how to repair it
}


@pytest.mark.parametrize("case", [*MIRROR_FAULTS, *REPLIES, "unreachable", "raw-space-url"])
def test_a_failed_file_is_one_clear_line_and_leaves_nothing(case, setup, serve, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(F, "TIMEOUT", 1)  # silent for 1 s: given up
    monkeypatch.setattr(F, "GRACE", 0.5)  # too slow: not there after 0.5 s plus 100 B/s
    monkeypatch.setattr(F, "MIN_RATE", 100)
    mirror, data, server = None, setup[1], None
    url, expected = "http://127.0.0.1:9/a b.txt", "bad URL '{url}'"
    if case in MIRROR_FAULTS:
        mirror, (damage, expected) = setup[0], MIRROR_FAULTS[case]
        (mirror / A).unlink() if damage is None else (mirror / A).write_bytes(damage(FILES[A]))
    elif case in REPLIES:
        handler, expected = REPLIES[case]
        server = serve(handler, tls=case == "tls")
        url = server.url + "a.txt"
    elif case == "unreachable":  # the host's other files are not tried
        listener = socket.create_server(("127.0.0.1", 0), backlog=0)  # listens, never accepts: connections hang
        host = f"127.0.0.1:{listener.getsockname()[1]}"
        url, expected = f"http://{host}/a.txt", "cannot reach {url}.*use --mirror DIR"
    rows = [row(A, FILES[A], url)] + ([row(B, FILES[B], url + "b")] if case == "unreachable" else [])
    (data / A).parent.mkdir(parents=True)
    (data / A).mkdir() if case == "folder-in-the-way" else (data / A).write_bytes(b"an earlier, bad copy")
    start = time.monotonic()
    code = F.fetch((), data, mirror and str(mirror), manifest=write_manifest(tmp_path / "m.tsv", rows))
    out, err = capsys.readouterr()
    assert code == 1 and time.monotonic() - start < 5  # one wait at most, not one per file
    if case == "unreachable":
        listener.close()
    failed = [line for line in err.splitlines() if "FAILED" in line]
    assert len(failed) == len(rows) and re.search(f"FAILED {A}: .*" + expected.replace("{url}", re.escape(url)),
                                                  failed[0]), err
    if case == "unreachable":
        assert failed[1].endswith(f"not tried: {host} could not be reached for an earlier file")
    assert "Traceback" not in err and "Retry with: python -m dlwpt.fetch" in err
    assert "Summary: 0 fetched" in out and "FAILED" not in out and "Retry" not in out  # errors on stderr only
    assert leftovers(data) == []  # neither a temporary nor the earlier bad copy
    if case == "endless":
        assert server.sent < 30_000_000  # the fetcher stopped reading and hung up


class FullDisk(io.FileIO):  # the fetcher's temporary file on a disk that fills up halfway through a write
    def write(self, data):
        super().write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


NO_SPACE, READ_ONLY = "no space left on device under {data}: free 1 MB, then run again", "{data} is on a read-only"


@pytest.mark.parametrize("name, when, expected, stops", [
    ("ENOSPC", "mkdir", NO_SPACE, True),  # the data folder itself cannot be made
    ("ENOSPC", "write", NO_SPACE, True),
    ("EROFS", "create", READ_ONLY, True),
    ("EACCES", "create", "no permission to write ", False),
])
def test_a_local_disk_error_is_one_clear_line(setup, capsys, monkeypatch, name, when, expected, stops):
    mirror, data, manifest = setup
    code, real_open = getattr(errno, name), open

    def fail(path, mode="r", *args, **kwargs):  # stands in for Path.mkdir and open
        if when == "create" and mode == "xb" or when == "mkdir":
            raise OSError(code, os.strerror(code), str(path))
        return FullDisk(path, mode) if mode == "xb" else real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(*(F.Path, "mkdir", fail) if when == "mkdir" else (F, "open", fail), raising=False)
    assert F.fetch((), data, str(mirror), manifest=manifest) == 1
    out, err = capsys.readouterr()
    failed = [line for line in err.splitlines() if "FAILED" in line]
    assert len(failed) == (1 if stops else 2) and all(expected.format(data=data) in line for line in failed), err
    assert ("not attempted" in out) is stops and "Traceback" not in err and "broke off" not in err
    assert f"Retry with: python -m dlwpt.fetch --mirror {mirror} --data-dir {data} --manifest {manifest}" in err
    assert leftovers(data) == []


H, SHA = "\t".join(F.COLUMNS), "a" * 64  # the header; a well-formed SHA-256


@pytest.mark.parametrize("lines, expected", [  # the manifest's lines (None: no manifest)
    ([H, f"../outside.txt\t3\t{SHA}\thttp://x/a\t"], "line 2: path '../outside.txt' must be relative"),
    ([H, f"C:/outside.txt\t3\t{SHA}\thttp://x/a\t"], "line 2: path 'C:/outside.txt' must be relative"),
    ([H, f"p1ch9/a\t75k\t{SHA}\thttp://x/a\t"], "line 2: size '75k' is not a whole number of bytes"),
    ([H, f"p1ch9/a\t3\t{'xyz' * 21}x\thttp://x/a\t"], "line 2: sha256 'xyz"),
    ([H, "p1ch9/a\t3\t\thttp://x/a\t"], "line 2: neither sha256 nor git_blob"),
    ([H, f"p1ch9/a\t3\t{SHA}\t\t"], "line 2: url '' is not an http(s) URL"),
    ([H, f"p1ch9/a\t3\t{SHA}\thttp://x/a"], "line 2: 4 columns, expected 5"),
    ([H, *[f"p1ch9/a\t3\t{SHA}\thttp://x/a\t"] * 2], "line 3: p1ch9/a is listed twice (line 2)"),
    ([H], "lists no files"),
    (["path\tsize\tsha256\turl"], "line 1: the header must be the tab-separated columns"),
    (None, "cannot read the manifest"),
])
def test_a_bad_manifest_is_refused_naming_the_file_and_line(tmp_path, capsys, lines, expected):
    manifest = tmp_path / "m.tsv"
    if lines is not None:
        manifest.write_text("\n".join([*lines, ""]), encoding="utf-8")
    assert F.fetch((), tmp_path / "inner" / "data", None, manifest=manifest) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(manifest) in err and expected in err, err
    assert not (tmp_path / "inner").exists() and not (tmp_path / "outside.txt").exists()


def test_optional_file_verified_by_git_blob(tmp_path, capsys):
    content = b"not really weights" * 1000
    (tmp_path / "mirror/p1ch2").mkdir(parents=True)
    (tmp_path / "mirror/p1ch2/w.pth").write_bytes(content)
    blob = subprocess.run(["git", "hash-object", str(tmp_path / "mirror/p1ch2/w.pth")],
                          capture_output=True, text=True, check=True).stdout.strip()
    for name, blob_id in [("good", blob), ("bad", "0" * 40)]:
        manifest = write_manifest(tmp_path / f"{name}.tsv", [["p1ch2/w.pth", "", "", "http://x/w", blob_id]])
        assert F.fetch((), tmp_path / name, str(tmp_path / "mirror"), manifest=manifest) == 0  # optional: never fails
    assert (tmp_path / "good/p1ch2/w.pth").read_bytes() == content
    out = capsys.readouterr().out
    assert "NOT AVAILABLE (optional) p1ch2/w.pth: download from" in out and "git blob id mismatch" in out
    assert leftovers(tmp_path / "bad") == []


def test_manifest_copies_the_mirror_facts():
    """Every file the manifest fetches is in the mirror with the same facts (the mirror also keeps unused ones)."""
    ours = {e.path: e for e in F.load_manifest()}
    with open(mirror_file("MANIFEST.tsv"), newline="", encoding="utf-8") as f:
        mirror = {r["path"]: r for r in csv.DictReader(f, delimiter="\t")}
    h2z = ours.pop("p1ch2/horse2zebra_0.4.0.pth")  # optional, not mirrored: checked by its git blob id
    assert h2z.git_blob == "ce10268a67fba8227bd42a071e17eef1b358fa2b" and h2z.optional
    first_edition = "https://raw.githubusercontent.com/deep-learning-with-pytorch/dlwpt-code/"
    assert h2z.url == first_edition + "d6c0210143daa133bbdeddaffc8993b1e17b5174/data/p1ch2/horse2zebra_0.4.0.pth"
    assert len(ours) == 115 and "p1ch2/horse_mask.jpg" not in ours
    # pinned to a commit of the book's repository: an upstream edit cannot change what the check expects
    pinned = r"https://raw\.githubusercontent\.com/deep-learning-with-pytorch/dlwpt-code-2e/[0-9a-f]{40}/data/"
    for e in ours.values():
        r = mirror[e.path]
        assert (e.size, e.sha256, e.url) == (int(r["size"]), r["sha256"], r["url"])
        assert re.match(pinned, e.url) and e.url.endswith("/data/" + quote(e.path))
    assert ours["p1ch2/horse.jpg"].sha256 == "478b2b255c74ad18547b6df158a08703d7c5961e89a5c46f2685f820122fff66"


def test_require_data_names_the_missing_file_and_the_fetch_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)winequality-white\.csv.*python -m dlwpt\.fetch p1ch4"):
        dlwpt.require_data("p1ch4/tabular-wine", data_dir=tmp_path)
    truncated = tmp_path / "p1ch4/tabular-wine/winequality-white.csv"
    truncated.parent.mkdir(parents=True)
    truncated.write_bytes(b"fixed acidity;")
    with pytest.raises(FileNotFoundError, match="missing or incomplete"):
        dlwpt.require_data("p1ch4/tabular-wine", data_dir=tmp_path)
    with pytest.raises(ValueError):
        dlwpt.require_data("p1ch99", data_dir=tmp_path)


@pytest.mark.parametrize("mirror, message", [("missing", "does not exist"), ("a-file", "is a file")])
def test_cli_refuses_a_mirror_that_is_no_folder(tmp_path, capsys, mirror, message):
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    with pytest.raises(SystemExit) as stop:
        F.main(["--mirror", str(tmp_path / mirror)])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_a_second_run_waits_for_the_first_and_says_so(setup):
    mirror, data, manifest = setup
    temporary = data / "p1ch9" / ".a.txt.abcd1234.part"  # the first run's file: not to be swept while it runs
    temporary.parent.mkdir(parents=True)
    out, codes = io.StringIO(), []
    second = threading.Thread(target=lambda: codes.append(F.fetch((), data, str(mirror), out, manifest, out)))
    with F.locked(data, io.StringIO()):  # the first run
        temporary.write_bytes(b"partial")
        second.start()
        wait_for(lambda: "waiting for it to finish" in out.getvalue(), "the second run waiting")
        assert leftovers(data) == [temporary.name]
    second.join(timeout=60)
    assert codes == [0] and "2 fetched, 0 already present" in out.getvalue() and (data / A).read_bytes() == FILES[A]


@pytest.mark.skipif(os.name != "posix", reason="sends POSIX signals")
@pytest.mark.parametrize("sig", ["SIGINT", "SIGKILL"])
def test_a_run_stopped_mid_transfer_keeps_no_partial_file(sig, tmp_path, serve):
    """Ctrl-C: the run removes its temporary and says so in one line. After SIGKILL, the next run removes it."""
    content, slow = b"b" * 900_000, [True]  # under 1 MiB: no progress bar on stderr
    server = serve(lambda r: send(r, content, step=4096, delay=0.05 if slow[0] else 0))
    manifest = write_manifest(tmp_path / "m.tsv", [row(A, content, server.url + "a")])
    cmd = [sys.executable, "-m", "dlwpt.fetch", "--manifest", str(manifest), "--data-dir", str(tmp_path / "data")]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: server.sent >= 40_000, "the transfer under way")
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=30)
    parts = [name for name in leftovers(tmp_path / "data") if name.endswith(".part")]
    assert not (tmp_path / "data" / A).exists() and len(parts) == (0 if sig == "SIGINT" else 1)
    if sig == "SIGINT":
        assert proc.returncode == 130 and len(err.strip().splitlines()) == 1 and "interrupted" in err, err
        return
    slow[0] = False
    again = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "1 fetched" in again.stdout, again.stdout + again.stderr
    assert leftovers(tmp_path / "data") == ["a.txt"] and (tmp_path / "data" / A).read_bytes() == content
