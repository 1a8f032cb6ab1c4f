"""What keeps the project working on Windows and macOS too, as far as it can be checked on Linux:
text files opened with an explicit encoding (Windows' default is not UTF-8), no POSIX-only paths,
no shell commands in notebooks. (ruff's PLW1514 would check `open()`, but only as a preview rule.)"""

import ast
import re
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("p1ch*/*.ipynb"))
PYTHON = sorted({*ROOT.glob("dlwpt/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("tools/*.py"),
                 *ROOT.glob(".ci/*.py"), *ROOT.glob("data/*.py"), ROOT / "conftest.py"})
POSIX_ONLY = re.compile(r"^(/tmp|/dev/|/usr/|/etc/|/home/|~/)")
SHELL_LINE = re.compile(r"^\s*(!|%%?(bash|sh|script|system)\b)")


def python_of(source):
    """A cell's source parsed as IPython runs it (magics such as %matplotlib become plain calls)."""
    return ast.parse(TransformerManager().transform_cell(source))


def text_opens(tree):
    """The calls in ``tree`` that open a file as text (``open`` unless its literal mode has "b", ``read_text``,
    ``write_text``) and do not name an encoding."""
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call) or any(k.arg == "encoding" for k in call.keywords):
            continue
        if isinstance(call.func, ast.Attribute) and call.func.attr in ("read_text", "write_text"):
            yield call
        if isinstance(call.func, ast.Name) and call.func.id == "open":
            mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), 0)
            if not (isinstance(mode, ast.Constant) and "b" in mode.value):
                yield call


@pytest.mark.parametrize("path", PYTHON, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_reads_and_writes_text_with_an_encoding_and_no_shell(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert not [f"{path.name}:{call.lineno}: {ast.unparse(call)[:80]}" for call in text_opens(tree)], "no encoding"
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        assert ast.unparse(call.func) != "os.system", f"{path.name}:{call.lineno}: os.system runs a POSIX shell"
        assert not any(k.arg == "shell" and getattr(k.value, "value", False) for k in call.keywords), (
            f"{path.name}:{call.lineno}: shell=True"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_notebooks_use_no_shell_no_posix_path_and_open_only_ascii_text_without_encoding(path):
    """The book's own `open(path)` lines are kept as printed: the files they read are pure ASCII, so
    any Windows code page reads them as UTF-8 would. Code that is not the book's names its encoding."""
    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    for source in cells:
        assert not any(SHELL_LINE.match(line) for line in source.splitlines()), source[:200]
        tree = python_of(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not POSIX_ONLY.match(node.value), f"POSIX-only path {node.value!r} in {path.name}"
        for call in text_opens(tree):
            assert source.startswith("# In["), f"{path.name}: a cell not from the book opens text without encoding"
            target = call.args[0] if call.args else None
            if isinstance(target, ast.Name):  # the book names the path in an earlier assignment
                target = next(a.value for a in ast.walk(python_of("\n".join(cells)))
                              if isinstance(a, ast.Assign) and ast.unparse(a.targets[0]) == target.id)
            assert isinstance(target, ast.Constant), ast.unparse(call)
            data = (path.parent / target.value).resolve()
            if not data.is_file():
                pytest.skip(f"{data} not fetched (python -m dlwpt.fetch)")
            assert data.read_bytes().isascii(), f"{data} is not ASCII: open it with encoding='utf-8'"
