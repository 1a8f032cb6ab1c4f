"""The test machinery itself (tests/harness.py, tools/, tests/book_run.py): the re-run of every cell (a seed in
another cell is caught), timeouts, stand-ins that leave data/ alone, skips without ../shared (but not of CIFAR-10 in
CI), gpu-check's proof without a GPU, and book_run's refusal of stand-ins and unordered runs."""

import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from nbval.plugin import get_sanitize_patterns

from tests import book_run, harness
from tests.harness import MIRROR, is_seeded, mirror_file, offline_env, printed, shared_file
from tools import speed, standins
from tools.notebooks import ROOT, notebook_keys

NOTEBOOKS = notebook_keys()
# The book's seeded train/validation splits: (notebook, the cell's first line)
SEEDED_SPLITS = {"p1ch5/3_optimizers.ipynb": "# In[12]", "p1ch6/1_neural_networks.ipynb": "# In[3]"}
# Tiny notebooks: their cells, what nbval + the harness make of each (Cell N, then Cell N re-run), what it says
SAMPLES = {
    "works": (["import os\npid = os.getpid()", "assert os.getpid() == pid\nopen('here.txt').read()",
               "import torch\ntorch.manual_seed(3)\nprint(torch.randperm(5))"], ["PASSED"] * 6, []),
    "fails_twice": (["import os", "os.chdir('sub')"], ["PASSED"] * 3 + ["FAILED"], ["FileNotFoundError"]),  # sub/sub
    "seed_elsewhere": (["import random\nrandom.seed(1)", "import torch\ntorch.manual_seed(0)\nprint(random.random())"],
                       ["PASSED"] * 3 + ["FAILED"], ["seeded cell printed something else"]),
    "broken": (["def deep():\n    raise ValueError('broken on purpose')\ndeep()", "x = 1"],
               ["FAILED", "PASSED", "SKIPPED", "SKIPPED"], ["broken on purpose", "deep()"]),
    "hangs": (["import time\ntime.sleep(300)"], ["FAILED", "SKIPPED"], ["Timeout"]),
}


@pytest.fixture(scope="module")
def nbval_run(tmp_path_factory):
    """pytest + nbval + the harness (its re-run of every cell) on the SAMPLES, outside this project's conftest."""
    folder = tmp_path_factory.mktemp("samples")
    (folder / "sub").mkdir()
    (folder / "here.txt").write_text("hi", encoding="utf-8")
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    for name, (cells, *_) in SAMPLES.items():
        nb = new_notebook(cells=[new_code_cell(c) for c in cells])
        nbformat.write(nb, folder / f"{name}.ipynb")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", "-v",
           "-p", "tests.harness", "--nbval-cell-timeout=30", *(f"{name}.ipynb" for name in SAMPLES)]
    return subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=600).stdout


@pytest.mark.parametrize("name", SAMPLES)
def test_every_cell_runs_again_and_a_re_run_that_goes_wrong_fails(nbval_run, name):
    """Cells run in their folder, in one kernel per notebook, then each once more: a cell failing then fails, and so
    does a seeded cell printing something else. A failing or hanging cell fails, and its notebook is not re-run."""
    cells, statuses, says = SAMPLES[name]
    ids = [f"Cell {n}" for n in range(len(cells))] + [f"Cell {n} re-run" for n in range(len(cells))]
    got = [re.search(rf"{name}\W+ipynb::{re.escape(i)} (PASSED|FAILED|SKIPPED)", nbval_run) for i in ids]
    assert [m and m.group(1) for m in got] == statuses, nbval_run[-3000:]
    assert all(text in nbval_run for text in says), nbval_run[-3000:]


def test_every_notebook_runs_in_place_followed_by_a_re_run_of_every_cell(request):
    """Of this session's collection, or (this file run alone) of a separate collection of every chapter folder."""
    folders = sorted({nb.split("/")[0] for nb in NOTEBOOKS})
    ids = [i.nodeid for i in request.session.items if ".ipynb::" in i.nodeid]
    if not all(any(i.startswith(folder + "/") for i in ids) for folder in folders):
        cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *folders]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        ids = [line for line in proc.stdout.splitlines() if ".ipynb::" in line]
    for relpath in NOTEBOOKS:
        mine = [i.split("::", 1)[1] for i in ids if i.startswith(relpath + "::")]
        first = [i for i in mine if "re-run" not in i]
        assert first and mine == first + [f"{c} re-run" for c in first], relpath
    assert sum(".ipynb::" in i and "re-run" not in i for i in ids) > 300


@pytest.mark.parametrize("relpath", list(SEEDED_SPLITS))
def test_the_books_seeded_splits_are_checked_on_re_run(relpath):
    code = [c for c in nbformat.read(ROOT / relpath, as_version=4).cells if c.cell_type == "code"]
    (split,) = [c for c in code if c.source.startswith(SEEDED_SPLITS[relpath])]
    assert is_seeded(split.source) and "randperm(" in split.source  # so its re-run must draw the same split
    assert "tensor([" in printed(split.outputs)  # the committed run prints the split the re-run must repeat


def test_output_sanitizer_ignores_reprs_but_not_values():
    """nbval compares outputs after tests/nbval_sanitize.cfg: library reprs differ, values must not."""
    patterns = get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text(encoding="utf-8"))

    def clean(text):
        return functools.reduce(lambda text, pattern: re.sub(*pattern, text), patterns, text)

    numpy2 = "array([[ 7.  ,  0.27],\n       [ 6.  ,  0.21]],\n      shape=(4898, 12), dtype=float32)"
    numpy1 = "array([[ 7.  ,  0.27],\n       [ 6.  ,  0.21]], dtype=float32)"
    assert clean(numpy2) == clean(numpy1) != clean(numpy1.replace("0.21", "0.22"))
    assert clean("tensor(2., grad_fn=<ViewBackward0>)") == clean("tensor(2., grad_fn=<AddBackward0>)")
    assert clean("tensor(2., grad_fn=<ViewBackward0>)") != clean("tensor(3., grad_fn=<AddBackward0>)")


@pytest.mark.parametrize("links", [True, False], ids=["links", "copies (no symlinks, as on Windows)"])
def test_stand_in_data_folder_leaves_data_alone(tmp_path, monkeypatch, links):
    shared_file(standins.FACTS_FILE)
    data = tmp_path / "data"
    for name in ("p1ch2/horse.jpg", "p1ch4/tabular-wine/wine.csv"):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_text(name, encoding="utf-8")
    if not links:
        monkeypatch.setattr(Path, "symlink_to", lambda *args, **kwargs: (_ for _ in ()).throw(OSError("no right")))
    base = standins.data_folder_with_standin_weights(tmp_path / "elsewhere", data)
    assert (base / "p1ch2" / "horse.jpg").read_text(encoding="utf-8") == "p1ch2/horse.jpg"
    assert (base / "p1ch4" / "tabular-wine" / "wine.csv").is_file() and (base / "p1ch4").is_symlink() == links
    assert (base / standins.CYCLEGAN_WEIGHTS).stat().st_size > 40_000_000  # 11.4 million float32 values
    assert sorted(p.relative_to(data).as_posix() for p in data.rglob("*")) == [
        "p1ch2", "p1ch2/horse.jpg", "p1ch4", "p1ch4/tabular-wine", "p1ch4/tabular-wine/wine.csv"]


def test_helper_package_builds_with_its_manifest(tmp_path):
    """What `pip install` (Colab, or a non-editable install) gets: dlwpt with manifest.tsv inside."""
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the repository
    shutil.copytree(ROOT / "dlwpt", src / "dlwpt", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ["pyproject.toml", "README.md", "LICENSE"]:
        shutil.copy(ROOT / name, src / name)
    # with build isolation, as pip installs it: pyproject's build-system asks for the setuptools it needs
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("dlwpt-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dlwpt/manifest.tsv" in names and "dlwpt/fetch.py" in names


# The tests that read ../shared (mirror, CIFAR-10 JPEGs, CycleGAN facts), plus one notebook on the fetched data.
SUBSET = ["tests/test_fetch.py::test_manifest_copies_the_mirror_facts", "tests/test_notebook_conventions.py",
          "tests/test_p1ch2.py::test_generator_state_dict_matches_published_file",
          "tests/test_p1ch2.py::test_cyclegan_notebook_loads_weights_and_makes_an_image",
          "tests/test_p1ch2.py::test_exercise_bobby_through_the_generator", "tests/test_p1ch7.py",
          "tests/test_p1ch7_official.py", "p1ch7", "p1ch4/3_tabular_wine.ipynb"]
NOT_READING_DATA = ["test_training_runs_on_the_helper_device", "test_notebooks_have_no_outputs_committed"]


def test_suite_without_shared_and_offline_skips_what_it_cannot_have(tmp_path):
    mirror_file()  # skips where there is no mirror to give from elsewhere
    checkout, elsewhere = tmp_path / "clone", tmp_path / "elsewhere" / "data-mirror"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, checkout / name)
    shutil.copytree(MIRROR, elsewhere)
    # offline, no ../shared, none of this run's stand-ins, an empty stand-in cache; the copy's own dlwpt, also in
    # the notebook kernels (the environment may hold an editable install of ROOT)
    env = {k: v for k, v in os.environ.items()
           if k not in standins.ENV_NAMES | {"DLWPT_SHARED", standins.REQUIRE_ENV, "PYTEST_XDIST_WORKER"}}
    env.update(offline_env(), DLWPT_SHARED=str(tmp_path / "no-shared"), DLWPT_DATA_MIRROR=str(elsewhere),
               PYTHONPATH=str(checkout), **{standins.CACHE_ENV: str(tmp_path / "cache")})
    fetch = subprocess.run([sys.executable, "-m", "dlwpt.fetch"], cwd=checkout, env=env, capture_output=True,
                           text=True, timeout=300)
    assert fetch.returncode == 0, fetch.stdout + fetch.stderr
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-rs", "-v",
                           *SUBSET], cwd=checkout, env=env, capture_output=True, text=True, timeout=1500)
    out = proc.stdout + proc.stderr
    summary = [line for line in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed|skipped)", line)][-1]
    assert proc.returncode == 0 and " passed" in summary, out[-6000:]  # exit status 0: nothing failed
    assert int(re.search(r"(\d+) skipped", summary).group(1)) >= 20
    assert "CIFAR-10 unavailable" in out and "cifar10-jpeg" in out  # the reason names what is missing
    assert "horse2zebra_0.4.0.state_dict_manifest.json" in out  # the CycleGAN stand-in's facts
    for name in NOT_READING_DATA:  # chapter 7's tests that read no data still run
        assert re.search(rf"test_p1ch7\.py::{name} PASSED", out), name


def item(path, *marks):  # what the harness's collection hook reads of a pytest item
    marks = [mark.mark for mark in marks]
    return types.SimpleNamespace(path=ROOT / path, add_marker=lambda decorator: marks.append(decorator.mark),
                                 get_closest_marker=lambda name: next((m for m in marks if m.name == name), None))


@pytest.mark.parametrize("in_ci", [False, True], ids=["skips saying why", "in CI it runs, to fail"])
def test_without_cifar10_chapter_7_skips_except_in_ci(tmp_path, monkeypatch, in_ci):
    """In CI (DLWPT_REQUIRE_CIFAR10=1) chapter 7 is never skipped: its notebooks' own download fails, saying where
    the archive goes (tests/test_first_run.py). Elsewhere the skip names what is missing."""
    monkeypatch.setattr(standins, "TARBALL", tmp_path / "no-shared" / "cifar10-jpeg.tar.gz")
    monkeypatch.setattr(standins, "OFFICIAL_DIR", tmp_path / "no-data")
    monkeypatch.setattr(standins, "official_reachable", lambda: False)
    monkeypatch.delenv(standins.ROOT_ENV, raising=False)
    monkeypatch.setenv(standins.REQUIRE_ENV, "1" if in_ci else "0")
    items = [item("p1ch7/1_datasets.ipynb"), item("tests/test_p1ch7.py", pytest.mark.cifar10), item("tests/test_x.py")]
    harness.pytest_collection_modifyitems(None, types.SimpleNamespace(getoption=lambda *args, **kwargs: False), items)
    skips = [i.get_closest_marker("skip") for i in items]
    assert skips[2] is None and (skips[0] is None) == in_ci and (skips[1] is None) == in_ci
    assert in_ci or "cifar10-jpeg" in skips[0].kwargs["reason"]


@pytest.mark.skipif(speed.find_gpu() is not None, reason="this machine has a GPU")
def test_without_a_gpu_it_says_so_and_runs_nothing(tmp_path, capsys):
    assert speed.gpu_check(out=tmp_path / "report") is True
    assert "no CUDA or Apple MPS GPU here" in capsys.readouterr().out and not (tmp_path / "report").exists()


def test_the_proof_fails_for_a_cpu_run_and_passes_for_a_gpu_one(tmp_path):
    """p1ch6's notebook run on the CPU as if checking CUDA: the check fails, and the report says why."""
    assert speed.gpu_check(["p1ch6/1_neural_networks.ipynb"], gpu="cuda", device="cpu", out=tmp_path) is False
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    (row,) = report["notebooks"]
    assert row["device"] == "cpu" and row["seconds"] > 0 and not report["ok"]
    assert row["problems"] == ["model 'dev_model' is on cpu, not cuda", "no cuda memory was allocated in the kernel"]
    assert speed.check_proof(row["proof"], "cpu", ["dev_model", "gone"], needs_memory=False) == [  # right for the CPU
        "model 'gone' not found in the kernel at the end"]
    assert speed.check_proof({"memory_bytes": 123, "modules": {"model": ["cuda:0"], "linear": ["cpu"]}}, "cuda",
                             ["model"]) == []


def test_report_has_the_gpu_cpu_ratio_and_the_going_further_speeds(tmp_path):
    speeds = speed.going_further_speeds("On cuda, 3 timed epoch(s) each:\nDataLoader loop:      5000 samples/s\n"
                                        "Preloaded loop:     150000 samples/s\nSpeed-up:            30.00x\n")
    assert speeds == {"DataLoader": 5000.0, "Preloaded": 150000.0, "ratio": 30.0}
    assert speed.going_further_speeds("no timing here") is None
    rows = [{"notebook": "p1ch7/2_birds_airplanes.ipynb", "device": device, "mode": "book", "seconds": secs,
             "problems": [], "proof": None, "going_further": speeds} for device, secs in [("cuda", 20), ("cpu", 200)]]
    times = speed.chapter7_times(rows, "cuda")
    assert times == {"gpu": 20.0, "cpu": 200.0, "gpu_over_cpu": 0.1}
    report = {"gpu": "Fake GPU", "device": "cuda", "torch": "x", "python": "y", "cifar10": "z", "notebooks": rows,
              "chapter7_book_seconds": times, "ok": True}
    speed.write_report(report, tmp_path)
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "GPU/CPU time ratio: 0.1" in text and "'ratio': 30.0" in text and "# GPU check: OK" in text


def test_every_notebook_that_computes_on_the_device_is_proved():
    """DEVICE_NOTEBOOKS must list each notebook that moves work to `device`, and name models it assigns."""
    proved = 0
    for rel in notebook_keys():
        code = "\n".join(c.source for c in nbformat.read(ROOT / rel, as_version=4).cells if c.cell_type == "code")
        uses_device = any(s in code for s in (".to(device", "device=device", "device=torch.device(device"))
        assert uses_device == (rel in speed.DEVICE_NOTEBOOKS), rel
        for name in speed.DEVICE_NOTEBOOKS.get(rel, []):
            assert f"{name.split('.')[0]} = " in code, f"{rel} never assigns {name}"
            proved += 1
    assert proved >= 10 and set(speed.DEVICE_NOTEBOOKS) <= set(notebook_keys()), "lookups found (almost) nothing"


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
    nb.metadata["dlwpt"] = {"outputs": record}
    return nb


GOOD = {"kind": book_run.KIND, "run": RUN, "proof": {"cifar10_standin": False, "quick": False}}


@pytest.mark.parametrize("change, counts, says", [
    (None, (1, 2), "no record of a book run"),
    (lambda r: r.update(run="made on my laptop"), (1, 2), "names no GitHub workflow run"),
    (lambda r: r.update(kind="quick mode on stand-ins"), (1, 2), "record kind"),
    (lambda r: r["proof"].update(cifar10_standin=True), (1, 2), "CIFAR-10 was the tests' stand-in"),
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
    for standin, says in [("", "no workflow run to record"), ("/tmp/standin", "stand-in is active")]:
        monkeypatch.setenv("DLWPT_CIFAR_STANDIN", standin)
        with pytest.raises(SystemExit):
            book_run.main(["--out", "x"])
        assert says in capsys.readouterr().err
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_REPOSITORY", "alice/dlwpt-notebooks")
    assert book_run.RUN_URL.fullmatch(book_run.workflow_run()), book_run.workflow_run()  # what the policy accepts
