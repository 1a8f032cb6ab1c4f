"""What the docs claim holds: the README opens every notebook with its own badges' links; a figure a chapter README
quotes is printed by a committed output or the book; every book file a notebook reads is guarded by `require_data`;
the make targets, files, links and pages the docs name exist; book cells carry the book's cell number."""

import ast
import re
from pathlib import Path

import nbformat
import pytest
import yaml

import dlwpt
from dlwpt.fetch import load_manifest, under
from tests.harness import shared_file
from tests.test_notebook_conventions import NOTEBOOKS, WITH_OUTPUTS, ids

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / name for name in ("README.md", "INSTALL.md", "CONTRIBUTING.md", ".github/pull_request_template.md")]
FORMS = sorted((ROOT / ".github/ISSUE_TEMPLATE").glob("*.yml"))
FIGURE = re.compile(r"(?<![\w.])-?\d+\.\d{2,}(?![\w.])")  # 5.4276, -17.9451; not versions like 2.14.1
# Figures a README works out in its own explanation (not printed anywhere), each with where it is explained.
WORKED_OUT = {"p1ch4": {"0.48985", "0.0013418"}}  # why wine cell 12 prints 1.34e-03: a column mean, float64


def read(path):
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_readme_opens_every_notebook_in_colab_and_kaggle(path):
    title = nbformat.read(path, as_version=4).cells[0].source
    badges = re.findall(r"\]\((https://(?:colab\.research\.google|kaggle)\.com/[^)]+\.ipynb)\)", title)
    assert len(badges) == 2 and all(f"]({url})" in read(DOCS[0]) for url in badges), f"no README link to {path}"


def committed_text(path):
    """Everything a notebook's committed outputs show, as text."""
    outputs = [out for cell in nbformat.read(path, as_version=4).cells for out in cell.get("outputs", [])]
    return "\n".join(out.get("text", "") or out.get("data", {}).get("text/plain", "") for out in outputs)


@pytest.mark.parametrize("chapter", sorted(WITH_OUTPUTS))
def test_every_figure_a_readme_quotes_is_printed_by_a_notebook_or_the_book(chapter):
    book = read(shared_file("book/deep-learning-with-pytorch-2e-ch1-7.md"))
    printed = "\n".join(committed_text(p) for p in sorted((ROOT / chapter).glob("*.ipynb")))
    nowhere = [x for x in FIGURE.findall(read(ROOT / chapter / "README.md")) if x not in printed]
    nowhere = [x for x in nowhere if x.lstrip("-") not in book and x not in WORKED_OUT.get(chapter, set())]
    assert not nowhere, f"{chapter}/README.md quotes figures no committed output and not the book prints: {nowhere}"


def string_arguments(source):
    """The string literals of a cell (require_data's argument, or a tuple its loop runs over)."""
    lines = ["pass" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")]
    tree = ast.parse("\n".join(lines))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_every_data_file_a_notebook_reads_is_guarded_by_require_data(path):
    book_files = [e.path for e in load_manifest()]
    guarded, unguarded = set(), []
    for cell in [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]:
        if "require_data(" in cell.source:
            guarded |= {s for s in string_arguments(cell.source) if s.startswith("p1ch")}
        for relpath in re.findall(r"""['"]\.\./data/([^'"]+?)/?['"]""", cell.source):
            if any(under(f, relpath) for f in book_files) and not any(under(relpath, g) for g in guarded):
                unguarded.append(relpath)
    assert not unguarded, f"call require_data before reading {unguarded} (it names the fetch command)"


def make_targets(commands):
    return {word for words in re.findall(r"\bmake((?: [a-z][\w-]*)+)", commands) for word in words.split()}


def test_the_make_targets_the_docs_ci_and_workflow_name_exist():
    code = "\n".join(re.findall(r"```.*?```|`[^`\n]+`", "\n".join(map(read, DOCS)), re.S))
    jobs = yaml.safe_load(read(ROOT / ".github/workflows/tests.yml"))["jobs"].values()
    named = make_targets(code + "\n".join(str(step.get("run")) for job in jobs for step in job["steps"]))
    ci = make_targets(read(ROOT / ".ci/run"))  # CI runs the documented test commands
    assert {"lab", "test", "test-oldest", "test-hosted"} <= named and {"test", "test-oldest", "test-hosted"} <= ci
    assert named | ci <= set(re.findall(r"^([\w-]+):", read(ROOT / "Makefile"), re.M))


@pytest.mark.parametrize("doc", DOCS + FORMS, ids=lambda p: p.name)
def test_the_files_modules_and_links_a_doc_names_exist(doc):
    named = re.findall(r"`((?:tests|dlwpt|\.ci|\.github)/[\w./-]*)`", read(doc))
    named += [module.replace(".", "/") + ".py" for module in re.findall(r"python -m ((?:dlwpt|tests)\.\w+)", read(doc))]
    assert [path for path in named if not (ROOT / path).exists()] == []
    for link in re.findall(r"\]\(([^):]+)\)", read(doc)):  # relative links, to a file and maybe one of its headings
        target, _, anchor = link.partition("#")
        headings = re.findall(r"^#+ (.+)$", read(doc.parent / target), re.M)
        assert not anchor or anchor in {re.sub(r"[^\w\- ]", "", h).lower().replace(" ", "-") for h in headings}, link


def test_help_goes_to_the_books_pages_and_this_repositorys_issues():
    book = read(shared_file("book/deep-learning-with-pytorch-2e-ch1-7.md"))
    manning = set(re.findall(r"https://[\w.]*manning\.com[^\s>)`]*", "\n".join(map(read, DOCS + FORMS))))
    assert len(manning) == 2 and all(f"<{url}>" in book for url in manning)
    assert f"<{dlwpt.REPO_URL}/issues>" in read(DOCS[0])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_book_cells_start_with_their_number_and_the_chapter_lists_its_differences(path):
    for cell in nbformat.read(path, as_version=4).cells:
        first = cell.source.split("\n", 1)[0]
        if cell.cell_type == "code" and first.startswith("# In"):
            assert re.fullmatch(r"# In\[\d+\](: .+)?", first), f"{first!r}: write the book's cell number as # In[N]"
    assert "Differences from the book's listings" in read(path.parent / "README.md")
