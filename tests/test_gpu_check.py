"""tools/gpu_check.py (``make gpu-check``) on a machine without a GPU.

The GPU run itself needs a GPU; here we test what can be tested on the CPU: the no-GPU path runs nothing and
exits 0, and the device proof tells a CPU run from a GPU run (a notebook run on the CPU, checked as if it had been
meant for CUDA, must fail the check, naming the models left on the CPU).
"""

import json
import subprocess
import sys

import nbformat
import pytest
import torch

from tests.harness import shared_file
from tools import gpu_check
from tools.notebooks import ROOT, notebook_keys

no_gpu = pytest.mark.skipif(  # a virtual Mac's MPS that cannot allocate (GitHub's runners) is no GPU here either
    gpu_check.find_gpu() is not None, reason="this machine has a GPU"
)


@no_gpu
@pytest.mark.parametrize("device, says", [("auto", "no CUDA or Apple MPS GPU"), ("cuda", "no CUDA GPU"),
                                          ("mps", "no Apple MPS GPU")])
def test_without_a_gpu_it_says_so_and_runs_nothing(tmp_path, device, says):
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--device", device, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert says in proc.stdout and "nothing was run" in proc.stdout
    assert not out.exists()  # no report: nothing ran


def test_makefile_has_the_gpu_check_target():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "\ngpu-check:" in makefile and "tools/gpu_check.py" in makefile
    assert "gpu-check" in next(line for line in makefile.splitlines() if line.startswith(".PHONY"))


def test_the_proof_tells_where_the_models_of_a_cpu_run_are(tmp_path):
    """A tiny notebook run with DLWPT_DEVICE=cpu: its proof passes for the CPU and fails for a GPU."""
    code = ("import torch\nimport torch.nn as nn\nfrom dlwpt import get_device\n\ndevice = get_device()\n"
            "model = nn.Linear(3, 2).to(device)\nmodels = {'small': nn.Linear(2, 1)}\nout = model(torch.ones(4, 3))")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), tmp_path / "tiny.ipynb")
    result = gpu_check.run_with_proof(tmp_path / "tiny.ipynb", "cpu", quick=True, env={})
    proof = result["proof"]
    assert result["error"] is None and proof["device"] == "cpu" and proof["memory_bytes"] is None  # no GPU memory
    assert proof["modules"]["model"] == ["cpu"] and proof["modules"]["models['small']"] == ["cpu"]  # dicts count
    problems = gpu_check.check_proof(proof, "cuda", ["model"])
    assert problems == ["model 'model' is on cpu, not cuda", "no cuda memory was allocated in the kernel"]
    assert gpu_check.check_proof(proof, "mps", ["model"], needs_memory=False) == ["model 'model' is on cpu, not mps"]
    assert gpu_check.check_proof(proof, "cpu", ["model"], needs_memory=False) == []
    assert gpu_check.check_proof(proof, "cpu", ["missing"], needs_memory=False) == [
        "model 'missing' not found in the kernel at the end"]


def test_a_gpu_proof_passes_and_a_mixed_one_fails():
    on_gpu = {"device": "cuda", "memory_bytes": 123, "modules": {"model": ["cuda:0"], "linear": ["cpu"]}}
    assert gpu_check.check_proof(on_gpu, "cuda", ["model"]) == []
    mixed = {"device": "cuda", "memory_bytes": 123, "modules": {"model": ["cpu", "cuda:0"]}}
    assert gpu_check.check_proof(mixed, "cuda", ["model"]) == ["model 'model' is on cpu, cuda:0, not cuda"]


def test_fake_gpu_run_of_a_real_notebook_fails_and_reports(tmp_path):
    """End to end on the CPU: run p1ch6's notebook as if checking CUDA; the proof must fail (its models are on
    the CPU), and the report must say so."""
    out = tmp_path / "report"
    rc = gpu_check.main(["--fake-gpu", "--notebooks", "p1ch6/1_neural_networks.ipynb", "--out", str(out)])
    assert rc == 1
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    (row,) = report["notebooks"]
    assert row["status"] == "proof failed" and row["device"] == "cpu"
    assert "model 'dev_model' is on cpu, not cuda" in row["problems"]
    assert row["seconds"] > 0 and report["torch"] == torch.__version__
    assert "proof failed" in (out / "report.md").read_text(encoding="utf-8") and not report["ok"]


def test_fake_gpu_run_of_chapter_2_on_the_stand_ins(tmp_path):
    """The CycleGAN notebook runs in place on the stand-in weights (no error) and its proof names netG, left on
    the CPU here."""
    shared_file("facts/horse2zebra_0.4.0.state_dict_manifest.json")
    out = tmp_path / "report"
    rc = gpu_check.main(["--fake-gpu", "--ch2", "standins", "--notebooks", "p1ch2/3_cyclegan.ipynb", "--out", str(out)])
    (row,) = json.loads((out / "report.json").read_text(encoding="utf-8"))["notebooks"]
    assert rc == 1 and row["status"] == "proof failed"
    assert row["problems"][0] == "model 'netG' is on cpu, not cuda"


def test_report_ratio_and_going_further(tmp_path):
    rows = [
        {"notebook": "p1ch7/2_birds_airplanes.ipynb", "device": "cuda", "mode": "book", "seconds": 20.0,
         "status": "ok, on cuda", "problems": [], "proof": {"memory_bytes": 2**20, "modules": {"model": ["cuda:0"]}}},
        {"notebook": "p1ch7/2_birds_airplanes.ipynb", "device": "cpu", "mode": "book", "seconds": 200.0,
         "status": "ok, on cpu", "problems": [], "proof": None},
    ]
    assert gpu_check.chapter7_times(rows, "cuda") == (20.0, 200.0, 0.1)
    assert gpu_check.chapter7_times(rows[:1], "cuda") == (20.0, None, None)  # --skip-cpu: no ratio
    speeds = gpu_check.going_further_speeds(
        "On cuda, 3 timed epoch(s) each:\nDataLoader loop:      5000 samples/s\nPreloaded loop:     150000 samples/s\n"
        "Speed-up:            30.00x (preloaded / DataLoader)\n"
    )
    assert speeds == {"dataloader_samples_per_s": 5000.0, "preloaded_samples_per_s": 150000.0, "ratio": 30.0}
    assert gpu_check.going_further_speeds("no timing here") is None
    rows[0]["going_further"] = speeds
    report = {"gpu": "Fake GPU", "device": "cuda", "torch": "x", "python": "y", "chapter2": "standins",
              "notebooks": rows, "chapter7_book_seconds": {"gpu": 20.0, "cpu": 200.0},
              "chapter7_gpu_over_cpu": 0.1, "ok": True}
    text = (gpu_check.write_report(report, tmp_path) / "report.md").read_text(encoding="utf-8")
    assert "GPU/CPU time ratio: 0.1" in text and "ratio 30.0x" in text and "Result: OK" in text


def test_every_notebook_that_computes_on_the_device_is_proved():
    """DEVICE_NOTEBOOKS must list each notebook that moves work to `device`, and name models it assigns."""
    proved = 0
    for rel in notebook_keys():
        code = "\n".join(c.source for c in nbformat.read(ROOT / rel, as_version=4).cells if c.cell_type == "code")
        uses_device = any(s in code for s in (".to(device", "device=device", "device=torch.device(device"))
        assert uses_device == (rel in gpu_check.DEVICE_NOTEBOOKS), rel
        for name in gpu_check.DEVICE_NOTEBOOKS.get(rel, []):
            assert f"{name.split('.')[0]} = " in code, f"{rel} never assigns {name}"
            proved += 1
    assert proved >= 10, "the lookups found (almost) no models to check"
    assert set(gpu_check.DEVICE_NOTEBOOKS) <= set(notebook_keys())
