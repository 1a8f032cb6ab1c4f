"""The one notebook runner of the tools and the tests, its proof of what a run used, and notebook keys as the tables
write them (``p1ch7/2_birds_airplanes.ipynb``, ``/`` also on Windows)."""

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CELL_TIMEOUT = int(os.environ.get("DLWPT_CELL_TIMEOUT", "1200"))
PROOF_MARK = "DLWPT-PROOF "
# Run after a notebook's cells in the same kernel, never saved: the stand-ins and quick mode (book_run must see none),
# the device of every model the kernel holds and the GPU memory it allocated (gpu-check).
PROOF_CELL = r'''
def _dlwpt_proof():
    import json, os, sys
    import dlwpt, torch, torchvision

    cifar = sys.modules.get("torchvision.datasets.cifar")
    homes = [os.environ.get(name, "") for name in ("TORCH_HOME", "HF_HOME", "HF_HUB_CACHE")]
    proof = {"cifar10_standin": bool(cifar and getattr(cifar.CIFAR10, "_dlwpt_standin", False)),
             "quick": dlwpt.quick_mode(), "hf_offline": os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"),
             "standin_homes": [home for home in homes if "dlwpt-ch2-standins-" in home], "torch": torch.__version__,
             "torchvision": torchvision.__version__, "device": str(dlwpt.get_device()), "modules": {},
             "memory_bytes": None}
    found = {name: obj for name, obj in globals().items() if not name.startswith("_") and name not in ("In", "Out")}
    found.update({name + ".model": obj.model for name, obj in found.items()  # a transformers pipeline
                  if isinstance(getattr(obj, "model", None), torch.nn.Module)})
    for name, obj in found.items():
        tensors = [*obj.parameters(), *obj.buffers()] if isinstance(obj, torch.nn.Module) else []
        if tensors:  # modules without weights (nn.Tanh(), transforms) live nowhere
            proof["modules"][name] = sorted({str(t.device) for t in tensors})
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        proof["memory_bytes"] = torch.cuda.max_memory_allocated()
    elif torch.backends.mps.is_available():
        proof["memory_bytes"] = torch.mps.current_allocated_memory()
    return "DLWPT-PROOF " + json.dumps(proof)


print(_dlwpt_proof())
del _dlwpt_proof
'''


def notebook_keys():
    return sorted(path.relative_to(ROOT).as_posix() for path in ROOT.glob("p1ch*/*.ipynb"))


def run_notebook(path, env=None, timeout=CELL_TIMEOUT, proof=False, before="", after=""):
    """Run All of ``path`` in its folder; return the executed notebook. ``before``/``after``: code run in the same
    kernel before/after the notebook's cells, never kept; with ``after`` also what it printed, with ``proof`` what
    PROOF_CELL reported. ``env``: variables changed for the kernel only (None unsets one). A failing cell raises."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    after = PROOF_CELL if proof else after
    nb.cells = [nbformat.v4.new_code_cell(before)] * bool(before) + nb.cells
    nb.cells += [nbformat.v4.new_code_cell(after)] * bool(after)
    kernel_env = {name: value for name, value in {**os.environ, **(env or {})}.items() if value is not None}
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(Path(path).parent)}}).execute(env=kernel_env)
    nb.cells = nb.cells[bool(before):]
    if not after:
        return nb
    printed = "".join("".join(o.get("text", "")) for o in nb.cells.pop().outputs if o.get("output_type") == "stream")
    if not proof:
        return nb, printed
    return nb, json.loads(printed.split(PROOF_MARK)[-1]) if PROOF_MARK in printed else None
