"""The one notebook runner of the tools and the tests, and notebook keys as their tables write them.

Keys are ``p1ch7/2_birds_airplanes.ipynb``, with ``/`` on every system: ``str(path.relative_to(ROOT))`` gives
``p1ch7\\2_birds_airplanes.ipynb`` on Windows, which no table holds (a lookup then finds nothing).
"""

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CELL_TIMEOUT = int(os.environ.get("DLWPT_CELL_TIMEOUT", "1200"))


def notebook_key(path, root=ROOT):
    """``path`` relative to ``root``, with ``/`` on every system."""
    return path.relative_to(root).as_posix()


def notebook_keys(root=ROOT, pattern="p1ch*/*.ipynb"):
    """Every notebook of the chapters, sorted, as keys."""
    return sorted(notebook_key(path, root) for path in root.glob(pattern))


def run_notebook(path, env=None, timeout=CELL_TIMEOUT, last_cell=None):
    """Execute the notebook ``path`` in its own folder, as a reader's Run All; return the executed notebook.

    ``env``: variables changed for the kernel only (None unsets one); ``last_cell``: code run after the notebook's
    cells in the same kernel (its cell is the notebook's last). A failing cell raises nbclient's CellExecutionError.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    if last_cell:
        nb.cells.append(nbformat.v4.new_code_cell(last_cell))
    kernel_env = {name: value for name, value in {**os.environ, **(env or {})}.items() if value is not None}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(Path(path).parent)}})
    client.execute(env=kernel_env)
    return nb


def marked_json(outputs, mark):
    """The JSON a cell printed on a line starting with ``mark`` (None if it printed none)."""
    text = "".join("".join(o.get("text", "")) for o in outputs if o.get("output_type") == "stream")
    lines = [line[len(mark):] for line in text.splitlines() if line.startswith(mark)]
    return json.loads(lines[-1]) if lines else None
