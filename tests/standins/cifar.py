"""CIFAR-10 stand-in for offline test runs (pytest plugin, loaded by the root conftest).

The chapter 7 notebooks call ``datasets.CIFAR10(data_path, download=True)``, which needs the
internet and checks the official archive's MD5 sums. Offline, this plugin:

1. builds once, from ``../shared/cifar10-jpeg/cifar10-jpeg.tar.gz`` (real CIFAR-10 images,
   re-encoded as JPEG by a public mirror), a folder in torchvision's "python version" layout
   (``cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta``) in a cache folder outside
   the repository; the sample order is a fixed-seed shuffle, not the official order;
2. writes an IPython startup file into a temporary ``IPYTHONDIR`` (inherited by the kernels that
   nbval and nbclient start) that, once torchvision's CIFAR-10 module is imported, points every
   ``CIFAR10(...)`` at that folder and accepts its files without the MD5 check.

It is a STAND-IN: pixel values differ slightly from the official archive (JPEG), and the sample
order differs, so tests on it check behaviour and tolerances, never the book's exact figures.
The notebooks themselves are unchanged and download the official data for readers.
"""

import hashlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.shared import SHARED

ROOT = Path(__file__).resolve().parents[2]
TARBALL = SHARED / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"  # torchvision's source
OFFICIAL_DIR = ROOT / "data-unversioned" / "p1ch7" / "cifar-10-batches-py"  # where the notebooks put it
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SEED = 7  # fixed order of the stand-in samples
CACHE_ENV = "DLWPT_CIFAR_STANDIN_CACHE"  # optional: where to keep the built folder
ROOT_ENV = "DLWPT_CIFAR_STANDIN"  # set for the kernels: the stand-in root folder
MARKER = ".dlwpt-test-ipythondir"

# Run in-process (benchmark) or as an IPython startup file (test kernels).
PATCH_CODE = r'''
import os as _os
import sys as _sys


def _dlwpt_patch_cifar(module, root):
    """Stand-in only: read CIFAR-10 from `root` and skip the official MD5 sums."""
    cls = module.CIFAR10
    if getattr(cls, "_dlwpt_standin", False):
        return
    files = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    init = cls.__init__

    def __init__(self, _root, *args, **kwargs):
        init(self, root, *args, **kwargs)

    def _check_integrity(self):
        return all(_os.path.isfile(_os.path.join(self.root, self.base_folder, f)) for f in files)

    cls.__init__ = __init__
    cls._check_integrity = _check_integrity
    module.check_integrity = lambda fpath, md5=None: _os.path.isfile(fpath)
    cls._dlwpt_standin = True


def _dlwpt_install(root):
    name = "torchvision.datasets.cifar"
    if name in _sys.modules:
        _dlwpt_patch_cifar(_sys.modules[name], root)
        return

    class _Finder:  # patches the module right after its first import
        def find_spec(self, fullname, path=None, target=None):
            if fullname != name:
                return None
            for finder in _sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
            exec_module = spec.loader.exec_module

            def exec_and_patch(module):
                exec_module(module)
                _dlwpt_patch_cifar(module, root)

            spec.loader.exec_module = exec_and_patch
            _sys.meta_path.remove(self)
            return spec

    _sys.meta_path.insert(0, _Finder())
'''

STARTUP = PATCH_CODE + f"\nif _os.environ.get({ROOT_ENV!r}):\n    _dlwpt_install(_os.environ[{ROOT_ENV!r}])\n"


def _cache_dir():
    st = TARBALL.stat()
    key = hashlib.sha256(f"{st.st_size}:{int(st.st_mtime)}:{SEED}:v1".encode()).hexdigest()[:12]
    base = Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "dlwpt-cache")
    return base / f"cifar10-standin-{key}"


def build_standin(tarball=TARBALL):
    """Build (once; cached) the stand-in folder and return its root (holding cifar-10-batches-py/)."""
    import numpy as np
    from PIL import Image

    tarball = Path(tarball)
    if not tarball.is_file():
        raise FileNotFoundError(f"CIFAR-10 stand-in archive not found: {tarball}")
    out = _cache_dir()
    folder = out / "cifar-10-batches-py"
    if (folder / "batches.meta").is_file():
        return out
    samples = {"train": [], "test": []}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or not parts[2].endswith(".jpg"):
                continue
            split, cls, fname = parts
            with Image.open(io.BytesIO(tar.extractfile(member).read())) as im:
                pixels = np.asarray(im.convert("RGB"), dtype=np.uint8)
            assert pixels.shape == (32, 32, 3), (member.name, pixels.shape)
            # torchvision's layout: one row per image, channel-major (R plane, G plane, B plane)
            samples[split].append((cls, fname, CLASSES.index(cls), pixels.transpose(2, 0, 1).reshape(-1)))
    rng = np.random.default_rng(SEED)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="building-", dir=out.parent))
    try:
        (tmp / "cifar-10-batches-py").mkdir()
        for split, names in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
            items = sorted(samples[split], key=lambda s: (s[0], s[1]))
            items = [items[i] for i in rng.permutation(len(items))]
            per = len(items) // len(names)
            for i, name in enumerate(names):
                chunk = items[i * per : (i + 1) * per]
                batch = {
                    "batch_label": f"stand-in {name} (JPEG re-encoded CIFAR-10, not the official archive)",
                    "labels": [s[2] for s in chunk],
                    "data": np.stack([s[3] for s in chunk]),
                    "filenames": [f"{s[0]}/{s[1]}" for s in chunk],
                }
                with open(tmp / "cifar-10-batches-py" / name, "wb") as f:
                    pickle.dump(batch, f, protocol=4)
        meta = {"label_names": CLASSES, "num_cases_per_batch": 10000, "num_vis": 3072}
        with open(tmp / "cifar-10-batches-py" / "batches.meta", "wb") as f:
            pickle.dump(meta, f, protocol=4)
        try:
            tmp.rename(out)
        except OSError:  # built meanwhile by another run
            if not (folder / "batches.meta").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def install_in_process(root):
    """Apply the stand-in patch in this Python process (used by benchmarks/, never by notebooks)."""
    scope = {}
    exec(PATCH_CODE, scope)
    scope["_dlwpt_install"](str(root))


_CREATED = []


def activate():
    """Point kernels started from now on (they inherit os.environ) at the stand-in; returns its root."""
    root = build_standin()
    os.environ[ROOT_ENV] = str(root)
    ipydir = os.environ.get("IPYTHONDIR")
    if not (ipydir and (Path(ipydir) / MARKER).is_file()):  # another stand-in plugin may have made one
        ipydir = tempfile.mkdtemp(prefix="dlwpt-ipython-")
        (Path(ipydir) / MARKER).write_text("temporary IPYTHONDIR of the test harness\n", encoding="utf-8")
        _CREATED.append((ipydir, os.environ.get("IPYTHONDIR")))
        os.environ["IPYTHONDIR"] = ipydir
    startup = Path(ipydir) / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "50-dlwpt-cifar10-standin.py").write_text(STARTUP, encoding="utf-8")
    return root


def deactivate():
    os.environ.pop(ROOT_ENV, None)
    while _CREATED:
        ipydir, previous = _CREATED.pop()
        shutil.rmtree(ipydir, ignore_errors=True)
        if previous is None:
            os.environ.pop("IPYTHONDIR", None)
        else:
            os.environ["IPYTHONDIR"] = previous


def pytest_configure(config):
    if TARBALL.is_file():  # otherwise the chapter 7 notebooks use (or download) the official data
        activate()


REQUIRE_ENV = "DLWPT_REQUIRE_CIFAR10"  # CI with internet: chapter 7 must run, never be skipped


def _needs_cifar(item):
    """A chapter 7 notebook, or a test marked ``cifar10`` (tests/test_p1ch7*.py mark those that read the data)."""
    return Path(str(item.path)).parent.name == "p1ch7" or item.get_closest_marker("cifar10") is not None


def required():
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def official_reachable(timeout=5):
    """True if the official CIFAR-10 archive answers (through any proxy the environment sets)."""
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(OFFICIAL_URL, method="HEAD"), timeout=timeout).close()
        return True
    except Exception:  # offline, DNS, proxy, TLS: the notebooks could not download it either
        return False


def pytest_collection_modifyitems(session, config, items):
    chapter7 = [item for item in items if _needs_cifar(item)]
    if not chapter7 or os.environ.get(ROOT_ENV) or (OFFICIAL_DIR / "batches.meta").is_file():
        return
    if required():  # the notebooks download it (or fail saying why): a CI run never passes without chapter 7
        return
    if not official_reachable():
        skip = pytest.mark.skip(
            reason=f"CIFAR-10 unavailable: no stand-in ({TARBALL} absent), no official data in {OFFICIAL_DIR}, "
            f"and {OFFICIAL_URL} unreachable"
        )
        for item in chapter7:
            item.add_marker(skip)


def pytest_unconfigure(config):
    deactivate()
