"""tools/speed.py's gpu-check (``make gpu-check``) on a machine without a GPU: the no-GPU path runs nothing and
exits 0, and the device proof tells a CPU run from a GPU run (a notebook run on the CPU, checked as if it had been
meant for CUDA, fails the check, naming the models left on the CPU)."""

import json

import nbformat
import pytest

from tools import speed
from tools.notebooks import ROOT, notebook_keys


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
    assert "model 'dev_model' is on cpu, not cuda" in (tmp_path / "report.md").read_text(encoding="utf-8")
    assert speed.check_proof(row["proof"], "cpu", ["dev_model"], needs_memory=False) == []  # right for the CPU
    assert speed.check_proof(row["proof"], "cpu", ["missing"], needs_memory=False) == [
        "model 'missing' not found in the kernel at the end"]
    on_gpu = {"memory_bytes": 123, "modules": {"model": ["cuda:0"], "linear": ["cpu"]}}
    assert speed.check_proof(on_gpu, "cuda", ["model"]) == []
    mixed = {"memory_bytes": 123, "modules": {"model": ["cpu", "cuda:0"]}}
    assert speed.check_proof(mixed, "cuda", ["model"]) == ["model 'model' is on cpu, cuda:0, not cuda"]


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
    assert proved >= 10, "the lookups found (almost) no models to check"
