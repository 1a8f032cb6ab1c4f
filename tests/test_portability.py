"""What keeps the project working on Windows and macOS too, as far as it can be checked on Linux:
text files opened with an explicit encoding (Windows' default is not UTF-8), no POSIX-only paths,
no shell commands in notebooks. (ruff's PLW1514 would check `open()`, but only as a preview rule.)"""

import ast
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("p1ch*/*.ipynb"))
PYTHON = sorted({*ROOT.glob("dlwpt/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("tools/*.py"),
                 *ROOT.glob(".ci/*.py"), *ROOT.glob("data/*.py"), ROOT / "conftest.py"})
POSIX_ONLY = re.compile(r"^(/tmp|/dev/|/usr/|/etc/|/home/|~/)")
SHELL_LINE = re.compile(r"^\s*(!|%%?(bash|sh|script|system)\b)")


def code_cells(path):
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def python_of(source):
    """A cell's source parsed as IPython runs it (magics such as %matplotlib become plain calls)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return ast.parse(TransformerManager().transform_cell(source))


def calls(source):
    return [n for n in ast.walk(python_of(source)) if isinstance(n, ast.Call)]


def keywords(call):
    return {k.arg for k in call.keywords}


def open_mode(call):
    """The mode of an ``open(...)`` call, "r" unless given as a literal."""
    given = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return given.value if isinstance(given, ast.Constant) else "r"


@pytest.mark.parametrize("path", PYTHON, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_reads_and_writes_text_with_an_encoding(path):
    source = path.read_text(encoding="utf-8")
    for call in calls(source):
        func = call.func
        if isinstance(func, ast.Name) and func.id == "open" and "b" not in open_mode(call):
            assert "encoding" in keywords(call), f"{path.name}:{call.lineno}: {ast.unparse(call)[:80]}"
        if isinstance(func, ast.Attribute) and func.attr in ("read_text", "write_text"):
            assert "encoding" in keywords(call), f"{path.name}:{call.lineno}: {ast.unparse(call)[:80]}"
        if isinstance(func, ast.Attribute) and func.attr == "system" and ast.unparse(func.value) == "os":
            pytest.fail(f"{path.name}:{call.lineno}: os.system runs a POSIX shell")
        assert not any(k.arg == "shell" and getattr(k.value, "value", False) for k in call.keywords), (
            f"{path.name}:{call.lineno}: shell=True"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebooks_use_no_shell_and_no_posix_only_paths(path):
    for source in code_cells(path):
        assert not any(SHELL_LINE.match(line) for line in source.splitlines()), source[:200]
        for node in ast.walk(python_of(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not POSIX_ONLY.match(node.value), f"POSIX-only path {node.value!r} in {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_book_cells_opening_text_without_encoding_read_ascii_files(path):
    """The book's own `open(path)` lines are kept as printed: the files they read are pure ASCII, so
    any Windows code page reads them as UTF-8 would. Code that is not the book's names its encoding."""
    for source in code_cells(path):
        for call in calls(source):
            if not (isinstance(call.func, ast.Name) and call.func.id == "open") or "encoding" in keywords(call):
                continue
            if "b" in open_mode(call):
                continue
            assert source.startswith("# In["), f"{path.name}: a cell not from the book opens text without encoding"
            target = call.args[0]
            if isinstance(target, ast.Name):  # the book names the path in an earlier assignment
                target = next(a.value for a in ast.walk(python_of("\n".join(code_cells(path))))
                              if isinstance(a, ast.Assign) and ast.unparse(a.targets[0]) == target.id)
            assert isinstance(target, ast.Constant), ast.unparse(call)
            data = (path.parent / target.value).resolve()
            if not data.is_file():
                pytest.skip(f"{data} not fetched (python -m dlwpt.fetch)")
            assert data.read_bytes().isascii(), f"{data} is not ASCII: open it with encoding='utf-8'"
