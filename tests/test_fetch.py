"""The data fetcher: verified copies from a mirror or URL, and clear failures that leave no bad file."""

import csv
import hashlib
import http.client
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

import dlwpt
from dlwpt import fetch as F

SHARED_MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data-mirror"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def write_manifest(path, rows):
    with open(path, "w", newline="") as f:
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
    mirror, data, manifest, _ = setup
    code = F.fetch(wanted, data, str(mirror), manifest=manifest)
    return code, capsys.readouterr().out


def leftovers(folder):
    return sorted(p.name for p in Path(folder).rglob("*") if p.is_file())


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
        (lambda b: b + b"extra", "wrong size"),  # too long
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
    out = capsys.readouterr().out
    assert code == 1
    assert out.count("cannot reach http://127.0.0.1:9/") == 2 and "use --mirror DIR" in out
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

        def read(self, n):
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
    assert code == 0  # optional: reported, does not fail the fetch
    assert "NOT AVAILABLE (optional) p1ch2/w.pth: download from" in out and "git blob id mismatch" in out
    assert leftovers(tmp_path / "data2") == []


def test_progress_bar_for_large_files(tmp_path, capsys):
    content = b"x" * (F.PROGRESS_MIN_BYTES + 1)
    (tmp_path / "m/p1ch9").mkdir(parents=True)
    (tmp_path / "m/p1ch9/big.bin").write_bytes(content)
    manifest = write_manifest(tmp_path / "m.tsv", [["p1ch9/big.bin", len(content), sha256(content), "u", ""]])
    assert F.fetch((), tmp_path / "data", str(tmp_path / "m"), manifest=manifest) == 0
    assert "p1ch9/big.bin" in capsys.readouterr().err  # tqdm's bar, labelled with the file


def test_manifest_copies_the_mirror_facts():
    ours = {e.path: e for e in F.load_manifest()}
    with open(SHARED_MIRROR / "MANIFEST.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 116
    for r in rows:
        e = ours[r["path"]]
        assert (e.size, e.sha256, e.url) == (int(r["size"]), r["sha256"], r["url"])
        # pinned to a commit of the book's repository: an upstream edit cannot change what the check expects
        assert re.match(r"https://raw\.githubusercontent\.com/deep-learning-with-pytorch/dlwpt-code-2e/[0-9a-f]{40}/data/", e.url)
        assert e.url.endswith("/data/" + quote(e.path))
    assert ours["p1ch2/horse.jpg"].sha256 == "478b2b255c74ad18547b6df158a08703d7c5961e89a5c46f2685f820122fff66"
    h2z = ours["p1ch2/horse2zebra_0.4.0.pth"]
    assert h2z.git_blob == "ce10268a67fba8227bd42a071e17eef1b358fa2b" and h2z.optional
    assert len(ours) == 117


def test_cli_with_shared_mirror_verifies_real_data(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dlwpt.fetch", "p1ch4/tabular-wine", "p1ch2", "--data-dir", str(tmp_path)],
        env={"DLWPT_DATA_MIRROR": str(SHARED_MIRROR), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 fetched, 0 already present, 0 failed, 1 optional not available" in proc.stdout
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


def test_require_data_passes_on_fetched_data():
    assert dlwpt.require_data("p1ch4/tabular-wine") == dlwpt.DATA_DIR / "p1ch4/tabular-wine"
