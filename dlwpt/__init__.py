"""Small helpers for the notebooks of *Deep Learning with PyTorch, 2nd ed.*

- ``get_device()`` / ``describe_device()``: CUDA, else Apple MPS, else CPU
  (``DLWPT_DEVICE=cpu`` forces a choice).
- ``require_data("p1ch4/tabular-wine")``: checks the book's data files are in
  ``data/`` and, if not, says which command fetches them.
- ``require_chapter_folder()``: stops a notebook run from a working directory where
  the book's relative paths (``../data/...``) miss, saying what to do.
- ``quick_mode()``: ``DLWPT_QUICK=1`` shortens long training runs (tests).
"""

import os
from pathlib import Path

__all__ = [
    "REPO_URL",
    "REPO_BRANCH",
    "REPO_ROOT",
    "DATA_DIR",
    "get_device",
    "describe_device",
    "quick_mode",
    "require_data",
    "require_chapter_folder",
    "WorkingDirectoryError",
    "fetch_command",
]

# Where the repository is published: the notebooks' Colab and Kaggle badges and their setup cell
# point here. `python -m dlwpt.publish OWNER/NAME [--branch BRANCH]` rewrites all of them at once.
REPO_URL = "https://github.com/dlwpt-2e/dlwpt-2e"
REPO_BRANCH = "main"

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"

DEVICE_ENV = "DLWPT_DEVICE"
QUICK_ENV = "DLWPT_QUICK"
DATA_ENV = "DLWPT_DATA"  # another data folder for require_data (the tests point chapter 2 at stand-in weights)


def get_device():
    """Return the ``torch.device`` the notebooks use.

    Order: CUDA, then Apple MPS, then CPU. Set ``DLWPT_DEVICE`` (``cpu``,
    ``cuda``, ``cuda:1``, ``mps``) to force one; forcing a device that is not
    available raises a ``RuntimeError`` instead of silently falling back.

    MPS counts only when a small tensor can really be computed there: virtual
    Macs (GitHub's macOS runners among them) report MPS available, then fail
    on the first allocation. Auto-detection then warns and uses the CPU.
    """
    import torch

    forced = os.environ.get(DEVICE_ENV, "").strip().lower()
    if forced:
        device = torch.device(forced)  # raises on a malformed name
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"{DEVICE_ENV}={forced} but CUDA is not available here")
        if device.type == "mps":
            if not _mps_available():
                raise RuntimeError(f"{DEVICE_ENV}={forced} but Apple MPS is not available here")
            failure = _mps_failure()
            if failure:
                raise RuntimeError(f"{DEVICE_ENV}={forced} but Apple MPS does not work here: {failure}")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        failure = _mps_failure()
        if failure is None:
            return torch.device("mps")
        import warnings

        warnings.warn(
            f"Apple MPS reports itself available but a small computation on it failed ({failure}); "
            f"using the CPU. Set {DEVICE_ENV}=cpu to choose it without this check.",
            RuntimeWarning,
            stacklevel=2,
        )
    return torch.device("cpu")


def _mps_available():
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def _mps_failure():
    """None if a small tensor can be made and computed on MPS, else the error, in one line."""
    import torch

    try:
        x = torch.ones(4, device="mps")
        if (x * 2).sum().item() != 8.0:
            return "a wrong result"
    except Exception as err:  # RuntimeError: MPS backend out of memory, ... (no GPU in a virtual Mac)
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        return f"{type(err).__name__}: {first}".rstrip(": ")
    return None


def describe_device(device=None):
    """Print and return one line saying which device is used (and the GPU's name)."""
    import torch

    device = torch.device(device) if device is not None else get_device()
    if device.type == "cuda":
        what = f"cuda ({torch.cuda.get_device_name(device)})"
    elif device.type == "mps":
        what = "mps (Apple GPU)"
    else:
        what = "cpu"
    how = f"forced by {DEVICE_ENV}" if os.environ.get(DEVICE_ENV) else "auto-detected"
    line = f"Using device: {what} [{how}]"
    print(line)
    return line


def quick_mode():
    """True when ``DLWPT_QUICK`` is set to 1/true/yes: tests shorten training with it."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def fetch_command(prefix=None):
    """The shell command that fetches the data under ``prefix`` (a chapter or folder)."""
    chapter = prefix.split("/")[0] if prefix else ""
    return f"python -m dlwpt.fetch {chapter}".rstrip()


class WorkingDirectoryError(RuntimeError):
    """A notebook runs outside its chapter folder, where the book's relative paths miss."""


def require_chapter_folder(chapter=None):
    """Check that the working directory is a chapter folder of this repository; return it.

    The notebooks open files by the book's relative paths (``../data/p1ch4/...``,
    ``../data-unversioned/p1ch7/``), which hold only there. Elsewhere (papermill or
    VS Code started from the repository root) this raises ``WorkingDirectoryError``
    saying what to do. ``chapter`` (``"p1ch7"``) names the folder in that message.
    """
    cwd = Path.cwd().resolve()
    if cwd.parent == REPO_ROOT.resolve():
        return cwd
    folder = REPO_ROOT / (chapter or "p1chN")
    raise WorkingDirectoryError(
        f"This notebook must run in its chapter's folder, e.g. {folder}, but the working directory is {cwd}.\n"
        "Its cells open the book's files by relative paths (../data/..., ../data-unversioned/p1ch7/),\n"
        "which would miss the data of this repository. Do one of:\n"
        f"  - start Jupyter anywhere in {REPO_ROOT} and open the notebook: its folder is then the working directory;\n"
        f"  - papermill: add --cwd {folder}; VS Code: set jupyter.notebookFileRoot to ${{fileDirname}};\n"
        f"  - run this first in a cell, then this one again: import os; os.chdir({str(folder)!r})"
    )


def require_data(prefix, data_dir=None):
    """Check that every manifest file under ``prefix`` is present in ``data/``.

    Returns ``data/<prefix>`` (``$DLWPT_DATA/<prefix>`` when that is set). A missing file raises a
    ``FileNotFoundError`` that names the file and the command that fetches it.
    (Presence and size are checked here; ``python -m dlwpt.fetch`` checks SHA-256.)
    Unless ``data_dir`` is an absolute path, the notebook must also run in a chapter
    folder, where the book's ``../data/`` is this ``data/`` (``require_chapter_folder``).
    """
    from .fetch import load_manifest, under

    if data_dir is None or not Path(data_dir).is_absolute():
        require_chapter_folder(prefix.split("/")[0])
    data_dir = Path(data_dir if data_dir is not None else os.environ.get(DATA_ENV) or DATA_DIR)
    # Optional files (the CycleGAN weights) count only when asked for by name.
    entries = [e for e in load_manifest() if under(e.path, prefix) and (e.path == prefix or not e.optional)]
    if not entries:
        raise ValueError(f"no data files of the book are listed under {prefix!r}")
    missing = []
    for entry in entries:
        target = data_dir / entry.path
        if not target.is_file() or (entry.size is not None and target.stat().st_size != entry.size):
            missing.append(entry.path)
    if missing:
        shown = "\n  ".join(missing[:5]) + ("\n  ..." if len(missing) > 5 else "")
        raise FileNotFoundError(
            f"{len(missing)} data file(s) of the book are missing or incomplete in {data_dir}:\n  {shown}\n"
            f"Fetch them from the repository root with:\n  {fetch_command(prefix)}"
        )
    return data_dir / prefix
