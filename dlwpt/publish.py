"""Point the notebooks at a new GitHub location, for whoever publishes or forks this repository.

    python -m dlwpt.publish OWNER/NAME [--branch BRANCH]

rewrites, in place, exactly these and nothing else:

- ``REPO_URL`` and ``REPO_BRANCH`` in ``dlwpt/__init__.py``;
- the Open in Colab and Open in Kaggle badges in the first cell of every notebook ``p1ch*/*.ipynb``;
- the ``git clone`` line of every notebook's setup cell;
- the README's Colab and Kaggle link of every notebook and its link to the issues.

It checks every file first and writes nothing if one of them is not as expected. It works on the text of
the files, so every other byte (line endings included) stays as it is. Each file is written to a temporary
name first and renamed into place only when all of them are written, then read back: a failure (a full disk)
leaves every file as it was. Check with ``git diff`` and commit. Other files that still
name the old location are listed, not changed.
"""

import argparse
import contextlib
import json
import os
import re
import secrets
import sys
from pathlib import Path

from . import REPO_BRANCH, REPO_URL
from .data import REPO_ROOT

GITHUB = "https://github.com/"
OWNER_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?/[A-Za-z0-9._-]+")
BRANCH = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*")
TEXT_SUFFIXES = {".md", ".py", ".toml", ".yml", ".yaml", ".cfg", ".txt", ".ipynb"}


REWRITTEN = {"dlwpt/__init__.py", "README.md"}  # besides the notebooks


class PublishError(Exception):
    pass


def check_location(owner_name, branch):
    name = owner_name.split("/")[-1]
    if not OWNER_NAME.fullmatch(owner_name) or name in {".", ".."}:
        raise PublishError(f"not a GitHub OWNER/NAME: {owner_name!r} (e.g. alice/dlwpt-notebooks)")
    if not BRANCH.fullmatch(branch) or ".." in branch or branch.endswith(".lock"):
        raise PublishError(f"not a branch name: {branch!r}")


def notebook_replacements(old, old_branch, new, new_branch):
    """(old text, new text) pairs as they appear in a notebook file (JSON strings), each expected once."""
    pairs = [
        (f"colab.research.google.com/github/{old}/blob/{old_branch}/",
         f"colab.research.google.com/github/{new}/blob/{new_branch}/"),
        (f"kaggle.com/kernels/welcome?src={GITHUB}{old}/blob/{old_branch}/",
         f"kaggle.com/kernels/welcome?src={GITHUB}{new}/blob/{new_branch}/"),
        (f"git clone -q --depth 1 -b {old_branch} {GITHUB}{old} ",
         f"git clone -q --depth 1 -b {new_branch} {GITHUB}{new} "),
    ]
    return [(json.dumps(a)[1:-1], json.dumps(b)[1:-1]) for a, b in pairs]


def module_replacements(old, old_branch, new, new_branch):
    return [
        (f'\nREPO_URL = "{GITHUB}{old}"\n', f'\nREPO_URL = "{GITHUB}{new}"\n'),
        (f'\nREPO_BRANCH = "{old_branch}"\n', f'\nREPO_BRANCH = "{new_branch}"\n'),
    ]


def rewrite(text, pairs, where):
    for old, new in pairs:
        if text.count(old) != 1:
            raise PublishError(f"{where}: expected {old!r} once, found it {text.count(old)} times; nothing was changed")
        text = text.replace(old, new)
    return text


def read_text(path):
    """The text of ``path`` exactly as stored (no newline translation) and its line ending."""
    text = path.read_bytes().decode("utf-8")
    return text, "\r\n" if "\r\n" in text else "\n"


def write_all(new_texts):
    """Write every file to a temporary name, then rename them all into place, then read them back.

    A failure before the renames leaves every file as it was; ``PublishError`` names the cause.
    """
    temporaries = {}
    try:
        for path, text in new_texts.items():
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.publish")
            temporaries[path] = tmp
            with open(tmp, "xb") as f:
                f.write(text.encode("utf-8"))
            os.chmod(tmp, path.stat().st_mode & 0o7777)
    except OSError as err:
        for tmp in temporaries.values():
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise PublishError(f"cannot write {err.filename or path}: {err.strerror or err}; nothing was changed") from None
    for path, tmp in temporaries.items():  # renames need no space
        os.replace(tmp, path)
    wrong = [str(path) for path, text in new_texts.items() if path.read_bytes() != text.encode("utf-8")]
    if wrong:
        raise PublishError(f"files not as written (check the disk, then run again): {', '.join(wrong)}")


def publish(owner_name, branch="main", root=REPO_ROOT):
    """Rewrite the files under ``root``; return the paths written (relative to ``root``).

    With the location already in place, checks that every file names it and writes nothing.
    """
    check_location(owner_name, branch)
    old = REPO_URL.removeprefix(GITHUB)
    root = Path(root)
    module = root / "dlwpt" / "__init__.py"
    notebooks = sorted(root.glob("p1ch*/*.ipynb"))
    if not notebooks:
        raise PublishError(f"no notebooks p1ch*/*.ipynb under {root}")
    text, newline = read_text(module)
    pairs = [(a.replace("\n", newline), b.replace("\n", newline))
             for a, b in module_replacements(old, REPO_BRANCH, owner_name, branch)]
    new_texts = {module: (text, rewrite(text, pairs, module))}
    links = notebook_replacements(old, REPO_BRANCH, owner_name, branch)[:2]  # the badges' Colab and Kaggle links
    for path in notebooks:
        text = read_text(path)[0]
        new_texts[path] = (text, rewrite(text, notebook_replacements(old, REPO_BRANCH, owner_name, branch), path))
    readme = root / "README.md"
    if readme.is_file():  # its table links every notebook, each once
        keys = [path.relative_to(root).as_posix() for path in notebooks]
        pairs = [(a + key, b + key) for a, b in links for key in keys]
        text = read_text(readme)[0]
        issues = [(f"{GITHUB}{old}/issues", f"{GITHUB}{owner_name}/issues")]
        new_texts[readme] = (text, rewrite(text, pairs + issues, readme))
    changed = {path: new for path, (text, new) in new_texts.items() if new != text}
    write_all(changed)  # all checked: now write
    return [path.relative_to(root).as_posix() for path in changed]


def other_mentions(old_url, root=REPO_ROOT):
    """Files (not rewritten) that still name ``old_url``, with line numbers."""
    found = []
    for path in sorted(Path(root).rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0].startswith(".") and rel.parts[0] != ".github" or rel.parts[0] in {"data", "outputs"}:
            continue
        if path.suffix not in TEXT_SUFFIXES or not path.is_file():
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if old_url + "/" in line + "/" and not (path.suffix == ".ipynb" or rel.as_posix() in REWRITTEN):
                found.append(f"{rel.as_posix()}:{n}")
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m dlwpt.publish",
        description="Point REPO_URL, the notebooks' badges and setup cells and the README's links at a new location.",
    )
    parser.add_argument("owner_name", metavar="OWNER/NAME", help="the GitHub repository, e.g. alice/dlwpt-notebooks")
    parser.add_argument("--branch", default="main", help="the branch the badges open and the setup cell clones")
    args = parser.parse_args(argv)
    try:
        written = publish(args.owner_name, args.branch)
    except PublishError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    target = f"{GITHUB}{args.owner_name} (branch {args.branch})"
    if not written:
        print(f"Already pointing at {target}: nothing to change.")
        return 0
    others = [rel for rel in written if not rel.endswith(".ipynb")]
    print(f"Now pointing at {target}: rewrote {', '.join(others)} and {len(written) - len(others)} notebooks.")
    mentions = other_mentions(REPO_URL)
    if mentions:
        print(f"Still naming {REPO_URL} (not changed, check by hand): " + ", ".join(mentions))
    print("Check with `git diff`, then commit.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
