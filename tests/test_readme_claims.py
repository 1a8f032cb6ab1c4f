"""What the chapter READMEs and the notebooks claim, checked against the notebooks' committed outputs and the data
manifest.

- A figure a README quotes (a number with two or more decimals) of a chapter with committed outputs is printed by
  one of that chapter's notebooks or by the book: a README can compare the two, never state a third value.
- Every `../data/...` path a notebook reads is guarded: an earlier cell (or the same one) calls `require_data`
  on it or a folder above it, which stops with the fetch command when the file is missing.
"""

import ast
import re
from pathlib import Path

import nbformat
import pytest

from dlwpt.fetch import load_manifest, under
from tests.harness import shared_file
from tests.test_notebook_conventions import NOTEBOOKS, WITH_OUTPUTS, ids

ROOT = Path(__file__).resolve().parents[1]
FIGURE = re.compile(r"(?<![\w.])-?\d+\.\d{2,}(?![\w.])")  # 5.4276, -17.9451; not versions like 2.14.1
DATA_PATH = re.compile(r"""['"]\.\./data/([^'"]+)['"]""")
# Figures a README works out in its own explanation (not printed anywhere), each with where it is explained.
WORKED_OUT = {"p1ch4": {"0.48985", "0.0013418"}}  # why wine cell 12 prints 1.34e-03: a column mean, float64


def committed_text(path):
    """Everything a notebook's committed outputs show, as text."""
    parts = []
    for cell in nbformat.read(path, as_version=4).cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {}).get("text/plain", "")
            parts.append(out.get("text", "") if out.output_type == "stream" else data)
    return "\n".join(parts)


@pytest.mark.parametrize("chapter", sorted(WITH_OUTPUTS))
def test_every_figure_a_readme_quotes_is_printed_by_a_notebook_or_the_book(chapter):
    book = shared_file("book/deep-learning-with-pytorch-2e-ch1-7.md").read_text(encoding="utf-8")
    printed = "\n".join(committed_text(p) for p in sorted((ROOT / chapter).glob("*.ipynb")))
    readme = (ROOT / chapter / "README.md").read_text(encoding="utf-8")
    nowhere = [x for x in FIGURE.findall(readme) if x not in printed and x.lstrip("-") not in book]
    nowhere = [x for x in nowhere if x not in WORKED_OUT.get(chapter, set())]
    assert not nowhere, f"{chapter}/README.md quotes figures no committed output and not the book prints: {nowhere}"


def string_arguments(call_source):
    """The string literals of a cell (require_data's argument, or a tuple its loop runs over)."""
    lines = ["pass" if line.lstrip().startswith(("%", "!")) else line for line in call_source.split("\n")]
    tree = ast.parse("\n".join(lines))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_every_data_file_a_notebook_reads_is_guarded_by_require_data(path):
    book_files = [e.path for e in load_manifest()]
    guarded, unguarded = set(), []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        if "require_data(" in cell.source:
            guarded |= {s for s in string_arguments(cell.source) if s.startswith("p1ch")}
        for relpath in DATA_PATH.findall(cell.source):
            relpath = relpath.rstrip("/")
            if any(under(f, relpath) for f in book_files) and not any(under(relpath, g) for g in guarded):
                unguarded.append(relpath)
    assert not unguarded, f"call require_data before reading {unguarded} (it names the fetch command)"


def test_the_guard_check_sees_a_read_without_require_data(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('img = Image.open("../data/p1ch2/bobby.jpg")')])
    nbformat.write(nb, tmp_path / "x.ipynb")
    with pytest.raises(AssertionError, match="bobby.jpg"):
        test_every_data_file_a_notebook_reads_is_guarded_by_require_data(tmp_path / "x.ipynb")
    nb.cells.insert(0, nbformat.v4.new_code_cell('require_data("p1ch2")'))
    nbformat.write(nb, tmp_path / "x.ipynb")
    test_every_data_file_a_notebook_reads_is_guarded_by_require_data(tmp_path / "x.ipynb")
