"""`python -m dlwpt.publish OWNER/NAME [--branch BRANCH]`, run on a copy of this repository."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import dlwpt

ROOT = Path(__file__).resolve().parents[1]
OLD = dlwpt.REPO_URL.removeprefix("https://github.com/")
NEW, NEW_BRANCH = "alice/dl-notes.v2", "fork/dev"


def repository_files():
    """The files of this checkout that git tracks or would track (not .venv, data/, caches)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the repository's files")
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(p for p in out.split("\0") if p and (ROOT / p).is_file())


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    dest = tmp_path_factory.mktemp("repo")
    files = repository_files()
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, dest / rel)
    return dest, {rel: (dest / rel).read_bytes() for rel in files}


def publish(where, *args):
    return subprocess.run([sys.executable, "-m", "dlwpt.publish", *args], cwd=where, capture_output=True, text=True)


def tree(root, files):
    return {rel: (root / rel).read_bytes() for rel in files}


def jsonish(text):
    return json.dumps(text)[1:-1]


def swapped(old, old_branch, new, new_branch):
    """The exact strings that change, as they appear in the files (notebooks hold them as JSON strings)."""
    gh = "https://github.com/"
    pairs = [
        (f"google.com/github/{old}/blob/{old_branch}/", f"google.com/github/{new}/blob/{new_branch}/"),
        (f"welcome?src={gh}{old}/blob/{old_branch}/", f"welcome?src={gh}{new}/blob/{new_branch}/"),
        (jsonish(f'"--branch", "{old_branch}", "{gh}{old}"'), jsonish(f'"--branch", "{new_branch}", "{gh}{new}"')),
        (f'REPO_URL = "{gh}{old}"', f'REPO_URL = "{gh}{new}"'),
        (f'REPO_BRANCH = "{old_branch}"', f'REPO_BRANCH = "{new_branch}"'),
    ]
    return [(a.encode(), b.encode()) for a, b in pairs]


def test_publish_rewrites_constant_badges_and_setup_cells_and_nothing_else(copy):
    root, before = copy
    proc = publish(root, NEW, "--branch", NEW_BRANCH)
    assert proc.returncode == 0, proc.stderr
    assert "Now pointing at https://github.com/alice/dl-notes.v2 (branch fork/dev)" in proc.stdout
    after = tree(root, before)
    notebooks = sorted(rel for rel in before if rel.startswith("p1ch") and rel.endswith(".ipynb"))
    changed = sorted(rel for rel in before if after[rel] != before[rel])
    assert changed == sorted(["dlwpt/__init__.py", *notebooks])

    # byte for byte: putting the old location back gives the original file
    for rel in changed:
        text = after[rel]
        for old, new in swapped(OLD, dlwpt.REPO_BRANCH, NEW, NEW_BRANCH):
            text = text.replace(new, old)
        assert text == before[rel], rel

    # every notebook points at the new place
    for rel in notebooks:
        nb = nbformat.reads(after[rel].decode(), as_version=4)
        github = f"https://github.com/{NEW}/blob/{NEW_BRANCH}/{rel}"
        assert f"(https://colab.research.google.com/github/{NEW}/blob/{NEW_BRANCH}/{rel})" in nb.cells[0].source
        assert f"(https://kaggle.com/kernels/welcome?src={github})" in nb.cells[0].source
        assert f'"--branch", "{NEW_BRANCH}", "https://github.com/{NEW}", repo' in nb.cells[1].source
        assert OLD not in nb.cells[0].source + nb.cells[1].source
    check = subprocess.run(
        [sys.executable, "-c", "import dlwpt; print(dlwpt.REPO_URL, dlwpt.REPO_BRANCH)"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert check.stdout.split() == [f"https://github.com/{NEW}", NEW_BRANCH]

    # the convention tests, run in the copy, agree with the new constant
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_notebook_conventions.py",
         "-k", "badges or clones_installs"],
        cwd=root, capture_output=True, text=True,
    )
    assert proc.returncode == 0 and " passed" in proc.stdout, proc.stdout[-3000:]

    # publishing again is a no-op; publishing back restores every byte
    assert "nothing to change" in publish(root, NEW, "--branch", NEW_BRANCH).stdout
    assert tree(root, before) == after
    proc = publish(root, OLD, "--branch", dlwpt.REPO_BRANCH)
    assert proc.returncode == 0, proc.stderr
    assert tree(root, before) == before


@pytest.mark.parametrize(
    "args, reason",
    [
        (["alice"], "not a GitHub OWNER/NAME"),
        (["alice/dl notes"], "not a GitHub OWNER/NAME"),
        (["alice-/x"], "not a GitHub OWNER/NAME"),
        (["alice/.."], "not a GitHub OWNER/NAME"),
        (["alice/x", "--branch", "../main"], "not a branch name"),
        (["alice/x", "--branch", "a b"], "not a branch name"),
    ],
)
def test_publish_refuses_bad_locations_and_changes_nothing(args, reason, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "dlwpt", root / "dlwpt", ignore=shutil.ignore_patterns("__pycache__"))
    before = (root / "dlwpt/__init__.py").read_bytes()
    proc = publish(root, *args)
    assert proc.returncode != 0 and reason in proc.stderr, proc.stderr
    assert (root / "dlwpt/__init__.py").read_bytes() == before


def test_publish_writes_nothing_when_a_notebook_is_not_as_expected(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "dlwpt", root / "dlwpt", ignore=shutil.ignore_patterns("__pycache__"))
    for chapter in ["p1ch3", "p1ch5"]:
        shutil.copytree(ROOT / chapter, root / chapter)
    broken = root / "p1ch5/2_autograd.ipynb"
    text = broken.read_text(encoding="utf-8").replace("kaggle.svg)](https://kaggle.com", "kaggle.svg)](https://x")
    broken.write_text(text, encoding="utf-8")
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    before = tree(root, files)
    proc = publish(root, NEW)
    assert proc.returncode == 2 and "2_autograd.ipynb" in proc.stderr and "nothing was changed" in proc.stderr
    assert tree(root, files) == before


def small_copy(root):
    """dlwpt/ and two chapters' notebooks: enough for ``publish``."""
    shutil.copytree(ROOT / "dlwpt", root / "dlwpt", ignore=shutil.ignore_patterns("__pycache__"))
    for chapter in ["p1ch3", "p1ch5"]:
        shutil.copytree(ROOT / chapter, root / chapter, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_full_disk_mid_write_leaves_every_file_as_it_was(tmp_path, monkeypatch):
    import builtins
    import errno

    from dlwpt import publish as P

    root = tmp_path / "repo"
    files = small_copy(root)
    before = tree(root, files)
    writes = []

    class FullAfterTwo:
        def __init__(self, real):
            self.real = real

        def write(self, data):
            writes.append(1)
            if len(writes) >= 3:
                self.real.write(data[:10])
                raise OSError(errno.ENOSPC, "No space left on device", self.real.name)
            return self.real.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.real.close()
            return False

    def fake_open(file, mode="r", *args, **kwargs):
        real = builtins.open(file, mode, *args, **kwargs)
        return FullAfterTwo(real) if "w" in mode or "x" in mode else real

    monkeypatch.setattr(P, "open", fake_open, raising=False)
    with pytest.raises(P.PublishError, match="No space left on device.*nothing was changed"):
        P.publish(NEW, NEW_BRANCH, root=root)
    assert len(writes) == 3
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == files  # no temporaries
    assert tree(root, files) == before
    monkeypatch.undo()
    written = P.publish(NEW, NEW_BRANCH, root=root)  # the disk has room again: the same command completes
    assert "dlwpt/__init__.py" in written and len(written) == 1 + sum(f.endswith(".ipynb") for f in files)


def test_publish_keeps_crlf_line_endings(tmp_path):
    """A Windows checkout with core.autocrlf=true: CRLF files stay CRLF, byte-identical when nothing changes."""
    root = tmp_path / "repo"
    files = small_copy(root)
    touched = [rel for rel in files if rel.endswith(".ipynb") or rel == "dlwpt/__init__.py"]
    for rel in touched:
        path = root / rel
        path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    crlf = tree(root, files)
    proc = publish(root, OLD, "--branch", dlwpt.REPO_BRANCH)  # already there
    assert proc.returncode == 0 and "nothing to change" in proc.stdout, proc.stderr
    assert tree(root, files) == crlf
    proc = publish(root, NEW, "--branch", NEW_BRANCH)
    assert proc.returncode == 0, proc.stderr
    for rel in touched:
        data = (root / rel).read_bytes()
        assert data.count(b"\n") == data.count(b"\r\n") > 0, rel  # no bare LF
    assert f'REPO_URL = "https://github.com/{NEW}"\r\n'.encode() in (root / "dlwpt/__init__.py").read_bytes()
    proc = publish(root, OLD, "--branch", dlwpt.REPO_BRANCH)
    assert proc.returncode == 0, proc.stderr
    assert tree(root, files) == crlf
