"""tests/book_run.py, the book-settings run whose outputs chapters 2 and 7 may commit, on stand-ins here: the real
run (real downloads, the book's 100 epochs) happens only in the workflow's manually started job `book-outputs`."""

import copy

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from tests import book_run

RUN = "https://github.com/alice/dlwpt-notebooks/actions/runs/123456789"
CLEAN = "import dlwpt\nimport torchvision.datasets.cifar\nprint('quick:', dlwpt.quick_mode())"
ON_STANDINS = ("from tools.standins import install_in_process\nimport torchvision.datasets\n"
               "install_in_process('/nowhere')  # the tests' CIFAR-10 patch\n"
               "import os\nos.environ['DLWPT_QUICK'] = '1'")


@pytest.mark.parametrize("source, says", [(CLEAN, []), (ON_STANDINS, ["the tests' stand-in", "DLWPT_QUICK"])],
                         ids=["clean", "on stand-ins"])
def test_a_run_is_recorded_and_one_on_stand_ins_refused(tmp_path, monkeypatch, source, says):
    """The test session has DLWPT_QUICK=1 (and, with ../shared, the CIFAR-10 stand-in): the kernel gets neither."""
    monkeypatch.setenv("DLWPT_QUICK", "1")
    path = tmp_path / "p1ch7" / "tiny.ipynb"
    path.parent.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell(source)]), path)
    nb, problems = book_run.run_one(path, RUN, "2026-01-01T00:00:00Z")
    assert [any(s in p for p in problems) for s in says] == [True] * len(says) and bool(problems) == bool(says)
    if not says:
        (cell,) = nb.cells  # the proof cell is not saved
        assert cell.outputs[0]["text"] == "quick: False\n" and cell.execution_count == 1
        assert "execution" not in cell.metadata
        record = nb.metadata["dlwpt"]["outputs"]
        assert record["run"] == RUN and record["proof"]["cifar10_standin"] is False and record["proof"]["torch"]


def committed(record=None, counts=(1, 2)):
    nb = new_notebook(cells=[new_code_cell("x = 1", execution_count=n) for n in counts])
    nb.cells[0].outputs = [new_output("stream", text="out\n")] if counts[0] else []
    if record is not None:
        nb.metadata["dlwpt"] = {"outputs": record}
    return nb


GOOD = {"kind": book_run.KIND, "run": RUN, "proof": {"cifar10_standin": False, "quick": False, "hf_offline": False,
                                                      "standin_homes": []}}


@pytest.mark.parametrize("change, counts, says", [
    (None, (1, 2), "no record of a book run"),
    (lambda r: r.update(run="made on my laptop"), (1, 2), "names no GitHub workflow run"),
    (lambda r: r.update(kind="quick mode on stand-ins"), (1, 2), "record kind"),
    (lambda r: r["proof"].update(cifar10_standin=True), (1, 2), "CIFAR-10 was the tests' stand-in"),
    (lambda r: r["proof"].update(hf_offline=True), (1, 2), "HF_HUB_OFFLINE"),
    (lambda r: r["proof"].update(standin_homes=["/tmp/dlwpt-ch2-standins-1/torch"]), (1, 2), "stand-in model folders"),
    (lambda r: r.pop("proof"), (1, 2), "the proof cell printed nothing"),
    (lambda r: None, (2, 1), "one full, in-order run"),
    (lambda r: None, (None, None), "a record of a book run, but no outputs: remove the record"),
])
def test_policy_refuses_outputs_without_a_good_record_from_one_in_order_run(change, counts, says):
    record = copy.deepcopy(GOOD) if change else None
    if change:
        change(record)
    assert any(says in p for p in book_run.policy_problems(committed(record, counts), "p1ch2"))
    assert book_run.policy_problems(committed(copy.deepcopy(GOOD)), "p1ch2") == []
    assert book_run.policy_problems(committed(None, (None, None)), "p1ch7") == []  # no outputs, no record: fine


def test_the_command_refuses_to_run_without_a_workflow_run_or_inside_pytest(monkeypatch, capsys):
    monkeypatch.delenv("GITHUB_RUN_ID", raising=False)
    monkeypatch.delenv("DLWPT_CIFAR_STANDIN", raising=False)
    with pytest.raises(SystemExit):
        book_run.main(["--out", "x"])
    assert "no workflow run to record" in capsys.readouterr().err
    monkeypatch.setenv("DLWPT_CIFAR_STANDIN", "/tmp/standin")
    with pytest.raises(SystemExit):
        book_run.main(["--out", "x"])
    assert "stand-in is active" in capsys.readouterr().err
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_REPOSITORY", "alice/dlwpt-notebooks")
    assert book_run.RUN_URL.fullmatch(book_run.workflow_run()), book_run.workflow_run()  # what the policy accepts
