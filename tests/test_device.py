"""The device helper: CUDA, else MPS (when it really computes), else CPU; DLWPT_DEVICE forces a choice."""

import pytest
import torch

import dlwpt
from dlwpt import device

# GitHub's macOS runners (virtual Macs, actions/runner-images issue 9918) report MPS available, then fail so:
RUNNER_ERROR = RuntimeError("MPS backend out of memory (MPS allocated: 0 bytes, max allowed: 0 bytes).\nTried ...")


def machine(monkeypatch, cuda=False, mps=None):
    """torch as on a machine with or without CUDA; ``mps``: None (no MPS), else what computing there gives."""
    monkeypatch.delenv("DLWPT_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(device, "_mps_available", lambda: mps is not None)

    def ones(*shape, device=None):
        assert device == "mps"  # the check computes on the device it checks
        if isinstance(mps, Exception):
            raise mps
        return torch.full(shape, mps)  # the CPU stands in for the GPU

    monkeypatch.setattr(torch, "ones", ones)


@pytest.mark.parametrize("cuda, mps, best", [(True, 1.0, "cuda"), (False, 1.0, "mps"), (False, None, "cpu")])
def test_auto_picks_best_available(monkeypatch, recwarn, cuda, mps, best):
    machine(monkeypatch, cuda=cuda, mps=mps)
    assert dlwpt.get_device() == torch.device(best) and not recwarn.list


@pytest.mark.parametrize("mps, reason", [(RUNNER_ERROR, "out of memory"), (0.0, "a wrong result")])
def test_mps_that_fails_falls_back_to_the_cpu_with_a_warning_and_cannot_be_forced(monkeypatch, mps, reason):
    machine(monkeypatch, mps=mps)
    with pytest.warns(RuntimeWarning, match=f"small computation on it failed .*{reason}.*using the CPU"):
        assert dlwpt.get_device() == torch.device("cpu")
    assert "\n" not in device._mps_failure()  # the error's first line only
    monkeypatch.setenv("DLWPT_DEVICE", "mps")
    with pytest.raises(RuntimeError, match=f"DLWPT_DEVICE=mps but Apple MPS does not work here: .*{reason}"):
        dlwpt.get_device()


def test_mps_check_on_this_machine_gives_an_answer():
    failure = device._mps_failure()  # None where MPS works; elsewhere computing there fails, said in one line
    assert (failure is None and device._mps_available()) or (failure and "\n" not in failure)


@pytest.mark.parametrize("name, err", [("CPU", None), ("cuda", "CUDA"), ("cuda:1", "CUDA"), ("mps", "MPS"), ("x", "")])
def test_env_forces_a_device_and_forcing_a_missing_one_is_an_error(monkeypatch, name, err):
    machine(monkeypatch, cuda=err is None)  # the CPU even with a GPU
    monkeypatch.setenv("DLWPT_DEVICE", name)
    if err is None:
        assert dlwpt.get_device() == torch.device("cpu")
    else:
        pytest.raises(RuntimeError, dlwpt.get_device).match(err)


def test_describe_device_prints_one_line_naming_the_gpu(monkeypatch, capsys):
    monkeypatch.setenv("DLWPT_DEVICE", "cpu")
    line = dlwpt.describe_device()
    assert capsys.readouterr().out == line + "\n" and line == "Using device: cpu [forced by DLWPT_DEVICE]"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Fake GPU 9000")
    assert "cuda (Fake GPU 9000)" in dlwpt.describe_device(torch.device("cuda"))


@pytest.mark.parametrize("value, quick", [("0", False), ("", False), ("1", True), ("yes", True)])
def test_quick_mode(monkeypatch, value, quick):
    monkeypatch.setenv("DLWPT_QUICK", value)
    assert dlwpt.quick_mode() is quick
