"""Chapter 7's speed, and proof that the notebooks run on a GPU, measured side by side in one run on this machine.

`make bench`, `make gpu-check`: what each measures and writes is in p1ch7/README.md. Without a GPU gpu-check exits 0."""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dlwpt  # noqa: E402
from tools import standins  # noqa: E402
from tools.notebooks import ROOT, notebook_keys, run_notebook  # noqa: E402

BATCH, EPOCHS = 64, 5
# matmul FLOPs per training sample of 3072-512-2: forward, weight gradients, the second layer's input gradient
FLOPS_PER_SAMPLE = 2 * (3072 * 512 + 512 * 2) * 2 + 2 * 512 * 2
MEAN, STD = (0.4915, 0.4823, 0.4468), (0.2470, 0.2435, 0.2616)
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
def timed(work, device):
    """Seconds ``work()`` takes, counting the work it queued on a GPU."""
    sync = {"cuda": torch.cuda.synchronize, "mps": torch.mps.synchronize}.get(device.type, lambda: None)
    sync()
    start = time.perf_counter()
    work()
    sync()
    return time.perf_counter() - start


def matmul_peak(device, reps=10):
    """Best float32 GFLOP/s of an n x n matmul (TF32 off: true float32)."""
    n = 8192 if device.type == "cuda" else 2048
    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n**3 / min(timed(lambda: a @ b, device) for _ in range(reps)) / 1e9


def load_cifar2():
    """The chapter's cifar2 list (normalized tensors, labels 0/1), and which data it is."""
    from torchvision import datasets, transforms

    root, source = standins.OFFICIAL_DIR.parent, "official CIFAR-10"
    if not (standins.OFFICIAL_DIR / "batches.meta").is_file():
        root, source = standins.build_standin(), "offline stand-in (JPEG re-encoded CIFAR-10)"
        standins.install_in_process(root)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    cifar10 = datasets.CIFAR10(str(root), train=True, download=False, transform=tf)
    return [(img, {0: 0, 2: 1}[label]) for img, label in cifar10 if label in (0, 2)], source


def throughputs(cifar2, device, with_compile):
    """[(loop, sorted samples/s of each epoch)]: the book's DataLoader loop (cell 21), then tensors preloaded on the
    device (optionally torch.compile'd)."""
    x = torch.stack([img for img, _ in cifar2]).view(len(cifar2), -1).to(device)
    y = torch.tensor([label for _, label in cifar2], device=device)
    loader = torch.utils.data.DataLoader(cifar2, batch_size=BATCH, shuffle=True)

    def book_batches():
        for imgs, labels in loader:
            yield imgs.view(imgs.shape[0], -1).to(device), labels.to(device)

    def preloaded_batches():
        perm = torch.randperm(len(y), device=device)
        for start in range(0, len(y), BATCH):
            yield x[perm[start : start + BATCH]], y[perm[start : start + BATCH]]

    loops = [("book DataLoader loop", book_batches, False), ("preloaded tensors", preloaded_batches, False)]
    rows = []
    for label, batches, compiled in loops + [("preloaded + torch.compile", preloaded_batches, True)] * with_compile:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3072, 512), nn.Tanh(), nn.Linear(512, 2), nn.LogSoftmax(dim=1)).to(device)
        optimizer, run = torch.optim.SGD(model.parameters(), lr=1e-2), torch.compile(model) if compiled else model

        def epoch():
            for imgs, labels in batches():
                loss = nn.functional.nll_loss(run(imgs), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

        epoch()  # warm-up (and compilation)
        rows.append((label, sorted(len(y) / timed(epoch, device) for _ in range(EPOCHS))))
    return rows


def run_with_proof(key, device=None, book=False):
    """A row of the report: ``key`` run with its proof (``DLWPT_DEVICE=device`` unless None; quick unless ``book``)."""
    from nbclient.exceptions import CellExecutionError

    env = {"DLWPT_QUICK": "0" if book else "1"} | ({"DLWPT_DEVICE": device} if device else {})
    row = {"notebook": key, "device": device or "default", "mode": "book" if book else "quick", "proof": None,
           "problems": [], "text": ""}
    start = time.perf_counter()
    try:
        nb, row["proof"] = run_notebook(ROOT / key, env=env, timeout=3 * 3600, proof=True)  # book settings on a CPU
        row["text"] = "".join("".join(o.get("text", "")) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    except CellExecutionError as err:
        lines = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()
        row["problems"] = [lines[-1][:500] if lines else type(err).__name__]
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def check_proof(proof, device_type, models, needs_memory=True):
    """Problems (sentences) with a notebook's proof of having worked on ``device_type``."""
    problems = []
    for name in models:
        devices = proof["modules"].get(name)
        if devices is None:
            problems.append(f"model {name!r} not found in the kernel at the end")
        elif any(d.split(":")[0] != device_type for d in devices):
            problems.append(f"model {name!r} is on {', '.join(devices)}, not {device_type}")
    if needs_memory and not proof.get("memory_bytes"):
        problems.append(f"no {device_type} memory was allocated in the kernel")
    return problems


def going_further_speeds(text):
    """samples/s of both loops and their ratio, from the going-further cell of 2_birds_airplanes (None: no cell)."""
    speeds = {kind: float(v) for kind, v in re.findall(r"(DataLoader|Preloaded) loop:\s+([\d.]+) samples/s", text)}
    ratio = re.search(r"Speed-up:\s+([\d.]+)x", text)
    return speeds | {"ratio": float(ratio.group(1)) if ratio else None} if speeds else None


def cifar10_source():
    """Where chapter 7's kernels read CIFAR-10 from (activating the tests' stand-in for them where needed)."""
    if standins.OFFICIAL_DIR.is_dir():
        return "official CIFAR-10 (data-unversioned/p1ch7)"
    if os.environ.get(standins.ROOT_ENV) or standins.TARBALL.is_file():
        standins.activate()
        return "the tests' offline stand-in (JPEG re-encoded CIFAR-10): times are real, accuracies not the book's"
    return "downloaded by the notebooks (torchvision)"


def chapter7_times(rows, device):
    """Seconds of the chapter 7 notebooks (book settings) on ``device`` and on the CPU, and their ratio."""
    def total(on):
        secs = [r["seconds"] for r in rows if r["mode"] == "book" and r["device"] == on and not r["problems"]]
        return round(sum(secs), 1) if secs else None

    gpu, cpu = total(device), total("cpu") if device != "cpu" else None
    return {"gpu": gpu, "cpu": cpu, "gpu_over_cpu": round(gpu / cpu, 3) if gpu and cpu else None}


def find_gpu():
    """'cuda' or 'mps' where dlwpt picks that GPU by itself (a virtual Mac's MPS that cannot compute is no GPU)."""
    with mock.patch.dict(os.environ, {"DLWPT_DEVICE": ""}):
        kind = dlwpt.get_device().type
    return None if kind == "cpu" else kind


def gpu_check(keys=None, gpu=None, device=None, out=ROOT / "outputs" / "gpu_check"):
    """Run ``keys`` (all) on ``device`` (the GPU; the tests pass 'cpu'), prove the ``gpu`` did their work, run chapter
    7 again on the CPU, write the report; True when all is well."""
    gpu = gpu or find_gpu()
    if gpu is None:
        print(f"gpu-check: no CUDA or Apple MPS GPU here (torch {torch.__version__}); nothing to check, nothing "
              "was run.")
        return True
    device, keys = device or gpu, keys or notebook_keys()
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"Apple MPS ({platform.machine()})"
    name = f"none: the CPU, checked as if it were {gpu}" if device == "cpu" else name
    cifar = cifar10_source() if any(k.startswith("p1ch7/") for k in keys) else "not used"
    print(f"gpu-check on {name}, torch {torch.__version__}; chapter 7 data: {cifar}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="dlwpt-gpu-check-") as folder, mock.patch.dict(os.environ):
        if standins.FACTS.is_file() and any(k.startswith("p1ch2/") for k in keys):
            standins.build_chapter2(Path(folder), os.environ)  # TORCH_HOME, HF_HOME, DLWPT_DATA for the kernels
        for key in keys:
            book = key.startswith("p1ch7/")
            for on, kind in [(device, gpu)] + [("cpu", "cpu")] * (book and device != "cpu"):
                print(f"  {key:42s} {on:6s} {'book settings' if book else 'quick mode':13s}", end=" ", flush=True)
                row = run_with_proof(key, on, book)
                if not row["problems"] and key in DEVICE_NOTEBOOKS:
                    row["problems"] = check_proof(row["proof"], kind, DEVICE_NOTEBOOKS[key], kind != "cpu")
                row["going_further"] = going_further_speeds(row.pop("text"))
                rows.append(row)
                print(f"{row['seconds']:8.1f} s  {'FAILED' if row['problems'] else 'ok'}"
                      + "".join(f"\n      - {p}" for p in row["problems"]))
    report = {"gpu": name, "device": device, "torch": torch.__version__, "python": platform.python_version(),
              "cifar10": cifar, "notebooks": rows, "chapter7_book_seconds": chapter7_times(rows, device),
              "ok": not any(r["problems"] for r in rows)}
    write_report(report, out)
    print(f"\nChapter 7 at the book's settings: {report['chapter7_book_seconds']}\nReport: {out / 'report.md'} "
          f"and report.json. Result: {'OK' if report['ok'] else 'FAILED'}")
    return report["ok"]


def write_report(report, out):
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    ch7, lines = report["chapter7_book_seconds"], [f"# GPU check: {'OK' if report['ok'] else 'FAILED'}", ""]
    lines += [f"{report['gpu']}; torch {report['torch']}; Python {report['python']}; CIFAR-10: {report['cifar10']}.",
              f"Chapter 7 at the book's settings: {ch7['gpu']} s on {report['device']}, {ch7['cpu']} s on the CPU; "
              f"GPU/CPU time ratio: {ch7['gpu_over_cpu']}.", "", "| notebook | device | mode | seconds | problems | "
              "GPU memory (bytes) | models on | going further (samples/s) |", "| --- " * 8 + "|"]
    lines += [f"| {r['notebook']} | {r['device']} | {r['mode']} | {r['seconds']} | {'; '.join(r['problems'])} | "
              f"{(r['proof'] or {}).get('memory_bytes')} | {(r['proof'] or {}).get('modules')} | {r['going_further']} |"
              for r in report["notebooks"]]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def bench(with_compile, skip_suite, skip_book):
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores, python {platform.python_version()}")
    cifar2, source = load_cifar2()
    print(f"CIFAR-2 data: {source} ({len(cifar2)} training images)")
    print(f"matmul FLOPs per training sample (3072-512-2): {FLOPS_PER_SAMPLE / 1e6:.2f} M")
    print(f"\n== matmul peak and CIFAR-2 training throughput ({EPOCHS} timed epochs after 1 warm-up each) ==")
    for device in dict.fromkeys([torch.device("cpu"), dlwpt.get_device()]):
        peak = matmul_peak(device)
        rows = throughputs(cifar2, device, with_compile)
        peak = max(peak, matmul_peak(device))  # measured again after the loops: the best of both
        what = torch.cuda.get_device_name(device) if device.type == "cuda" else \
            f"{device.type}: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
        print(f"\n[{what}]\n  float32 matmul peak: {peak:9.1f} GFLOP/s")
        print(f"  {'loop':27s} {'best epoch':>10s} {'median':>10s}  (samples/s)  best as fraction of peak")
        for label, speeds in rows:
            best, base = speeds[-1], rows[0][1][-1]
            print(f"  {label:27s} {best:10.0f} {speeds[len(speeds) // 2]:10.0f}  "
                  f"{best * FLOPS_PER_SAMPLE / 1e9 / peak:6.1%} of peak  x{best / base:.2f} vs book loop")
    if not skip_suite:
        folders = sorted({key.split("/")[0] for key in notebook_keys()})
        print(f"\n== notebook suite in quick mode, each cell once: pytest --nbval-lax {' '.join(folders)} ==")
        cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q", "-p", "no:cacheprovider",
               "-p", "no:nbval_rerun", *folders]  # make test also re-runs every cell
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, DLWPT_QUICK="1"), capture_output=True, text=True)
        summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"  wall time {time.perf_counter() - start:.1f} s, exit code {proc.returncode}: {summary}")
    if not skip_book:
        print(f"\n== chapter 7 notebooks at the book's settings; data: {cifar10_source()} ==")
        rows = [run_with_proof(key, book=True) for key in notebook_keys() if key.startswith("p1ch7/")]
        for row in rows:  # with the accuracies the notebook printed
            print(f"  {row['notebook']:32s} {row['seconds']:8.1f} s  {'; '.join(row['problems']) or 'ok'}")
            print("".join(f"      {line}\n" for line in row["text"].splitlines()
                          if line.startswith(("Training accuracy", "Validation accuracy"))), end="")
        total = sum(row["seconds"] for row in rows)
        print(f"  chapter 7 total: {total:.1f} s ({total / 60:.1f} min)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["bench", "gpu-check"])
    parser.add_argument("--compile", action="store_true", help="bench: also time the preloaded loop, compiled")
    parser.add_argument("--skip-suite", action="store_true", help="bench: do not time the notebook suite")
    parser.add_argument("--skip-book", action="store_true", help="bench: do not time chapter 7 at the book's settings")
    args = parser.parse_args(argv)
    if args.command == "bench":
        return bench(args.compile, args.skip_suite, args.skip_book)
    return 0 if gpu_check() else 1


if __name__ == "__main__":
    sys.exit(main())
