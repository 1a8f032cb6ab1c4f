"""Check that the notebooks really run on a GPU, in one command.

    make gpu-check          # or: python tools/gpu_check.py [--device auto|cuda|mps] [--skip-cpu] [--notebooks ...]

On a machine with CUDA (else Apple MPS; ``--device`` picks one):

1. runs every notebook with ``DLWPT_DEVICE=cuda`` (or ``mps``): chapter 7 at the book's settings, the rest in
   quick mode (``DLWPT_QUICK=1``); a cell that errors fails the check;
2. proves the GPU did the work: a cell appended to the in-memory copy of each notebook reports the GPU memory the
   kernel allocated and the device of every ``nn.Module`` in the kernel's globals. In the notebooks that compute
   on the device (``DEVICE_NOTEBOOKS``) the named models must be on the GPU and memory must have been allocated;
3. times chapter 7 at the book's settings again on the CPU (``DLWPT_DEVICE=cpu``) in the same run;
4. writes ``outputs/gpu_check/report.json`` and ``report.md``: per notebook device, mode, seconds, proof; the
   chapter 7 GPU/CPU time ratio; the going-further samples/s; the GPU's name; torch's version.

Without a GPU it says so and exits 0, running nothing. Exit status 1: a notebook failed or a proof failed.

Chapter 2 needs pretrained weights and models (2.7 GB, online). ``--ch2 auto`` (the default) uses the tests'
stand-ins (random weights under the real architectures, tools/standins.py) where ``../shared`` is present, as on
this project's offline machines, else the real downloads; the device proof holds either way, since it checks where
the weights sit, not what they know. ``--ch2 real`` or ``skip`` forces a choice.
Chapter 7 reads the official CIFAR-10 in ``data-unversioned/p1ch7/`` when present, else the tests' offline
stand-in (``../shared/cifar10-jpeg``) when present, else the notebooks download it.
"""

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import standins  # noqa: E402
from tools.notebooks import ROOT, from_command_line, marked_json, notebook_keys, run_notebook  # noqa: E402

OUT_DIR = ROOT / "outputs" / "gpu_check"
CHAPTER7 = "p1ch7/"
CELL_TIMEOUT = 3 * 3600  # book-settings training on a CPU takes minutes per cell

# Notebooks that compute on the chosen device, and the models that must end up on it there.
DEVICE_NOTEBOOKS = {
    "p1ch2/2_pre_trained_networks.ipynb": ["resnet"],
    "p1ch2/3_cyclegan.ipynb": ["netG"],
    "p1ch2/4_model_zoos.ipynb": ["resnet18_model", "generator.model", "model"],
    "p1ch2/exercises_solutions.ipynb": ["netG"],
    "p1ch3/1_tensors.ipynb": [],  # tensors only: the allocated memory is the proof
    "p1ch6/1_neural_networks.ipynb": ["dev_model"],
    "p1ch7/2_birds_airplanes.ipynb": ["model", "first_model", "fast_model"],
    "p1ch7/exercises_solutions.ipynb": ["plain", "cropped", "mse_model"],
}

PROOF_MARK = "DLWPT-DEVICE-PROOF "
# Appended to the in-memory copy of each notebook (never to the file): what the kernel holds at the end.
PROOF_CELL = r'''
def _dlwpt_device_proof():
    import json
    import sys

    proof = {"device": None, "memory_bytes": None, "modules": {}}
    torch = sys.modules.get("torch")
    if torch is None:
        return "DLWPT-DEVICE-PROOF " + json.dumps(proof)
    found = {}
    for name, obj in list(globals().items()):
        if name.startswith("_") or name in ("In", "Out"):  # IPython's history of inputs and results
            continue
        found[name] = obj
        if isinstance(getattr(obj, "model", None), torch.nn.Module):  # a transformers pipeline
            found[name + ".model"] = obj.model
        if isinstance(obj, dict):
            found.update((f"{name}[{key!r}]", value) for key, value in obj.items())
    for name, obj in found.items():
        if isinstance(obj, torch.nn.Module):
            tensors = list(obj.parameters()) + list(obj.buffers())
            if tensors:  # modules without weights (nn.Tanh(), transforms) live nowhere
                proof["modules"][name] = sorted({str(t.device) for t in tensors})
    if isinstance(globals().get("device"), torch.device):
        proof["device"] = str(globals()["device"])
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        proof["memory_bytes"] = torch.cuda.max_memory_allocated()
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        proof["memory_bytes"] = torch.mps.current_allocated_memory()
    return "DLWPT-DEVICE-PROOF " + json.dumps(proof)


print(_dlwpt_device_proof())
del _dlwpt_device_proof
'''


def find_gpu(requested="auto"):
    """'cuda' or 'mps' if that GPU is usable here (auto: CUDA, else MPS), else None."""
    import torch

    cuda = torch.cuda.is_available()
    import dlwpt

    mps = dlwpt._mps_available() and dlwpt._mps_failure() is None  # not a virtual Mac's MPS that cannot allocate
    if requested == "cuda":
        return "cuda" if cuda else None
    if requested == "mps":
        return "mps" if mps else None
    return "cuda" if cuda else "mps" if mps else None


def gpu_name(device_type):
    import torch

    if device_type == "cuda":
        return torch.cuda.get_device_name(0)
    if device_type == "mps":
        return f"Apple MPS ({platform.machine()})"
    return "none (CPU)"


def check_proof(proof, device_type, expected_models, needs_memory=True):
    """Problems (a list of sentences) with a notebook's proof of having worked on ``device_type``."""
    problems = []
    for name in expected_models:
        devices = proof["modules"].get(name)
        if devices is None:
            problems.append(f"model {name!r} not found in the kernel at the end")
        elif not devices or any(d.split(":")[0] != device_type for d in devices):
            problems.append(f"model {name!r} is on {', '.join(devices) or 'no device'}, not {device_type}")
    if needs_memory and not proof.get("memory_bytes"):
        problems.append(f"no {device_type} memory was allocated in the kernel")
    return problems


def run_with_proof(path, device, quick, env):
    """Execute a notebook in its folder with DLWPT_DEVICE=device (plus ``env``), then the proof cell.

    Returns a dict: seconds, proof (or None), error (None, or the failing cell's message), text (what it printed).
    """
    from nbclient.exceptions import CellExecutionError

    result = {"seconds": None, "proof": None, "error": None, "text": ""}
    start = time.perf_counter()
    try:
        nb = run_notebook(path, env=dict(env, DLWPT_DEVICE=device, DLWPT_QUICK="1" if quick else "0"),
                          timeout=CELL_TIMEOUT, last_cell=PROOF_CELL)
    except CellExecutionError as err:
        message = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()
        result["error"] = message[-1][:500] if message else type(err).__name__
    result["seconds"] = round(time.perf_counter() - start, 1)
    if result["error"] is None:
        result["proof"] = marked_json(nb.cells[-1].outputs, PROOF_MARK)
        if result["proof"] is None:
            result["error"] = "the device-proof cell printed no proof"
        result["text"] = "\n".join("".join(o.get("text", "") for o in c.outputs if o.get("output_type") == "stream")
                                   for c in nb.cells if c.cell_type == "code")
    return result


def going_further_speeds(text):
    """samples/s of both loops and their ratio, from the going-further cell of 2_birds_airplanes."""
    speeds = {kind: float(v) for kind, v in re.findall(r"(DataLoader|Preloaded) loop:\s+([\d.]+) samples/s", text)}
    ratio = re.search(r"Speed-up:\s+([\d.]+)x", text)
    if not speeds:
        return None
    return {"dataloader_samples_per_s": speeds.get("DataLoader"), "preloaded_samples_per_s": speeds.get("Preloaded"),
            "ratio": float(ratio.group(1)) if ratio else None}


def chapter2_mode(requested):
    if requested != "auto":
        return requested
    return "standins" if standins.FACTS.is_file() else "real"


STANDIN_NOTE = "the tests' offline stand-in (JPEG re-encoded CIFAR-10): times are real, accuracies are not the book's"


def cifar_source():
    """(Where chapter 7 reads CIFAR-10 from, whether this call activated the tests' stand-in for the kernels)."""
    if standins.OFFICIAL_DIR.is_dir():
        return "official CIFAR-10 (data-unversioned/p1ch7)", False
    if os.environ.get(standins.ROOT_ENV):  # already active (a test run)
        return STANDIN_NOTE, False
    if standins.TARBALL.is_file():
        standins.activate()
        return STANDIN_NOTE, True
    return "downloaded by the notebooks (torchvision)", False


def check(notebooks, device_type, target, skip_cpu, ch2):
    """Run the notebooks; returns the report dict."""
    import torch

    rows, env = [], {}
    folder = Path(tempfile.mkdtemp(prefix="dlwpt-gpu-check-"))
    try:
        if ch2 == "standins" and any(nb.startswith("p1ch2/") for nb in notebooks):
            standins.build_chapter2(folder / "ch2", env)  # TORCH_HOME, HF_HOME, DLWPT_DATA, ... for the kernels
        for nb in notebooks:
            if nb.startswith("p1ch2/") and ch2 == "skip":
                rows.append({"notebook": nb, "device": target, "status": "skipped (--ch2 skip)"})
                continue
            book = nb.startswith(CHAPTER7)
            runs = [(target, device_type)]
            if book and not skip_cpu and target != "cpu":  # a --fake-gpu run is on the CPU already
                runs.append(("cpu", "cpu"))
            for device, kind in runs:
                print(f"  {nb:42s} {device:6s} {'book settings' if book else 'quick mode':13s}", end=" ", flush=True)
                res = run_with_proof(ROOT / nb, device, quick=not book, env=env if nb.startswith("p1ch2/") else {})
                row = {"notebook": nb, "device": device, "mode": "book" if book else "quick",
                       "seconds": res["seconds"], "proof": res["proof"], "problems": []}
                if res["error"]:
                    row["status"], row["problems"] = "error", [res["error"]]
                elif nb in DEVICE_NOTEBOOKS:
                    row["problems"] = check_proof(res["proof"], kind, DEVICE_NOTEBOOKS[nb], needs_memory=kind != "cpu")
                    row["status"] = "proof failed" if row["problems"] else "ok, on " + kind
                else:
                    row["status"] = "ok (no device work to prove)"
                speeds = going_further_speeds(res["text"]) if nb.endswith("2_birds_airplanes.ipynb") else None
                if speeds:
                    row["going_further"] = speeds
                rows.append(row)
                print(f"{res['seconds']:8.1f} s  {row['status']}" + "".join(f"\n      - {p}" for p in row["problems"]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    gpu_seconds, cpu_seconds, ratio = chapter7_times(rows, target)
    return {
        "gpu": gpu_name(device_type) if target != "cpu" else "none: the CPU run as if it were the GPU (--fake-gpu)",
        "device": target,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "chapter2": ch2,
        "notebooks": rows,
        "chapter7_book_seconds": {"gpu": gpu_seconds, "cpu": cpu_seconds},
        "chapter7_gpu_over_cpu": ratio,
        "ok": all(r["status"].startswith(("ok", "skipped")) for r in rows),
    }


def chapter7_times(rows, target):
    """Seconds of the chapter 7 notebooks (book settings) on the GPU and on the CPU, and GPU/CPU."""
    def total(device):
        secs = [r["seconds"] for r in rows if r["notebook"].startswith(CHAPTER7) and r["device"] == device
                and r.get("mode") == "book" and r["status"].startswith("ok")]
        return round(sum(secs), 1) if secs else None

    gpu, cpu = total(target), total("cpu") if target != "cpu" else None
    return gpu, cpu, round(gpu / cpu, 3) if gpu and cpu else None


def write_report(report, out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# GPU check",
        "",
        f"GPU: {report['gpu']}; torch {report['torch']}; Python {report['python']}; chapter 2: {report['chapter2']}; "
        f"chapter 7 data: {report.get('cifar', 'n/a')}.",
        "",
        "| notebook | device | mode | seconds | status | GPU memory | models on |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["notebooks"]:
        proof = r.get("proof") or {}
        memory = proof.get("memory_bytes")
        memory = f"{memory / 2**20:.0f} MiB" if memory else "-"
        models = ", ".join(f"{k}: {'/'.join(v)}" for k, v in sorted(proof.get("modules", {}).items())) or "-"
        status = r["status"] + "".join(f"; {p}" for p in r.get("problems", []))
        lines.append(f"| {r['notebook']} | {r['device']} | {r.get('mode', '-')} | {r.get('seconds', '-')} | {status} "
                     f"| {memory} | {models} |")
    ch7 = report["chapter7_book_seconds"]
    lines += ["", f"Chapter 7 at the book's settings: {ch7['gpu']} s on {report['device']}, {ch7['cpu']} s on the CPU; "
              f"GPU/CPU time ratio: {report['chapter7_gpu_over_cpu']}."]
    for r in report["notebooks"]:
        if r.get("going_further"):
            g = r["going_further"]
            lines.append(f"Going further on {r['device']}: DataLoader loop {g['dataloader_samples_per_s']} samples/s, "
                         f"preloaded {g['preloaded_samples_per_s']} samples/s, ratio {g['ratio']}x.")
    lines += ["", "Result: " + ("OK" if report["ok"] else "FAILED")]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["auto", "cuda", "mps"], default="auto", help="the GPU to check")
    parser.add_argument("--skip-cpu", action="store_true", help="do not time chapter 7 on the CPU")
    parser.add_argument("--ch2", choices=["auto", "standins", "real", "skip"], default="auto",
                        help="chapter 2's weights: the tests' stand-ins or the real downloads (see above)")
    parser.add_argument("--notebooks", nargs="+", help="only these notebooks (paths from the repository root)")
    parser.add_argument("--out", default=str(OUT_DIR), help="folder for report.json and report.md")
    parser.add_argument("--fake-gpu", action="store_true",
                        help="tests only: pretend a CUDA GPU is here but run on the CPU; every proof must fail")
    args = parser.parse_args(argv)

    import torch

    if args.fake_gpu:
        device_type, target = "cuda", "cpu"
    else:
        device_type = find_gpu(args.device)
        if device_type is None:
            what = {"auto": "no CUDA or Apple MPS GPU", "cuda": "no CUDA GPU", "mps": "no Apple MPS GPU"}[args.device]
            print(f"gpu-check: {what} here (torch {torch.__version__}); nothing to check, nothing was run.")
            return 0
        target = device_type
    notebooks = [from_command_line(nb) for nb in args.notebooks] if args.notebooks else notebook_keys()
    unknown = [nb for nb in notebooks if not (ROOT / nb).is_file()]
    if unknown:
        parser.error(f"no such notebook: {', '.join(unknown)}")
    ch2 = chapter2_mode(args.ch2)
    cifar, activated = cifar_source() if any(nb.startswith(CHAPTER7) for nb in notebooks) else ("not used", False)
    print(f"gpu-check on {gpu_name(device_type) if not args.fake_gpu else 'the CPU (--fake-gpu test run)'}, "
          f"torch {torch.__version__}; chapter 2: {ch2}; chapter 7 data: {cifar}")
    try:
        report = check(notebooks, device_type, target, args.skip_cpu, ch2)
    finally:
        if activated:
            standins.deactivate()
    report["cifar"] = cifar
    out = write_report(report, args.out)
    print(f"\nChapter 7 at the book's settings: {report['chapter7_book_seconds']}; "
          f"GPU/CPU ratio {report['chapter7_gpu_over_cpu']}")
    print(f"Report: {out / 'report.md'} and report.json. Result: {'OK' if report['ok'] else 'FAILED'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
