"""pytest plugin: after nbval has run a notebook top to bottom, every code cell runs once more, in the same kernel.

Readers re-run cells out of order; a cell must still work after the whole notebook ran, and a cell that seeds
the random generators (``manual_seed``, ``set_seed``) must print the same the second time (lines reporting a
wall-clock time or speed aside): its seed sits in the cell whose randomness it fixes. Re-running the cells in
order would hide a seed that sits in an earlier cell (that cell re-seeds first), so before a seeded cell runs
again the generators of ``random``, NumPy and torch are put in an arbitrary state, as if other cells had run
in between: what the cell prints must not change.

The second pass costs one more run of each cell, not a second kernel: its items ("Cell 5 re-run") follow the
notebook's last cell, so nbval keeps the notebook's kernel for them. Registered by the root conftest.
"""

import re
from pathlib import Path

import pytest
from nbval.plugin import IPyNbCell, IPyNbFile, coalesce_streams

SEEDS = ("manual_seed(", "set_seed(")
TIMING = re.compile(r"\d\s*(s|ms|seconds|samples/s)\b")  # a wall-clock time or speed: differs run to run


def output_text(outputs):
    """What cell outputs show as text: streams, then text/plain results and displays, then errors."""
    parts = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            parts.append("".join(out.get("text", "")))
        elif kind in ("execute_result", "display_data") and "text/plain" in out.get("data", {}):
            parts.append("".join(out["data"]["text/plain"]) + "\n")
        elif kind == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}\n")
    return "".join(parts)


def printed(outputs):
    """What a cell printed and returned as text (figures, stderr and lines reporting a time or speed left out)."""
    text = output_text([o for o in coalesce_streams(list(outputs)) if o.get("name") != "stderr"])
    return "\n".join(line for line in text.splitlines() if not TIMING.search(line))


# Run in the kernel, silently, before a seeded cell runs again: every generator the notebooks use, re-seeded
# from the operating system's entropy (modules not imported yet are left alone).
SCRAMBLE = """
import random as _r, sys as _s
_r.seed()
if "numpy" in _s.modules: _s.modules["numpy"].random.seed(_r.randrange(2**32))
if "torch" in _s.modules: _s.modules["torch"].manual_seed(_r.randrange(2**63))
del _r, _s
"""


def is_seeded(source):
    return any(seed in source for seed in SEEDS)


class CellReRun(IPyNbCell):
    """A notebook cell once more, after the whole notebook ran in this kernel."""

    def __init__(self, name, parent, cell_num, cell, options, first):
        options = options.copy()
        options["check"] = False  # the committed outputs were checked on the first run
        super().__init__(name, parent, cell_num, cell, options)
        self.first = first  # the nbval item of the first run: its test_outputs are what the cell printed then

    def setup(self):
        if first_run_failed(self.config, self.parent.fspath):
            pytest.skip("not re-run: a cell of this notebook failed on the first run (see that failure)")
        super().setup()

    def scramble_generators(self):
        kernel = self.parent.kernel
        msg_id = kernel.execute_cell_input(SCRAMBLE, allow_stdin=False)
        kernel.await_reply(msg_id, timeout=60)
        kernel.await_idle(msg_id, timeout=60)  # its messages are done before the cell's own begin

    def runtest(self):
        seeded = is_seeded(self.cell.source) and not self.options["skip"]
        if seeded:
            self.scramble_generators()
        super().runtest()  # fails, with the cell's traceback, if the cell raises this time
        if not seeded or self.first.test_outputs is None:
            return
        before, again = printed(self.first.test_outputs), printed(self.test_outputs)
        if again != before:
            self.raise_cell_error(
                "seeded cell printed something else when re-run: its seed must sit in the cell whose randomness "
                "it fixes",
                f"first run:\n{before}\n\nthis run:\n{again}",
            )

    def reportinfo(self):
        path, line, _ = super().reportinfo()
        return path, line, f"{self.fspath.relto(self.config.rootdir)}::{self.name}"


FAILED_NOTEBOOKS = pytest.StashKey[set]()  # resolved paths of notebooks a cell of which failed on the first run


def first_run_failed(config, notebook):
    return str(Path(str(notebook)).resolve()) in config.stash.get(FAILED_NOTEBOOKS, set())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if isinstance(item, IPyNbCell) and not isinstance(item, CellReRun) and call.when == "call" and report.failed:
        item.config.stash.setdefault(FAILED_NOTEBOOKS, set()).add(str(Path(str(item.parent.fspath)).resolve()))
    return report


def rerun_items(cells):
    """Items for a notebook's cells (in order, as collected): each cell once more."""
    return [CellReRun.from_parent(c.parent, name=f"{c.name} re-run", cell_num=c.cell_num, cell=c.cell,
                                  options=c.options, first=c) for c in cells]


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """A notebook collects its cells, then each cell once more: nbval keeps the notebook's kernel for all of them."""
    report = yield
    if isinstance(collector, IPyNbFile) and report.passed:
        report.result.extend(rerun_items([c for c in report.result if isinstance(c, IPyNbCell)]))
    return report
