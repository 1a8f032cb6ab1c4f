"""The test machinery, registered as a pytest plugin by the root conftest.py: nbval's re-run of every cell, the
record of the first runs, the stand-ins, fixtures and helpers. CONTRIBUTING.md ("How the tests work") explains it."""

import functools
import os
import re
import tempfile
from pathlib import Path
from unittest import mock

import nbformat
import pytest
from nbval.plugin import IPyNbCell, IPyNbFile, coalesce_streams

from tools import notebooks, standins
from tools.notebooks import ROOT
from tools.standins import SHARED

MIRROR = Path(os.environ.get("DLWPT_DATA_MIRROR") or SHARED / "data-mirror")
OPTION = "--real-downloads"
CYCLEGAN_NOTEBOOKS = ("p1ch2/3_cyclegan.ipynb", "p1ch2/exercises_solutions.ipynb")  # read the CycleGAN weights
SEEDS = ("manual_seed(", "set_seed(")
TIMING = re.compile(r"\d\s*(s|ms|seconds|samples/s)\b")  # a wall-clock time or speed: differs run to run
# Run silently before a seeded cell runs again: every generator the notebooks use, re-seeded from the OS's entropy.
SCRAMBLE = """
import random as _r, sys as _s
_r.seed()
if "numpy" in _s.modules: _s.modules["numpy"].random.seed(_r.randrange(2**32))
if "torch" in _s.modules: _s.modules["torch"].manual_seed(_r.randrange(2**63))
del _r, _s
"""
FIRST_RUNS = pytest.StashKey[dict]()  # {resolved notebook path: {"failed": bool, "outputs": {cell_num: outputs}}}
SKIPPED = {}  # {resolved notebook path: why its cells are skipped in this run}
_chapter2 = {}  # "dir": the TemporaryDirectory of chapter 2's stand-ins, "env": the patch of os.environ for them


def shared_file(relpath, folder=SHARED, how="the ../shared folder beside the checkout; or set DLWPT_SHARED"):
    """``../shared/relpath``, or skip the calling test naming what is missing."""
    if not (folder / relpath).exists():
        pytest.skip(f"needs {folder / relpath} ({how})")
    return folder / relpath


def mirror_file(relpath="MANIFEST.tsv"):
    """A file of the local data mirror, or skip the calling test naming what is missing."""
    return shared_file(relpath, MIRROR, "the data mirror; set DLWPT_DATA_MIRROR")


def offline_env(port=9):
    """Variables that send every HTTP(S) download to a closed local port; 127.0.0.1 and localhost stay reachable."""
    closed, local = f"http://127.0.0.1:{port}", "127.0.0.1,localhost"
    return {"http_proxy": closed, "https_proxy": closed, "HTTP_PROXY": closed, "HTTPS_PROXY": closed,
            "no_proxy": local, "NO_PROXY": local}


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


def is_seeded(source):
    return any(seed in source for seed in SEEDS)


class ExecutedNotebook:
    """A notebook's code cells with the outputs of a fresh run."""

    def __init__(self, path, cells):
        self.path = path
        self.cells = cells  # list of (source, outputs)

    def find(self, contains):
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
        return "".join("".join(o.get("text", "")) for _, outs in self.cells for o in outs if o.get("name") == "stderr")


def run_notebook(path, **kwargs):
    nb = notebooks.run_notebook(path, **kwargs)
    return ExecutedNotebook(Path(path), [(c.source, c.outputs) for c in nb.cells if c.cell_type == "code"])


def first_run(config, notebook):
    return config.stash.setdefault(FIRST_RUNS, {}).setdefault(str(Path(str(notebook)).resolve()),
                                                              {"failed": False, "outputs": {}})


class CellReRun(IPyNbCell):
    """A notebook cell once more, after the whole notebook ran in this kernel."""

    def __init__(self, name, parent, cell_num, cell, options, first):
        options = options.copy()  # nbval's defaultdict
        options["check"] = False  # the committed outputs were checked on the first run
        super().__init__(name, parent, cell_num, cell, options)
        self.first = first  # the nbval item of the first run: its test_outputs are what the cell printed then

    def setup(self):
        if first_run(self.config, self.parent.fspath)["failed"]:
            pytest.skip("not re-run: a cell of this notebook failed on the first run (see that failure)")
        super().setup()

    def runtest(self):
        seeded = is_seeded(self.cell.source) and not self.options["skip"]
        if seeded:
            kernel = self.parent.kernel
            msg_id = kernel.execute_cell_input(SCRAMBLE, allow_stdin=False)
            kernel.await_reply(msg_id, timeout=60)
            kernel.await_idle(msg_id, timeout=60)  # its messages are done before the cell's own begin
        super().runtest()  # fails, with the cell's traceback, if the cell raises this time
        if not seeded or self.first.test_outputs is None:
            return
        before, again = printed(self.first.test_outputs), printed(self.test_outputs)
        if again != before:
            self.raise_cell_error("seeded cell printed something else when re-run: its seed must sit in the cell "
                                  "whose randomness it fixes", f"first run:\n{before}\n\nthis run:\n{again}")

    def reportinfo(self):
        path, line, _ = super().reportinfo()
        return path, line, f"{self.fspath.relto(self.config.rootdir)}::{self.name}"


class ReRun:
    """``nbval_rerun``: a notebook collects its cells, then each once more (nbval keeps one kernel for all)."""

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector):
        report = yield
        if isinstance(collector, IPyNbFile) and report.passed:
            cells = [c for c in report.result if isinstance(c, IPyNbCell)]
            report.result.extend(CellReRun.from_parent(c.parent, name=f"{c.name} re-run", cell_num=c.cell_num,
                                                       cell=c.cell, options=c.options, first=c) for c in cells)
        return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if isinstance(item, IPyNbCell) and not isinstance(item, CellReRun) and call.when == "call":
        record = first_run(item.config, item.parent.fspath)
        record["failed"] |= report.failed
        if report.passed:
            record["outputs"][item.cell_num] = list(item.test_outputs or [])
    return report


@pytest.fixture(scope="session")
def executed_notebook(pytestconfig):
    """``executed_notebook("p1ch3/1_tensors.ipynb")``: an ExecutedNotebook of a fresh run (nbval's, else its own)."""

    @functools.cache
    def get(relpath):
        path = (ROOT / relpath).resolve()
        if str(path) in SKIPPED:
            pytest.skip(SKIPPED[str(path)])
        record = first_run(pytestconfig, path)
        if record["failed"]:
            pytest.fail(f"{relpath} failed when nbval executed it; see that failure")
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]  # nbval's numbers
        done = record["outputs"]
        if code and all(j in done for j in range(len(code))):
            return ExecutedNotebook(path, [(c.source, done[j]) for j, c in enumerate(code)])
        return run_notebook(path)

    return get


def pytest_addoption(parser):
    parser.addoption(OPTION, action="store_true", default=False,
                     help="chapter 2 on the real downloads (needs the internet), not on offline stand-ins; also runs "
                     "the tests marked real_downloads")


def use_real_downloads(config):
    return bool(config.getoption(OPTION, default=False))


def pytest_configure(config):
    config.pluginmanager.register(ReRun(), "nbval_rerun")  # not with -p no:nbval_rerun
    os.environ.setdefault("DLWPT_QUICK", "1")  # tests shorten long training runs (chapter 7); readers get the book's
    # Under pytest-xdist the workers' kernels share the cores: torch in each uses its share, not every core.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    if getattr(config.option, "nbval_cell_timeout", None) == 2000:  # nbval's default
        config.option.nbval_cell_timeout = notebooks.CELL_TIMEOUT
    # output checks ignore what differs only by a library release's repr (numpy's shape=, grad_fn names)
    if hasattr(config.option, "nbval_sanitize_with") and not config.option.nbval_sanitize_with:
        config.option.nbval_sanitize_with = str(ROOT / "tests" / "nbval_sanitize.cfg")
    if standins.TARBALL.is_file():  # otherwise the chapter 7 notebooks use (or download) the official data
        standins.activate()


def _skip(items, reason):
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: 0 if isinstance(item, IPyNbCell) else 1)  # notebooks first: tests reuse outputs
    real = use_real_downloads(config)
    if not real:
        _skip([i for i in items if i.get_closest_marker("real_downloads")],
              f"needs the internet and the real downloads; run with {OPTION}")
    chapter2 = [i for i in items if i.path.parent.name == "p1ch2" or i.path.name == "test_p1ch2.py"]
    if chapter2 and not real and not _chapter2:  # before any kernel starts: kernels inherit os.environ
        _chapter2.update(dir=tempfile.TemporaryDirectory(prefix="dlwpt-ch2-standins-"), env=mock.patch.dict(os.environ))
        _chapter2["env"].start()
        standins.build_chapter2(standin_dir(), os.environ)
    # build_chapter2 redirected to stand-in weights where FACTS lets it; without FACTS only the real weights will do
    if chapter2 and not real and not standins.FACTS.is_file() and not standins.real_cyclegan_weights():
        why = f"no CycleGAN weights: data/ lacks them and there is no {standins.FACTS} for the stand-in"
        _skip([i for i in chapter2 if f"p1ch2/{i.path.name}" in CYCLEGAN_NOTEBOOKS], why)
        SKIPPED.update({str((ROOT / key).resolve()): why for key in CYCLEGAN_NOTEBOOKS})  # for executed_notebook
    chapter7 = [i for i in items if i.path.parent.name == "p1ch7" or i.get_closest_marker("cifar10")]
    have = os.environ.get(standins.ROOT_ENV) or (standins.OFFICIAL_DIR / "batches.meta").is_file()
    if chapter7 and not have and os.environ.get(standins.REQUIRE_ENV) != "1" and not standins.official_reachable():
        _skip(chapter7, f"CIFAR-10 unavailable: no stand-in ({standins.TARBALL} absent), no official data in "
              f"{standins.OFFICIAL_DIR}, and {standins.OFFICIAL_URL} unreachable")


def pytest_unconfigure(config):
    if _chapter2:
        _chapter2.pop("env").stop()
        _chapter2.pop("dir").cleanup()
    standins.deactivate()


def standin_dir():
    """The temporary folder of chapter 2's stand-ins (None when they were not built)."""
    return Path(_chapter2["dir"].name) if _chapter2 else None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`pytest -n auto`: a chapter's notebooks and focused tests share one worker, in order (the tests reuse the
    notebooks' fresh outputs); other files run by file. (`--dist loadgroup` fails on pytest 9.2, xdist 3.8.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByChapter(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            chapter = re.search(r"p1ch\d", nodeid.split("::")[0])  # p1ch7/2_birds_airplanes.ipynb, tests/test_p1ch7.py
            return chapter.group() if chapter else nodeid.split("::")[0]

    return ByChapter(config, log)
