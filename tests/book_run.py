"""Chapters 2 and 7 at the book's settings on the real downloads, for their committed outputs.

    python -m tests.book_run --out DIR     # in GitHub Actions only (the manually started job book-outputs)

Each notebook runs without the tests' stand-ins and quick mode, as its proof must show; only then is it written, with
the record ``metadata["dlwpt"]["outputs"]`` that the outputs policy (``policy_problems``) requires."""

import argparse
import datetime
import os
import platform
import re
import sys
import tempfile
from pathlib import Path

import nbformat

from tools import standins
from tools.notebooks import ROOT, notebook_keys, run_notebook

KIND = "book settings, real downloads"
RUN_URL = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+/actions/runs/\d+(/attempts/\d+)?")
UNFIT = {"cifar10_standin": "torchvision's CIFAR-10 was the tests' stand-in",
         "quick": "DLWPT_QUICK was on: not the book's settings",
         "hf_offline": "HF_HUB_OFFLINE was set: Hugging Face models may be stand-ins",
         "standin_homes": "stand-in model folders in use (TORCH_HOME, HF_HOME)"}  # what a proof must not show


def policy_problems(nb, chapter):
    """The outputs policy for a chapter 2 or 7 notebook: no outputs, or the outputs of one recorded book run."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    record = nb.metadata.get("dlwpt", {}).get("outputs")
    ran = any(c.outputs or c.execution_count is not None for c in code)
    if not ran:
        return ["a record of a book run, but no outputs: remove the record"] if record is not None else []
    if not isinstance(record, dict):
        return [f"{chapter}: outputs committed, but no record of a book run (metadata.dlwpt.outputs)"]
    problems = [] if record.get("kind") == KIND else [f"record kind is {record.get('kind')!r}, not {KIND!r}"]
    if not RUN_URL.fullmatch(str(record.get("run", ""))):
        problems.append(f"record names no GitHub workflow run: {record.get('run')!r}")
    proof = record.get("proof")
    problems += ["the proof cell printed nothing"] if proof is None else [w for k, w in UNFIT.items() if proof.get(k)]
    problems = [f"{chapter}: outputs committed, but {p}" for p in problems]
    if [c.execution_count for c in code] != list(range(1, len(code) + 1)):
        problems.append("commit the outputs of one full, in-order run")
    return problems


def run_one(path, run, now):
    """(``path`` run without stand-ins (a fresh IPYTHONDIR) or quick mode, with its record; problems)."""
    env = dict.fromkeys(standins.ENV_NAMES | {"DLWPT_QUICK"})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="dlwpt-book-run-ipython-") as ipython_dir:
        nb, proof = run_notebook(path, env=env | {"IPYTHONDIR": ipython_dir}, timeout=3 * 3600, proof=True)
    nb.metadata.setdefault("dlwpt", {})["outputs"] = {
        "kind": KIND, "run": run, "commit": os.environ.get("GITHUB_SHA"), "date": now,
        "python": platform.python_version(), "platform": platform.platform(terse=True), "proof": proof}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb, policy_problems(nb, path.parent.name)


def workflow_run():
    """The URL of the GitHub Actions run this is part of (None outside one)."""
    if os.environ.get("GITHUB_RUN_ID"):
        return (f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/{os.environ.get('GITHUB_REPOSITORY')}"
                f"/actions/runs/{os.environ['GITHUB_RUN_ID']}")
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the executed notebooks (chapter/name.ipynb)")
    args = parser.parse_args(argv)
    if os.environ.get(standins.ROOT_ENV):
        parser.error("the tests' CIFAR-10 stand-in is active (DLWPT_CIFAR_STANDIN): run outside pytest")
    run = workflow_run()
    if not run:
        parser.error("no workflow run to record: run in GitHub Actions (GITHUB_RUN_ID)")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    failed = 0
    for key in [k for k in notebook_keys() if k.split("/")[0] in ("p1ch2", "p1ch7")]:
        print(f"{key} ...", flush=True)
        nb, problems = run_one(ROOT / key, run, now)
        if problems:
            failed += 1
            print("  NOT WRITTEN: " + "; ".join(problems), flush=True)
            continue
        target = Path(args.out) / key
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        print(f"  written: {target}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
