"""CONTRIBUTING.md, the issue and pull-request templates and the README's links, kept in step with the tests.

The guide names the test behind each rule it states; these tests fail when a named test disappears, when a
convention test is added without a rule in the guide, or when a value the guide states (the outputs policy's
chapters, its examples) no longer matches the conventions module or the notebooks.
"""

import ast
import inspect
import re
from pathlib import Path

import nbformat
import pytest

import dlwpt
from tests import test_notebook_conventions as conventions
from tests.harness import shared_file

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
FORMS = ROOT / ".github" / "ISSUE_TEMPLATE"
CHAPTERS = sorted({p.parent.name for p in conventions.NOTEBOOKS})
BOOK_CELL = re.compile(r"# In\[\d+\](: .+)?")  # the first line of a cell taken from the book
DIFFERENCES = "Differences from the book's listings"  # the list every chapter README keeps
BOOK_PAGE = "https://www.manning.com/books/deep-learning-with-pytorch"
FORUM = "https://forums.manning.com/forums/deep-learning-with-pytorch"


def defined_tests(relpath):
    tree = ast.parse((ROOT / relpath).read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def chapters_named(text):
    """Chapters a line names: `p1ch2`, or a range `p1ch3`..`p1ch6`."""
    found = set()
    for first, last in re.findall(r"`p1ch(\d)`(?:\.\.`p1ch(\d)`)?", text):
        found |= {f"p1ch{n}" for n in range(int(first), int(last or first) + 1)}
    return found


def checklist(text):
    return re.findall(r"^- \[ \] (.+)$", text, flags=re.MULTILINE)


# --- the guide and the tests say the same ---


def test_every_test_the_guide_names_exists():
    named = re.findall(r"`(tests/\w+\.py)::(\w+)`", GUIDE)
    assert len(named) >= 8
    for relpath, name in named:
        assert name in defined_tests(relpath), f"CONTRIBUTING.md names {relpath}::{name}, which does not exist"


def test_guide_states_the_rule_of_every_convention_test():
    relpath = "tests/test_notebook_conventions.py"
    missing = sorted(name for name in defined_tests(relpath) if f"`{relpath}::{name}`" not in GUIDE)
    assert not missing, f"add the rules these tests enforce to CONTRIBUTING.md: {missing}"


def test_guide_refers_to_the_setup_cell_instead_of_copying_it():
    assert "`SETUP_FIRST_LINE` in `tests/test_notebook_conventions.py`" in GUIDE
    assert conventions.SETUP_FIRST_LINE  # the constant the guide points at exists
    assert conventions.SETUP_FIRST_LINE not in GUIDE  # a copy would drift when the setup cell changes


def test_outputs_policy_as_the_guide_states_it():
    with_outputs = re.search(r"With outputs \(`WITH_OUTPUTS`\): (.+)", GUIDE).group(1)
    without = re.search(r"Without outputs: (.+)", GUIDE).group(1)
    assert chapters_named(with_outputs) == conventions.WITH_OUTPUTS
    assert chapters_named(without) == set(CHAPTERS) - conventions.WITH_OUTPUTS
    refresh = re.search(r"After editing a notebook of (.+)", GUIDE).group(1)
    assert chapters_named(refresh) == conventions.WITH_OUTPUTS
    (policy_item,) = [item for item in checklist(GUIDE) if item.startswith("Outputs follow the policy")]
    refreshed, cleared = policy_item.split("refreshed")
    assert chapters_named(refreshed) == conventions.WITH_OUTPUTS
    assert chapters_named(cleared) == set(CHAPTERS) - conventions.WITH_OUTPUTS
    source = inspect.getsource(conventions.test_outputs_policy)
    for literal in ["nbval-check-output", "execution"]:  # the tag and the timestamps the guide names
        assert f"`{literal}`" in GUIDE and f'"{literal}"' in source


def notebook_source(relpath):
    nb = nbformat.read(ROOT / relpath, as_version=4)
    return "\n".join(cell.source for cell in nb.cells)


@pytest.mark.parametrize(
    "relpath, example",
    [
        ("p1ch3/1_tensors.ipynb", "# In[11]\npoints = torch.tensor([[4.0, 1.0], [5.0, 3.0], [2.0, 1.0]])"),
        ("p1ch4/1_image_dog.ipynb", "# Not in the book: the filled batch is N x C x H x W"),
        ("p1ch5/3_optimizers.ipynb", "torch.manual_seed(8277054)  # not in the book: the same split on every run"),
        ("p1ch2/README.md", "`torch.load(..., weights_only=True)`"),
    ],
)
def test_guide_examples_are_taken_from_this_repository(relpath, example):
    assert example.replace("\n", "\n   ") in GUIDE or example in GUIDE
    text = (ROOT / relpath).read_text(encoding="utf-8") if relpath.endswith(".md") else notebook_source(relpath)
    assert example in text, f"CONTRIBUTING.md quotes {relpath}, which no longer has: {example}"


@pytest.mark.parametrize("path", conventions.NOTEBOOKS, ids=conventions.ids(conventions.NOTEBOOKS))
def test_book_cells_start_with_their_number(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        first = cell.source.split("\n", 1)[0]
        if cell.cell_type == "code" and first.startswith("# In"):
            assert BOOK_CELL.fullmatch(first), f"first line {first!r}: write the book's cell number as # In[N]"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_readme_lists_its_differences(chapter):
    assert DIFFERENCES in (ROOT / chapter / "README.md").read_text(encoding="utf-8")
    assert DIFFERENCES in GUIDE


def test_pull_request_template_has_the_guides_checklist():
    template = (ROOT / ".github" / "pull_request_template.md").read_text(encoding="utf-8")
    assert len(checklist(GUIDE)) >= 5
    assert checklist(template) == checklist(GUIDE)


# --- issue forms (GitHub's issue-form YAML) ---


def load_form(name):
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((FORMS / name).read_text(encoding="utf-8"))


def fields(form):
    return {element["id"]: element for element in form["body"] if element["type"] != "markdown"}


@pytest.mark.parametrize("name", ["bug_report.yml", "book_and_notebook_disagree.yml"])
def test_issue_form_is_well_formed(name):
    form = load_form(name)
    assert form["name"] and form["description"] and form["body"]
    kinds = {"markdown", "textarea", "input", "dropdown", "checkboxes"}
    assert all(element["type"] in kinds for element in form["body"])
    ids = [element["id"] for element in form["body"] if element["type"] != "markdown"]
    assert len(ids) == len(set(ids))
    assert all(element["attributes"]["label"] for element in fields(form).values())


def required(field):
    return field.get("validations", {}).get("required", False)


def test_bug_report_asks_for_the_environment_report_the_cell_and_the_expectation():
    form = fields(load_form("bug_report.yml"))
    environment = form["environment"]
    assert required(environment) and environment["attributes"]["render"] == "text"
    asks = environment["attributes"]["description"]
    assert "python -m dlwpt.doctor" in asks and (ROOT / "dlwpt" / "doctor.py").is_file()
    notebook = re.search(r"`(p1ch2/\w+\.ipynb)`", asks).group(1)
    code = [c.source for c in nbformat.read(ROOT / notebook, as_version=4).cells if c.cell_type == "code"]
    assert "last cell" in asks and "doctor.report()" in code[-1]
    where = form["where"]["attributes"]
    assert required(form["where"]) and BOOK_CELL.fullmatch(where["placeholder"].split("cell ")[-1])
    assert (ROOT / where["placeholder"].split(",")[0]).is_file()
    assert required(form["expected"]) and required(form["actual"])


def test_book_report_asks_for_the_listing_and_points_at_the_chapter_readme():
    form = load_form("book_and_notebook_disagree.yml")
    intro = form["body"][0]["attributes"]["value"]
    assert "`README.md`" in intro and DIFFERENCES in intro
    asked = fields(form)
    assert required(asked["book"]) and required(asked["book-says"]) and required(asked["notebook-says"])
    assert asked["readme-checked"]["attributes"]["options"][0]["required"]


def test_issue_config_links_the_books_forum_and_page():
    urls = [link["url"] for link in load_form("config.yml")["contact_links"]]
    assert FORUM in urls and BOOK_PAGE in urls


# --- README ---


def test_readme_links_the_book_forum_issues_and_guide():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert BOOK_PAGE in readme and FORUM in readme
    assert f"{dlwpt.REPO_URL}/issues" in readme and "(CONTRIBUTING.md)" in readme
    assert "python -m dlwpt.doctor" in readme


def test_book_page_and_forum_are_the_ones_the_book_gives():
    book = shared_file("book/deep-learning-with-pytorch-2e-ch1-7.md").read_text(encoding="utf-8")
    assert f"<{BOOK_PAGE}>" in book and f"<{FORUM}>" in book
