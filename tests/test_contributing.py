"""What the docs and the issue forms promise exists: the make targets, modules, files, links and help they name;
the book-cell numbering and the chapter READMEs' list of differences that CONTRIBUTING.md describes."""

import re
from pathlib import Path

import nbformat
import pytest
import yaml

import dlwpt
from tests.shared import shared_file
from tests.test_notebook_conventions import NOTEBOOKS, ids

ROOT = Path(__file__).resolve().parents[1]
FORMS = sorted((ROOT / ".github/ISSUE_TEMPLATE").glob("*.yml"))
DOCS = ["README.md", "INSTALL.md", "CONTRIBUTING.md", ".github/pull_request_template.md", *FORMS]
BOOK_CELL = re.compile(r"# In\[\d+\](: .+)?")  # the first line of a cell taken from the book
DIFFERENCES = "Differences from the book's listings"  # the list every chapter README keeps


def text(relpath):
    return (ROOT / relpath).read_text(encoding="utf-8")


def make_targets(commands):
    return {word for words in re.findall(r"\bmake((?: [a-z][\w-]*)+)", commands) for word in words.split()}


def test_the_make_targets_the_docs_ci_and_workflow_name_exist():
    code = "\n".join(re.findall(r"```.*?```|`[^`\n]+`", "\n".join(text(doc) for doc in DOCS), re.S))
    jobs = yaml.safe_load(text(".github/workflows/tests.yml"))["jobs"].values()
    runs = "\n".join(str(step.get("run")) for job in jobs for step in job["steps"])
    named, ci = make_targets(code + runs), make_targets(text(".ci/run"))
    assert {"lab", "test", "test-oldest", "test-hosted"} <= named and {"test", "test-oldest", "test-hosted"} <= ci
    assert named | ci <= set(re.findall(r"^([\w-]+):", text("Makefile"), re.M))


@pytest.mark.parametrize("doc", DOCS, ids=str)
def test_the_files_modules_and_links_a_doc_names_exist(doc):
    body = text(doc)
    named = re.findall(r"`((?:tests|dlwpt|\.ci|\.github)/[\w./-]*)`", body)
    named += [module.replace(".", "/") + ".py" for module in re.findall(r"python -m ((?:dlwpt|tests)\.\w+)", body)]
    assert all((ROOT / path).exists() for path in named), [path for path in named if not (ROOT / path).exists()]
    for link in re.findall(r"\]\(([^):]+)\)", body):  # relative links, to a file and maybe a heading
        target, _, anchor = link.partition("#")
        assert (ROOT / doc).parent.joinpath(target).exists(), link
        headings = re.findall(r"^#+ (.+)$", (ROOT / doc).parent.joinpath(target).read_text(encoding="utf-8"), re.M)
        assert not anchor or anchor in {re.sub(r"[^\w\- ]", "", h).lower().replace(" ", "-") for h in headings}, link


def test_help_links_are_the_books_pages_and_this_repositorys_issues():
    book = shared_file("book/deep-learning-with-pytorch-2e-ch1-7.md").read_text(encoding="utf-8")
    everywhere = "\n".join(text(doc) for doc in DOCS)
    manning = set(re.findall(r"https://[\w.]*manning\.com[^\s>)`]*", everywhere))
    assert len(manning) == 2 and all(f"<{url}>" in book for url in manning)
    assert f"<{dlwpt.REPO_URL}/issues>" in text("README.md")
    first = [c.source for c in nbformat.read(ROOT / "p1ch2/1_making_sure_things_work.ipynb", as_version=4).cells]
    assert "doctor.report()" in first[-1]  # the docs' alternative to `python -m dlwpt.doctor`


@pytest.mark.parametrize("form", FORMS, ids=lambda p: p.name)
def test_issue_forms_are_well_formed(form):
    data = yaml.safe_load(form.read_text(encoding="utf-8"))
    if form.name == "config.yml":
        assert all(link["name"] and link["url"] and link["about"] for link in data["contact_links"])
        return
    fields = [element for element in data["body"] if element["type"] != "markdown"]
    assert data["name"] and data["description"] and fields
    assert {e["type"] for e in data["body"]} <= {"markdown", "textarea", "input", "dropdown", "checkboxes"}
    assert len({e["id"] for e in fields}) == len(fields) and all(e["attributes"]["label"] for e in fields)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_book_cells_start_with_their_number_and_the_chapter_lists_its_differences(path):
    for cell in nbformat.read(path, as_version=4).cells:
        first = cell.source.split("\n", 1)[0]
        if cell.cell_type == "code" and first.startswith("# In"):
            assert BOOK_CELL.fullmatch(first), f"first line {first!r}: write the book's cell number as # In[N]"
    assert DIFFERENCES in (path.parent / "README.md").read_text(encoding="utf-8")
