"""Test harness shared by the notebook runs (nbval) and the focused tests in tests/.

- nbval executes every notebook under p1ch*/ in its own folder (see the README's
  test command); this file keeps what each executed cell printed, so tests in
  tests/ can check the book's figures without running a notebook twice.
- ``executed_notebook("p1ch3/1_tensors.ipynb")`` returns those fresh outputs,
  executing the notebook itself (with nbclient) when nbval did not run it.
- Stand-ins for downloads that cannot happen offline live in tests/standins/.
"""

import os
import re
import sys
from pathlib import Path

import pytest
from nbval.plugin import IPyNbCell

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from tests import nbval_rerun  # noqa: E402  (registered in pytest_configure)
from tests.nbval_rerun import SCRAMBLE, CellReRun, is_seeded, output_text  # noqa: E402  (output_text: for tests/)

pytest_plugins = ["tests.standins.cifar", "tests.standins.pretrained"]

CELL_TIMEOUT = int(os.environ.get("DLWPT_CELL_TIMEOUT", "1200"))

# Outputs of notebooks run by nbval in this session: {notebook path: {cell index: outputs}}
_NBVAL_OUTPUTS = {}


def pytest_configure(config):
    config.pluginmanager.register(nbval_rerun, "nbval_rerun")  # every notebook cell once more, after the notebook
    # Tests shorten long training runs (chapter 7); readers get the book's settings.
    os.environ.setdefault("DLWPT_QUICK", "1")
    # Under pytest-xdist the workers' kernels share the cores: torch in each uses its share, not every core.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    if getattr(config.option, "nbval_cell_timeout", None) == 2000:
        config.option.nbval_cell_timeout = CELL_TIMEOUT
    # output checks ignore what differs only by a library release's repr (numpy's shape=, grad_fn names)
    if hasattr(config.option, "nbval_sanitize_with") and not config.option.nbval_sanitize_with:
        config.option.nbval_sanitize_with = str(ROOT / "tests" / "nbval_sanitize.cfg")


def _is_nbval_cell(item):
    return isinstance(item, IPyNbCell)


def _is_first_run(item):
    return _is_nbval_cell(item) and not isinstance(item, CellReRun)


def pytest_collection_modifyitems(session, config, items):
    # Notebooks run first, so the focused tests can reuse their outputs.
    items.sort(key=lambda item: 0 if _is_nbval_cell(item) else 1)


CHAPTER = re.compile(r"p1ch\d")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`pytest -n auto` (pytest-xdist, make test): a chapter's notebooks and its focused tests (tests/test_p1chN*.py)
    run in one worker, in order, so the tests get the notebooks' fresh outputs; other test files run by file.
    (Not `--dist loadgroup`: pytest-xdist 3.8 cannot tag node ids with their group on pytest 9.2.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByChapter(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            chapter = CHAPTER.search(nodeid.split("::")[0])  # p1ch7/2_birds_airplanes.ipynb, tests/test_p1ch7.py
            return chapter.group() if chapter else nodeid.split("::")[0]

    return ByChapter(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if _is_first_run(item) and call.when == "call" and report.passed:  # failures: nbval_rerun.first_run_failed
        nb = str(Path(str(item.parent.fspath)).resolve())
        _NBVAL_OUTPUTS.setdefault(nb, {})[item.cell_num] = list(item.test_outputs or [])
    return report


class ExecutedNotebook:
    """A notebook's code cells with the outputs of a fresh run."""

    def __init__(self, path, cells):
        self.path = path
        self.cells = cells  # list of (source, outputs)
        self.again = []  # outputs of each code cell run once more, when run_notebook(..., again=True)

    def find(self, contains):
        """The one code cell whose source contains ``contains``."""
        hits = [c for c in self.cells if contains in c[0]]
        if len(hits) != 1:
            raise AssertionError(f"{len(hits)} cells of {self.path.name} contain {contains!r} (need exactly 1)")
        return hits[0]

    def text(self, contains):
        """Everything the cell printed (stdout, then its result), as text."""
        return output_text(self.find(contains)[1])

    def result(self, contains):
        """The cell's ``Out[N]`` value (text/plain of execute_result)."""
        for out in self.find(contains)[1]:
            if out.get("output_type") == "execute_result":
                return out["data"]["text/plain"]
        raise AssertionError(f"cell with {contains!r} in {self.path.name} has no Out[] value")

    def stderr(self):
        return "".join(
            "".join(o.get("text", "")) for _, outs in self.cells for o in outs if o.get("name") == "stderr"
        )


def run_notebook(path, timeout=CELL_TIMEOUT, again=False):
    """Execute a notebook in its own folder with nbclient; return an ExecutedNotebook.

    ``again``: then run every code cell once more in the same kernel, a seeded one after scrambling the random
    generators (see tests/nbval_rerun.py); the second run's outputs are in ``.again``, and a cell failing either
    time raises nbclient's CellExecutionError.
    """
    import copy

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    where = {"metadata": {"path": str(path.parent)}}
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=where)
    with client.setup_kernel():
        for i, cell in code:
            client.execute_cell(cell, i)
        result = ExecutedNotebook(path, [(c.source, copy.deepcopy(c.outputs)) for _, c in code])
        if again:
            for i, cell in code:
                if is_seeded(cell.source):  # as tests/nbval_rerun.py does
                    client.execute_cell(nbformat.v4.new_code_cell(SCRAMBLE), i)
                client.execute_cell(cell, i)
            result.again = [c.outputs for _, c in code]
    return result


_RUN_CACHE = {}


@pytest.fixture(scope="session")
def executed_notebook(pytestconfig):
    """Factory: ``executed_notebook("p1ch3/1_tensors.ipynb")`` -> ExecutedNotebook of a fresh run."""

    def get(relpath):
        import nbformat

        path = (ROOT / relpath).resolve()
        key = str(path)
        if key in _RUN_CACHE:
            return _RUN_CACHE[key]
        if nbval_rerun.first_run_failed(pytestconfig, path):
            pytest.fail(f"{relpath} failed when nbval executed it; see that failure")
        nb = nbformat.read(path, as_version=4)
        done = _NBVAL_OUTPUTS.get(key, {})
        code = [c for c in nb.cells if c.cell_type == "code"]  # nbval numbers code cells only
        if code and all(j in done for j in range(len(code))):
            result = ExecutedNotebook(path, [(c.source, done[j]) for j, c in enumerate(code)])
        else:
            result = run_notebook(path)
        _RUN_CACHE[key] = result
        return result

    return get
