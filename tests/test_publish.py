"""`python -m dlwpt.publish OWNER/NAME [--branch BRANCH]`, run on a copy of this repository."""

import builtins
import errno
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dlwpt
from dlwpt import publish as P

ROOT = Path(__file__).resolve().parents[1]
OLD, OLD_BRANCH = dlwpt.REPO_URL.removeprefix("https://github.com/"), dlwpt.REPO_BRANCH
NEW, NEW_BRANCH = "alice/dl-notes.v2", "fork/dev"


def publish(where, *args):
    return subprocess.run([sys.executable, "-m", "dlwpt.publish", *args], cwd=where, capture_output=True, text=True)


def tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def small_copy(root, chapters=("p1ch3", "p1ch5")):
    """dlwpt/ and some chapters' notebooks: enough for ``publish``."""
    for folder in ["dlwpt", *chapters]:
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_*"))
    return tree(root)


def repository_copy(root):
    """This checkout but for its git folder, environments, caches and downloads (publish never reads them)."""
    skip = shutil.ignore_patterns(".git", ".venv*", "*_cache", "__pycache__", "data", "data-unversioned", "outputs")
    shutil.copytree(ROOT, root, ignore=skip, dirs_exist_ok=True)
    return tree(root)


def swapped(old, old_branch, new, new_branch):
    gh = "https://github.com/"
    return [
        (f"google.com/github/{old}/blob/{old_branch}/", f"google.com/github/{new}/blob/{new_branch}/"),
        (f"welcome?src={gh}{old}/blob/{old_branch}/", f"welcome?src={gh}{new}/blob/{new_branch}/"),
        (f"-b {old_branch} {gh}{old} ", f"-b {new_branch} {gh}{new} "),  # the setup cell's git clone
        (f'REPO_URL = "{gh}{old}"', f'REPO_URL = "{gh}{new}"'),
        (f'REPO_BRANCH = "{old_branch}"', f'REPO_BRANCH = "{new_branch}"'),
    ]


def test_publish_rewrites_constant_badges_and_setup_cells_and_nothing_else(tmp_path):
    before = repository_copy(tmp_path)
    proc = publish(tmp_path, NEW, "--branch", NEW_BRANCH)
    assert proc.returncode == 0 and f"Now pointing at https://github.com/{NEW} (branch {NEW_BRANCH})" in proc.stdout
    after = tree(tmp_path)
    changed = sorted(rel for rel in before if after[rel] != before[rel])
    notebooks = [rel for rel in before if rel.startswith("p1ch") and rel.endswith(".ipynb")]
    assert changed == sorted(["dlwpt/__init__.py", *notebooks])
    for rel in changed:  # byte for byte: putting the old location back gives the original file
        text = after[rel].decode()
        for old, new in swapped(OLD, OLD_BRANCH, NEW, NEW_BRANCH):
            text = text.replace(new, old)
        assert text == before[rel].decode() and (rel.endswith(".py") or OLD not in after[rel].decode()), rel
    check = [sys.executable, "-c", "import dlwpt; print(dlwpt.REPO_URL, dlwpt.REPO_BRANCH)"]
    assert subprocess.run(check, cwd=tmp_path, capture_output=True, text=True).stdout.split() == [
        f"https://github.com/{NEW}", NEW_BRANCH]
    # publishing again is a no-op; publishing back restores every byte
    assert "nothing to change" in publish(tmp_path, NEW, "--branch", NEW_BRANCH).stdout
    assert publish(tmp_path, OLD, "--branch", OLD_BRANCH).returncode == 0
    assert {rel: data for rel, data in tree(tmp_path).items() if rel in before} == before


@pytest.mark.parametrize(
    "args, reason",
    [
        (["alice"], "not a GitHub OWNER/NAME"),
        (["alice/dl notes"], "not a GitHub OWNER/NAME"),
        (["alice-/x"], "not a GitHub OWNER/NAME"),
        (["alice/.."], "not a GitHub OWNER/NAME"),
        (["alice/x", "--branch", "../main"], "not a branch name"),
        (["alice/x", "--branch", "a;b c"], "not a branch name"),  # the setup cell hands it to a shell
        ([NEW], "2_autograd.ipynb: expected"),  # a notebook not as expected
    ],
)
def test_publish_refuses_bad_input_and_changes_nothing(args, reason, tmp_path):
    small_copy(tmp_path)
    broken = tmp_path / "p1ch5/2_autograd.ipynb"
    broken.write_bytes(broken.read_bytes().replace(b"kaggle.svg)](https://kaggle.com", b"kaggle.svg)](https://x"))
    before = tree(tmp_path)
    proc = publish(tmp_path, *args)
    assert proc.returncode == 2 and reason in proc.stderr and tree(tmp_path) == before, proc.stderr


def test_full_disk_mid_write_leaves_every_file_as_it_was(tmp_path, monkeypatch):
    before, opened = small_copy(tmp_path), []

    def open_on_a_full_disk(file, mode="r", *args, **kwargs):  # the third new file gets 10 bytes, then no more
        if "x" in mode and len(opened) == 2:
            with builtins.open(file, mode) as partial:
                partial.write(b"0123456789")
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        opened.extend([file] if "x" in mode else [])
        return builtins.open(file, mode, *args, **kwargs)

    monkeypatch.setattr(P, "open", open_on_a_full_disk, raising=False)
    with pytest.raises(P.PublishError, match="No space left on device.*nothing was changed"):
        P.publish(NEW, NEW_BRANCH, root=tmp_path)
    assert len(opened) == 2 and tree(tmp_path) == before  # no temporaries left either
    monkeypatch.undo()
    written = P.publish(NEW, NEW_BRANCH, root=tmp_path)  # the disk has room again: the same command completes
    assert "dlwpt/__init__.py" in written and len(written) == 1 + sum(rel.endswith(".ipynb") for rel in before)


def test_publish_keeps_crlf_line_endings(tmp_path):
    """A Windows checkout with core.autocrlf=true: CRLF files stay CRLF, byte-identical when nothing changes."""
    for rel in small_copy(tmp_path):
        if rel.endswith(".ipynb") or rel == "dlwpt/__init__.py":
            path = tmp_path / rel
            path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    crlf = tree(tmp_path)
    assert "nothing to change" in publish(tmp_path, OLD, "--branch", OLD_BRANCH).stdout and tree(tmp_path) == crlf
    assert publish(tmp_path, NEW, "--branch", NEW_BRANCH).returncode == 0
    assert f'REPO_URL = "https://github.com/{NEW}"\r\n'.encode() in (tmp_path / "dlwpt/__init__.py").read_bytes()
    assert publish(tmp_path, OLD, "--branch", OLD_BRANCH).returncode == 0 and tree(tmp_path) == crlf  # every CR too
