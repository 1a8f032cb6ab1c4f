"""Notebooks started outside their chapter folder (papermill, VS Code) stop at their first data cell, saying why."""

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import dlwpt

ROOT = dlwpt.REPO_ROOT


@pytest.mark.parametrize("where", ["root", "outside"])
def test_only_a_chapter_folder_passes(monkeypatch, tmp_path, where):
    monkeypatch.chdir(ROOT / "p1ch4")
    assert dlwpt.require_chapter_folder() == (ROOT / "p1ch4").resolve()
    monkeypatch.setenv("DLWPT_DATA", str(tmp_path))  # another data folder (the tests' chapter-2 stand-ins)
    pytest.raises(FileNotFoundError, dlwpt.require_data, "p1ch4/tabular-wine").match(str(tmp_path))
    monkeypatch.delenv("DLWPT_DATA")
    assert dlwpt.require_data("p1ch4/tabular-wine") == dlwpt.DATA_DIR / "p1ch4/tabular-wine"
    monkeypatch.chdir(ROOT if where == "root" else tmp_path)
    assert dlwpt.require_data("p1ch4/tabular-wine", data_dir=dlwpt.DATA_DIR).is_dir()  # absolute: from anywhere
    message = str(pytest.raises(dlwpt.WorkingDirectoryError, dlwpt.require_chapter_folder, "p1ch7").value)
    for what_to_do in [f"--cwd {ROOT / 'p1ch7'}", "jupyter.notebookFileRoot", f"os.chdir({str(ROOT / 'p1ch7')!r})"]:
        assert what_to_do in message
    for data_dir in [None, "../data"]:  # refused before looking for files, also with the book's ../data
        with pytest.raises(dlwpt.WorkingDirectoryError, match="p1ch4"):
            dlwpt.require_data("p1ch4/tabular-wine", data_dir=data_dir)


@pytest.mark.parametrize(
    "notebook, first_data_cell",
    [("p1ch2/3_cyclegan.ipynb", 'require_data("p1ch2/horse.jpg", data_dir="../data")'),
     ("p1ch4/3_tabular_wine.ipynb", 'require_data("p1ch4/tabular-wine")'),
     *[(f"p1ch7/{name}.ipynb", 'require_chapter_folder("p1ch7")') for name in ["1_datasets", "2_birds_airplanes",
                                                                                "exercises_solutions"]]],
)
def test_notebook_run_from_the_repository_root_stops_at_its_first_data_cell(notebook, first_data_cell):
    nb = nbformat.read(ROOT / notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:  # chapter 4 is committed with outputs
        cell.outputs, cell.execution_count = [], None
    stop = next(i for i, c in enumerate(code) if first_data_cell in c.source)
    assert not any("../data" in c.source for c in code[:stop]), "a cell before the check reads data"
    outside, existed = ROOT.parent / "data-unversioned", (ROOT.parent / "data-unversioned").exists()
    with pytest.raises(CellExecutionError) as err:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    assert err.value.ename == "WorkingDirectoryError" and f"--cwd {ROOT / notebook.split('/')[0]}" in err.value.evalue
    errors = [i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert errors == [stop] and all(c.get("execution_count") is None for c in code[stop + 1 :])  # nothing after it
    assert outside.exists() == existed  # no CIFAR-10 download outside the repository
