"""`python -m dlwpt.publish OWNER/NAME [--branch BRANCH]`, run on a copy of this repository."""

import builtins
import errno
import re
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


def small_copy(root):  # enough for publish
    for folder in ["dlwpt", "p1ch3", "p1ch5"]:
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_*"))
    return tree(root)


GH = "https://github.com/"
SWAPPED = [  # (old, new): the exact strings that change (the same in the notebooks' JSON strings)
    (f"google.com/github/{OLD}/blob/{OLD_BRANCH}/", f"google.com/github/{NEW}/blob/{NEW_BRANCH}/"),
    (f"welcome?src={GH}{OLD}/blob/{OLD_BRANCH}/", f"welcome?src={GH}{NEW}/blob/{NEW_BRANCH}/"),
    (f"-b {OLD_BRANCH} {GH}{OLD} ", f"-b {NEW_BRANCH} {GH}{NEW} "),  # the setup cell's git clone
    (f'REPO_URL = "{GH}{OLD}"', f'REPO_URL = "{GH}{NEW}"'),
    (f'REPO_BRANCH = "{OLD_BRANCH}"', f'REPO_BRANCH = "{NEW_BRANCH}"'),
    (f"{GH}{OLD}/issues", f"{GH}{NEW}/issues"),  # the README's
]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])  # CRLF: a Windows checkout with core.autocrlf=true
def test_publish_rewrites_constant_badges_and_setup_cells_and_nothing_else(tmp_path, newline):
    skip = shutil.ignore_patterns(".git", ".venv*", "*_cache", "__pycache__", "data", "data-unversioned", "outputs")
    shutil.copytree(ROOT, tmp_path, ignore=skip, dirs_exist_ok=True)  # publish never reads what is left out
    for path in [tmp_path / "dlwpt/__init__.py", tmp_path / "README.md", *tmp_path.glob("p1ch*/*.ipynb")]:
        path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", newline.encode()))
    before = tree(tmp_path)
    assert "nothing to change" in publish(tmp_path, OLD, "--branch", OLD_BRANCH).stdout and tree(tmp_path) == before
    proc = publish(tmp_path, NEW, "--branch", NEW_BRANCH)
    assert proc.returncode == 0 and f"Now pointing at {GH}{NEW} (branch {NEW_BRANCH})" in proc.stdout
    after = tree(tmp_path)
    changed = sorted(rel for rel in before if after[rel] != before[rel])
    notebooks = [rel for rel in before if re.fullmatch(r"p1ch\d/\w+\.ipynb", rel)]
    assert changed == sorted(["README.md", "dlwpt/__init__.py", *notebooks])
    for rel in changed:  # byte for byte, line endings too: putting the old location back gives the original file
        text = after[rel].decode()
        for old, new in SWAPPED:
            text = text.replace(new, old)
        assert text == before[rel].decode() and (rel.endswith(".py") or OLD not in after[rel].decode()), rel
    # publishing again is a no-op; publishing back restores every byte
    assert "nothing to change" in publish(tmp_path, NEW, "--branch", NEW_BRANCH).stdout
    assert publish(tmp_path, OLD, "--branch", OLD_BRANCH).returncode == 0 and tree(tmp_path) == before


@pytest.mark.parametrize(
    "args, reason",
    [*[([name], "not a GitHub OWNER/NAME") for name in ["alice", "alice/dl notes", "alice-/x", "alice/.."]],
     *[(["alice/x", "--branch", b], "not a branch name") for b in ["../main", "a;b c"]],  # the setup cell's shell
     ([NEW], "2_autograd.ipynb: expected")],  # a notebook not as expected
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
