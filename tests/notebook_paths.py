"""Notebook keys as the tests' and benchmarks' tables write them: ``p1ch7/2_birds_airplanes.ipynb``, with ``/``.

``str(path.relative_to(ROOT))`` gives ``p1ch7\\2_birds_airplanes.ipynb`` on Windows, which no table holds: a
lookup then finds nothing and a test that loops over the hits checks nothing. Build keys here instead.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def notebook_key(path, root=ROOT):
    """``path`` relative to ``root``, with ``/`` on every system."""
    return path.relative_to(root).as_posix()


def notebook_keys(root=ROOT, pattern="p1ch*/*.ipynb"):
    """Every notebook of the chapters, sorted, as keys."""
    return sorted(notebook_key(path, root) for path in root.glob(pattern))


def from_command_line(arg):
    """A notebook named on the command line, ``p1ch6\\1_neural_networks.ipynb`` on Windows, as a key."""
    return arg.replace("\\", "/").removeprefix("./")
