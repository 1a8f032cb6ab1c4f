"""tests/book_run.py, the book-settings run whose outputs chapters 2 and 7 may commit, on stand-ins here: the real
run (real downloads, the book's 100 epochs) happens only in the workflow's manually started job `book-outputs`."""

import copy
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests import book_run

RUN = "https://github.com/alice/dlwpt-notebooks/actions/runs/123456789"


def write(tmp_path, *cells):
    path = tmp_path / "p1ch7" / "tiny.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), path)
    return path


def test_a_clean_run_is_recorded_and_passes_the_policy(tmp_path, monkeypatch):
    """The test session has DLWPT_QUICK=1 (and, with ../shared, the CIFAR-10 stand-in): the kernel gets neither."""
    monkeypatch.setenv("DLWPT_QUICK", "1")
    path = write(tmp_path, "import dlwpt\nimport torchvision.datasets.cifar\nprint('quick:', dlwpt.quick_mode())")
    nb, problems = book_run.run_one(path, 300, RUN, "2026-01-01T00:00:00Z")
    assert problems == []
    assert nb.cells[-1].source.startswith("import dlwpt")  # the proof cell is not saved
    assert nb.cells[0].outputs[0]["text"] == "quick: False\n" and nb.cells[0].execution_count == 1
    record = nb.metadata["dlwpt"]["outputs"]
    assert record["run"] == RUN and record["kind"] == book_run.KIND
    assert record["proof"]["cifar10_standin"] is False and record["proof"]["quick"] is False
    assert record["proof"]["torch"] and "execution" not in nb.cells[0].metadata
    assert book_run.policy_problems(nb, "p1ch7") == []


def test_a_run_on_stand_ins_is_refused(tmp_path):
    path = write(tmp_path, "from tools.standins import install_in_process\nimport torchvision.datasets\n"
                           "install_in_process('/nowhere')  # the tests' CIFAR-10 patch",
                 "import os\nos.environ['DLWPT_QUICK'] = '1'")
    nb, problems = book_run.run_one(path, 300, RUN, "2026-01-01T00:00:00Z")
    assert any("stand-in" in p for p in problems) and any("DLWPT_QUICK" in p for p in problems)


def committed(record=None, counts=(1, 2)):
    nb = new_notebook(cells=[new_code_cell("x = 1", execution_count=n) for n in counts])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="out\n")]
    if record is not None:
        nb.metadata["dlwpt"] = {"outputs": record}
    return nb


GOOD = {"kind": book_run.KIND, "run": RUN, "proof": {"cifar10_standin": False, "quick": False, "hf_offline": False,
                                                      "standin_homes": []}}


@pytest.mark.parametrize("change, says", [
    (None, "no record of a book run"),
    (lambda r: r.update(run="made on my laptop"), "names no GitHub workflow run"),
    (lambda r: r.update(kind="quick mode on stand-ins"), "record kind"),
    (lambda r: r["proof"].update(cifar10_standin=True), "CIFAR-10 was the tests' stand-in"),
    (lambda r: r["proof"].update(hf_offline=True), "HF_HUB_OFFLINE"),
    (lambda r: r.pop("proof"), "the proof cell printed nothing"),
])
def test_policy_refuses_outputs_without_a_good_record(change, says):
    record = None
    if change is not None:
        record = copy.deepcopy(GOOD)
        change(record)
    problems = book_run.policy_problems(committed(record), "p1ch2")
    assert any(says in p for p in problems), problems
    assert book_run.policy_problems(committed(copy.deepcopy(GOOD)), "p1ch2") == []


def test_policy_wants_one_in_order_run_and_no_stale_record():
    assert "one full, in-order run" in " ".join(book_run.policy_problems(committed(GOOD, counts=(2, 1)), "p1ch7"))
    cleared = committed(GOOD, counts=(None, None))
    cleared.cells[0].outputs = []
    assert book_run.policy_problems(cleared, "p1ch7") == ["a record of a book run, but no outputs: remove the record"]
    cleared.metadata.pop("dlwpt")
    assert book_run.policy_problems(cleared, "p1ch7") == []


def test_the_command_refuses_what_it_cannot_record(monkeypatch, capsys):
    for var in ("GITHUB_RUN_ID", "DLWPT_CIFAR_STANDIN"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SystemExit):
        book_run.main(["--out", "x", "--run-url", "", "p1ch7/1_datasets.ipynb"])
    assert "no workflow run to record" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        book_run.main(["--out", "x", "--run-url", RUN, "p1ch4\\1_image_dog.ipynb"])
    assert "not a notebook of p1ch2, p1ch7: p1ch4/1_image_dog.ipynb" in capsys.readouterr().err
    monkeypatch.setenv("DLWPT_CIFAR_STANDIN", "/tmp/standin")
    with pytest.raises(SystemExit):
        book_run.main(["--out", "x", "--run-url", RUN])
    assert "stand-in is active" in capsys.readouterr().err
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_REPOSITORY", "alice/dlwpt-notebooks")
    assert book_run.run_url() == "https://github.com/alice/dlwpt-notebooks/actions/runs/42"
    assert book_run.RUN_URL.fullmatch(book_run.run_url()) and os.environ["GITHUB_RUN_ID"] == "42"
