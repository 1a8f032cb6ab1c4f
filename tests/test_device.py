"""The device helper: CUDA, else MPS, else CPU; DLWPT_DEVICE forces a choice."""

import pytest
import torch

import dlwpt


def test_auto_picks_best_available(monkeypatch):
    monkeypatch.delenv("DLWPT_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dlwpt, "_mps_available", lambda: False)
    assert dlwpt.get_device() == torch.device("cpu")
    monkeypatch.setattr(dlwpt, "_mps_available", lambda: True)
    monkeypatch.setattr(dlwpt, "_mps_failure", lambda: None)  # a Mac whose GPU computes
    assert dlwpt.get_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dlwpt.get_device() == torch.device("cuda")


# GitHub's macOS runners (virtual Macs, actions/runner-images issue 9918): torch.backends.mps.is_available() is
# True, and the first tensor on the device fails like this.
RUNNER_ERROR = "MPS backend out of memory (MPS allocated: 0 bytes, other allocations: 0 bytes, max allowed: 0 bytes)."


def mac(monkeypatch, ones):
    """torch as on a Mac that reports MPS available, with ``ones`` standing in for torch.ones."""
    monkeypatch.delenv("DLWPT_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dlwpt, "_mps_available", lambda: True)
    monkeypatch.setattr(torch, "ones", ones)


def failing_ones(*shape, device=None):
    assert device == "mps"  # the check computes on the device it checks
    raise RuntimeError(RUNNER_ERROR + "\nTried to allocate 16 bytes on shared pool.")


def test_mps_that_fails_to_allocate_falls_back_to_the_cpu_with_a_warning(monkeypatch):
    mac(monkeypatch, failing_ones)
    with pytest.warns(RuntimeWarning, match="small computation on it failed .*out of memory.*using the CPU"):
        assert dlwpt.get_device() == torch.device("cpu")
    assert dlwpt._mps_failure() == "RuntimeError: " + RUNNER_ERROR  # its first line only


def test_forcing_mps_that_fails_to_allocate_is_an_error(monkeypatch):
    mac(monkeypatch, failing_ones)
    monkeypatch.setenv("DLWPT_DEVICE", "mps")
    with pytest.raises(RuntimeError, match="DLWPT_DEVICE=mps but Apple MPS does not work here: RuntimeError: MPS"):
        dlwpt.get_device()


def test_mps_that_computes_is_used(monkeypatch, recwarn):
    real_ones = torch.ones
    devices = []

    def ones(*shape, device=None):
        devices.append(device)
        return real_ones(*shape)  # the CPU stands in for a working GPU

    mac(monkeypatch, ones)
    assert dlwpt.get_device() == torch.device("mps")
    assert devices == ["mps"] and not recwarn.list
    mac(monkeypatch, lambda *shape, device=None: real_ones(*shape) * 0)  # computes, but wrongly
    with pytest.warns(RuntimeWarning, match="a wrong result"):
        assert dlwpt.get_device() == torch.device("cpu")


def test_mps_check_on_this_machine_gives_an_answer():
    failure = dlwpt._mps_failure()
    assert failure is None or (failure and "\n" not in failure)
    if not dlwpt._mps_available():
        assert failure is not None  # no MPS here: computing there fails


def test_env_forces_cpu_even_with_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("DLWPT_DEVICE", "CPU")
    assert dlwpt.get_device() == torch.device("cpu")


def test_env_forcing_a_missing_device_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dlwpt, "_mps_available", lambda: False)
    for name, what in [("cuda", "CUDA"), ("cuda:1", "CUDA"), ("mps", "MPS")]:
        monkeypatch.setenv("DLWPT_DEVICE", name)
        with pytest.raises(RuntimeError, match=what):
            dlwpt.get_device()
    monkeypatch.setenv("DLWPT_DEVICE", "gpu-please")
    with pytest.raises(RuntimeError):
        dlwpt.get_device()


def test_describe_device_prints_one_line(monkeypatch, capsys):
    monkeypatch.setenv("DLWPT_DEVICE", "cpu")
    line = dlwpt.describe_device()
    assert capsys.readouterr().out == line + "\n"
    assert line == "Using device: cpu [forced by DLWPT_DEVICE]"


def test_describe_device_names_the_gpu(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Fake GPU 9000")
    assert "cuda (Fake GPU 9000)" in dlwpt.describe_device(torch.device("cuda"))


def test_quick_mode(monkeypatch):
    monkeypatch.setenv("DLWPT_QUICK", "0")
    assert not dlwpt.quick_mode()
    monkeypatch.setenv("DLWPT_QUICK", "1")
    assert dlwpt.quick_mode()
