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
    assert dlwpt.get_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dlwpt.get_device() == torch.device("cuda")


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
