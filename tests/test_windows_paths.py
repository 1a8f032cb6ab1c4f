"""Notebook keys on Windows: paths there have backslashes, the tables (gpu_check.DEVICE_NOTEBOOKS, the re-run
check's node ids, SEEDED_SPLITS) write ``/``. Checked here with Windows paths (PureWindowsPath) on any system."""

import sys
from pathlib import PureWindowsPath

from tests import test_device_slips, test_rerun
from tests.notebook_paths import ROOT, from_command_line, notebook_key, notebook_keys

sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402


class WindowsRoot(PureWindowsPath):
    """A checkout at C:\\dlwpt-2e with two notebooks, as Path.glob returns them on Windows."""

    def glob(self, pattern):
        assert pattern == "p1ch*/*.ipynb"
        return [self / "p1ch7" / "2_birds_airplanes.ipynb", self / "p1ch2" / "3_cyclegan.ipynb"]


def test_keys_of_windows_paths_have_forward_slashes():
    root = WindowsRoot("C:/dlwpt-2e")
    path = root / "p1ch7" / "2_birds_airplanes.ipynb"
    assert str(path.relative_to(root)) == "p1ch7\\2_birds_airplanes.ipynb"  # what the old keys were
    assert notebook_key(path, root) == "p1ch7/2_birds_airplanes.ipynb"
    keys = notebook_keys(root)
    assert keys == ["p1ch2/3_cyclegan.ipynb", "p1ch7/2_birds_airplanes.ipynb"]
    assert {"p1ch2/3_cyclegan.ipynb", "p1ch7/2_birds_airplanes.ipynb"} <= set(gpu_check.DEVICE_NOTEBOOKS)


def test_notebooks_named_on_a_windows_command_line():
    assert from_command_line("p1ch6\\1_neural_networks.ipynb") == "p1ch6/1_neural_networks.ipynb"
    assert from_command_line(".\\p1ch6\\1_neural_networks.ipynb") == "p1ch6/1_neural_networks.ipynb"
    assert from_command_line("p1ch6/1_neural_networks.ipynb") == "p1ch6/1_neural_networks.ipynb"


def test_the_tables_are_looked_up_with_these_keys():
    """The lists the lookups use are the keys notebook_keys() builds (so on Windows too, by the test above)."""
    keys = notebook_keys()
    assert len(keys) >= 20 and all("\\" not in key for key in keys)
    assert gpu_check.all_notebooks() == keys
    assert test_rerun.NOTEBOOKS == keys
    assert set(test_rerun.SEEDED_SPLITS) <= set(keys)
    assert set(gpu_check.DEVICE_NOTEBOOKS) <= set(keys)
    assert set(test_device_slips.DEVICE_NOTEBOOKS) <= set(keys) and len(test_device_slips.DEVICE_NOTEBOOKS) >= 5
