"""Book cells are the book's listings, character for character, up to the changes the notebook explains.

A cell whose first line is `# In[N]` is compared with a listing `# In[N]` of the book's part on its notebook
(from where the text names `code/p1chC/NAME.ipynb` to where it names another): the most alike, among equals the
next in the book's order. Before comparing, the page is undone: trailing spaces and callout numbers (`#1`), lines
cut or wrapped at the right edge (`EDGE`), indentation the page lost (a book line at column 0 whose code the
notebook indents) and blank lines it added. Every other difference is a change, and each change (a run of
differing lines) must be explained in the cell itself (CONTRIBUTING.md, rule 3): by a comment on or among its
lines, or by a note on the cell's first line (`# In[N]: note`). An added last line that only displays a value
(`batch_t.shape`) needs none. A cell the book does not print there says so in its note.
"""

import ast
import difflib
import io
import re
import tokenize
from pathlib import Path

import nbformat
import pytest

from tests.harness import shared_file

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("p1ch*/*.ipynb"))
EDGE = 60  # the book cuts or wraps code lines at 65 characters, some a few sooner (at a word)
BOOK_IN = re.compile(r"# In\[(\d+)\]:?$")
CELL_IN = re.compile(r"# In\[(\d+)\](?:: (.+))?$")


def book_listings(text):
    """{"p1ch7/2_birds_airplanes": [(N, lines), ...]} in the book's order: a listing belongs to the notebook the
    text named last (`code/p1ch7/2_birds_airplanes.ipynb`); the page's trailing spaces and callouts removed."""
    found, notebook, follow = {}, None, None
    for k, part in enumerate(re.split(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)):
        if k % 2 == 0:  # prose between code blocks
            for chapter, name in re.findall(r"^# (\d+) |code/(p1ch\d/ ?[\w\\]+)\.ipynb", part, flags=re.M):
                notebook = f"chapter {chapter}" if chapter else name.replace("\\", "").replace(" ", "")
            follow = None if part.strip() else follow  # a listing split over two adjacent blocks goes on
            continue
        listing = follow
        for line in part.split("\n"):
            line = re.sub(r"\s+#\d+$", "", line.rstrip())
            if m := BOOK_IN.match(line):
                listing = (int(m.group(1)), [])
                found.setdefault(notebook, []).append(listing)
            elif line.startswith("# Out["):
                listing = None
            elif listing is not None:
                listing[1].append(line)
        follow = listing
    return {nb: [(n, "\n".join(lines).strip("\n").split("\n")) for n, lines in cells] for nb, cells in found.items()}


def undo_page(book, cell):
    """The book's lines with what the page did undone, judged against the notebook cell's lines."""
    out, i = [], 0
    while i < len(book):
        line = book[i]
        while (
            line not in cell
            and i + 1 < len(book)
            and book[i + 1]
            and any(c.startswith(line + book[i + 1].lstrip()) for c in cell)
        ):
            i += 1  # wrapped at the edge: the next line continues this one
            line += book[i].lstrip()
        if line not in cell:
            line = next((c for c in cell if len(line) >= EDGE and c.startswith(line)), line)  # cut at the edge
            line = next((c for c in cell if line and line == line.lstrip() and c.strip() == line), line)  # lost indent
        out.append(line)
        i += 1
    return out


def comments(lines):
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline))
    except (tokenize.TokenError, SyntaxError):
        return {line.split("#", 1)[1] for line in lines if "#" in line}
    return {t.string for t in tokens if t.type == tokenize.COMMENT}


def displays_a_value(line):
    try:
        return isinstance(ast.parse(line).body[0], ast.Expr)
    except (SyntaxError, IndexError):
        return False


def unexplained_changes(book, cell_lines, note):
    """The differing runs of lines that the cell does not explain, as diff text."""
    book = undo_page(book, cell_lines)
    unexplained = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, book, cell_lines, autojunk=False).get_opcodes():
        ours, theirs = cell_lines[j1:j2], book[i1:i2]
        if tag == "equal" or note or comments(ours) - comments(theirs) or (tag == "delete" and not any(theirs)):
            continue  # the same; explained; or blank lines the page added
        if tag == "insert" and j2 == len(cell_lines) and len(ours) == 1 and displays_a_value(ours[0]):
            continue
        unexplained.append("\n".join([f"- {line}" for line in theirs] + [f"+ {line}" for line in ours]))
    return unexplained


def problems(path, listings):
    """What the notebook's book cells change from the book's ``listings`` of it without explaining it."""
    found, position = [], 0
    for cell in nbformat.read(path, as_version=4).cells:
        head, _, body = cell.source.partition("\n")
        if cell.cell_type != "code" or not (m := CELL_IN.match(head)):
            continue
        n, note, lines = int(m.group(1)), m.group(2), body.split("\n")
        same = [(k, book) for k, (listed, book) in enumerate(listings) if listed == n]
        if not same and note is None:  # the book does not print this cell here: its note must say so
            found.append(f"In[{n}]: the book has no listing In[{n}] here; "
                         f"mark the cell `# In[{n}]: not printed in the book, ...`")
        if not same:
            continue

        def closest(kb):  # the most alike; among equals, the next in the book's order
            return difflib.SequenceMatcher(None, undo_page(kb[1], lines), lines).ratio(), kb[0] >= position, -kb[0]

        position, book = max(same, key=closest)
        position += 1
        if changes := unexplained_changes(book, lines, note):
            found.append(f"In[{n}]: explain this change with a comment (or a note `# In[{n}]: ...`), or write the "
                         "book's text:\n" + "\n".join(changes))
    return found


@pytest.fixture(scope="module")
def listings():
    return book_listings(shared_file("book/deep-learning-with-pytorch-2e-ch1-7.md").read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.relative_to(ROOT).as_posix() for p in NOTEBOOKS])
def test_book_cells_are_the_books_listings_up_to_explained_changes(path, listings):
    found = problems(path, listings.get(path.relative_to(ROOT).with_suffix("").as_posix(), []))
    assert not found, "\n\n".join(found)


def test_the_comparison_undoes_the_page_and_catches_a_reformatted_line():
    page = "# In[6]:  \npreprocess = transforms.Compose([transforms.Resize(256),  \n    transforms.ToTensor()])  #1"
    text = f"# 2 Pretrained networks\n\nIn code/p1ch2/3\\_cyclegan.ipynb:\n```\n{page}\n```\n"
    ((n, book),) = book_listings(text)["p1ch2/3_cyclegan"]
    assert n == 6 and book[1] == "    transforms.ToTensor()])"
    assert unexplained_changes(book, book, None) == []
    joined = ["preprocess = transforms.Compose([transforms.Resize(256), transforms.ToTensor()])"]
    assert unexplained_changes(book, joined, None)  # the linter's join is a change
    assert not unexplained_changes(book, [joined[0] + "  # joined: one line"], None)
    assert not unexplained_changes(book, joined, "joined: one line")
    cut = ["x = f(" + "a" * (EDGE - 6)]
    assert unexplained_changes(cut, [cut[0] + ", b)"], None) == []  # the page cut the line
    assert unexplained_changes(book, book + ["preprocess"], None) == []  # an added display line
    assert unexplained_changes(book, book + ["y = 1"], None)
