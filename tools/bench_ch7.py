"""Chapter 7 speed, measured side by side on this machine.

    .venv/bin/python tools/bench_ch7.py [--epochs 3] [--compile] [--skip-suite] [--ch7-book estimate|full|skip]

1. float32 matmul peak of each device (CPU; CUDA when present), in GFLOP/s;
2. CIFAR-2 training throughput of the chapter's fully connected model (3072-512-2, batch 64, SGD lr 1e-2)
   in samples/s, for the book's DataLoader loop and for a loop over tensors preloaded on the device
   (optionally also torch.compile'd), each also as a fraction of the matmul peak (matmul FLOPs only);
3. wall time of the notebook suite (p1ch2..p1ch7) in quick mode, via pytest/nbval;
4. wall time of the chapter 7 notebooks at the book's settings: "estimate" runs them in quick mode, times
   every cell and scales the training cells by (book epochs / quick epochs); "full" runs them for real.

Data: the official CIFAR-10 in data-unversioned/p1ch7/ when present, else the offline stand-in of
tools/standins.py (same sizes, JPEG re-encoded pixels): throughput does not depend on pixel values.
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import torch
import torch.nn as nn
import torch.optim as optim

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlwpt import get_device  # noqa: E402
from tools import standins  # noqa: E402
from tools.notebooks import ROOT, run_notebook  # noqa: E402

MEAN, STD = (0.4915, 0.4823, 0.4468), (0.2470, 0.2435, 0.2616)
BATCH = 64
# matmul FLOPs per training sample of 3072-512-2: forward, weight gradients, and the input gradient of
# the second layer only (the images need no gradient)
FLOPS_PER_SAMPLE = 2 * (3072 * 512 + 512 * 2) * 2 + 2 * 512 * 2

# chapter 7 training cells: (notebook, snippet identifying the cell, quick epochs, book epochs)
CH7_TRAINING_CELLS = [
    ("2_birds_airplanes.ipynb", "# In[19]\n", 1, 5),
    ("2_birds_airplanes.ipynb", "# In[21]\n", 5, 100),
    ("2_birds_airplanes.ipynb", "training the deeper model", 5, 100),
    ("2_birds_airplanes.ipynb", "samples per second, book's DataLoader loop", 1 + 1, 3 + 1),  # incl. warm-up
    ("exercises_solutions.ipynb", "plain = train(", 3, 30),
    ("exercises_solutions.ipynb", "def one_hot", 3, 30),
    ("exercises_solutions.ipynb", "capacity = {512: plain}", 3, 30),
]
CH7_NOTEBOOKS = ["1_datasets.ipynb", "2_birds_airplanes.ipynb", "exercises_solutions.ipynb"]


def sync(device):
    """Wait for the work queued on a GPU, so the clock counts it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def matmul_peak(device, n=None, reps=10):
    """Best float32 GFLOP/s of an n x n matmul (TF32 off: true float32)."""
    n = n or (8192 if device.type == "cuda" else 2048)
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def load_cifar2():
    """The chapter's cifar2 list (normalized tensors, labels 0/1); says which data it uses."""
    from torchvision import datasets, transforms

    data_path = ROOT / "data-unversioned" / "p1ch7"
    official = datasets.CIFAR10.__new__(datasets.CIFAR10)
    official.root = str(data_path)
    if data_path.is_dir() and official._check_integrity():
        source = f"official CIFAR-10 in {data_path}"
    else:
        data_path = standins.build_standin()
        standins.install_in_process(data_path)
        source = f"offline stand-in (JPEG re-encoded CIFAR-10) in {data_path}"
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    cifar10 = datasets.CIFAR10(str(data_path), train=True, download=False, transform=tf)
    label_map = {0: 0, 2: 1}
    return [(img, label_map[label]) for img, label in cifar10 if label in [0, 2]], source


def fc_model(device):
    return nn.Sequential(nn.Linear(3072, 512), nn.Tanh(), nn.Linear(512, 2), nn.LogSoftmax(dim=1)).to(device)


def dataloader_epochs(cifar2, device, model, optimizer, loss_fn, n_epochs):
    """The book's loop (cell 21), with batches moved to the device."""
    loader = torch.utils.data.DataLoader(cifar2, batch_size=BATCH, shuffle=True)
    for _ in range(n_epochs):
        for imgs, labels in loader:
            out = model(imgs.view(imgs.shape[0], -1).to(device))
            loss = loss_fn(out, labels.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def preloaded_epochs(data, device, model, optimizer, loss_fn, n_epochs):
    """Same updates, from tensors stacked once on the device and indexed by a shuffled permutation."""
    x, y = data
    n = x.shape[0]
    for _ in range(n_epochs):
        perm = torch.randperm(n, device=device)
        for start in range(0, n, BATCH):
            idx = perm[start : start + BATCH]
            loss = loss_fn(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def throughput(loop, data, device, n_epochs, compile_model=False):
    """samples/s of each timed epoch (after a warm-up epoch); the best one is the least disturbed."""
    torch.manual_seed(0)
    model = fc_model(device)
    optimizer = optim.SGD(model.parameters(), lr=1e-2)
    run = torch.compile(model) if compile_model else model
    loop(data, device, run, optimizer, nn.NLLLoss(), 1)  # warm-up (and compilation)
    speeds = []
    for _ in range(n_epochs):
        sync(device)
        t = time.perf_counter()
        loop(data, device, run, optimizer, nn.NLLLoss(), 1)
        sync(device)
        speeds.append(10000 / (time.perf_counter() - t))
    return speeds


def bench_device(device, cifar2, n_epochs, with_compile):
    peak = matmul_peak(device)
    x = torch.stack([img for img, _ in cifar2]).view(len(cifar2), -1).to(device)
    y = torch.tensor([label for _, label in cifar2], device=device)
    rows = [("book DataLoader loop", throughput(dataloader_epochs, cifar2, device, n_epochs))]
    rows.append(("preloaded tensors", throughput(preloaded_epochs, (x, y), device, n_epochs)))
    if with_compile:
        rows.append(("preloaded + torch.compile", throughput(preloaded_epochs, (x, y), device, n_epochs, True)))
    peak = max(peak, matmul_peak(device))  # measured again after the loops: the best of both
    if device.type == "cuda":
        print(f"\n[{torch.cuda.get_device_name(device)}]")
    else:
        print(f"\n[cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads]")
    print(f"  float32 matmul peak: {peak:9.1f} GFLOP/s")
    print(f"  {'loop':27s} {'best epoch':>10s} {'median':>10s}  (samples/s)  best as fraction of peak")
    base = max(rows[0][1])
    for label, speeds in rows:
        best, median = max(speeds), sorted(speeds)[len(speeds) // 2]
        frac = best * FLOPS_PER_SAMPLE / 1e9 / peak
        print(f"  {label:27s} {best:10.0f} {median:10.0f}  {frac:6.1%} of peak  x{best / base:.2f} vs book loop")
    return peak, rows


def run_suite(folders):
    env = dict(os.environ, DLWPT_QUICK="1")
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q", "-p", "no:cacheprovider"]
    cmd += ["-p", "no:nbval_rerun"]  # each cell once, as a reader's Run All (make test also re-runs every cell)
    t = time.perf_counter()
    proc = subprocess.run(cmd + folders, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    return wall, proc.returncode, summary


def timed_run(path, quick, save_to=None):
    """Execute a notebook in its folder; returns (wall seconds, {cell source: seconds})."""
    import nbformat

    t = time.perf_counter()
    nb = run_notebook(path, env={"DLWPT_QUICK": "1" if quick else "0"}, timeout=None)
    wall = time.perf_counter() - t
    if save_to is not None:
        save_to.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save_to / path.name)
    cells = {}
    for cell in nb.cells:
        timing = cell.get("metadata", {}).get("execution", {})
        if cell.cell_type == "code" and "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            keys = ("iopub.execute_input", "shell.execute_reply")
            start, end = (datetime.fromisoformat(timing[k].rstrip("Z")) for k in keys)
            cells[cell.source] = (end - start).total_seconds()
    return wall, cells


def chapter7_book_time(mode):
    if not standins.OFFICIAL_DIR.is_dir():
        standins.activate()  # kernels read the stand-in instead of downloading
    try:
        total = 0.0
        for name in CH7_NOTEBOOKS:
            path = ROOT / "p1ch7" / name
            if mode == "full":
                wall, _ = timed_run(path, quick=False, save_to=ROOT / "outputs" / "bench_ch7")
                print(f"  {name:28s} {wall:8.1f} s measured at the book's settings (run kept in outputs/bench_ch7/)")
            else:
                quick_wall, cells = timed_run(path, quick=True)
                extra = 0.0
                for nb_name, snippet, quick_epochs, book_epochs in CH7_TRAINING_CELLS:
                    if nb_name == name:
                        (secs,) = [s for src, s in cells.items() if snippet in src]
                        extra += secs * (book_epochs / quick_epochs - 1)
                wall = quick_wall + extra
                print(f"  {name:28s} {wall:8.1f} s estimated ({quick_wall:.1f} s measured in quick mode "
                      f"+ training cells scaled to the book's epochs)")
            total += wall
        return total
    finally:
        standins.deactivate()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per loop (after 1 warm-up epoch)")
    parser.add_argument("--compile", action="store_true", help="also time the preloaded loop under torch.compile")
    parser.add_argument("--devices", default=None, help="comma-separated, e.g. cpu,cuda (default: cpu + get_device())")
    parser.add_argument("--skip-suite", action="store_true", help="do not time the quick-mode notebook suite")
    parser.add_argument("--ch7-book", choices=["estimate", "full", "skip"], default="estimate")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores, python {platform.python_version()}")
    cifar2, source = load_cifar2()
    print(f"CIFAR-2 data: {source} ({len(cifar2)} training images)")
    print(f"matmul FLOPs per training sample (3072-512-2): {FLOPS_PER_SAMPLE / 1e6:.2f} M")
    devices = args.devices.split(",") if args.devices else ["cpu"]
    if not args.devices and get_device().type != "cpu":
        devices.append(str(get_device()))
    print(f"\n== 1-2. matmul peak and CIFAR-2 training throughput ({args.epochs} timed epochs after 1 warm-up each) ==")
    for dev in devices:
        bench_device(torch.device(dev), cifar2, args.epochs, args.compile)

    if not args.skip_suite:
        folders = [f for f in ["p1ch2", "p1ch3", "p1ch4", "p1ch5", "p1ch6", "p1ch7"] if (ROOT / f).is_dir()]
        print(f"\n== 3. notebook suite in quick mode: pytest --nbval-lax {' '.join(folders)} ==")
        wall, rc, summary = run_suite(folders)
        print(f"  wall time {wall:.1f} s, exit code {rc}: {summary}")

    if args.ch7_book != "skip":
        how = "run for real" if args.ch7_book == "full" else "ESTIMATED from a timed quick-mode run"
        print(f"\n== 4. chapter 7 notebooks at the book's settings ({how}) ==")
        total = chapter7_book_time(args.ch7_book)
        print(f"  chapter 7 total: {total:.1f} s ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
