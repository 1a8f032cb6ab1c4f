"""A CPU-only guard against device slips: a model on the device called on data left on the CPU (or the reverse).

On a CPU every tensor is on the CPU, so running the notebooks cannot show such a slip. This test reads the code
instead. It follows, cell by cell, where each name's tensor or model lives: on the device (made by
``.to(device)``, ``.cuda()``, ``device=...``, or returned by a model on the device), on the CPU (tensor factories
without ``device=``, batches drawn from a loader or dataset by ``for`` or ``next``, ``.cpu()``), or unknown
(function parameters, anything else).
Then every call of a model or loss, and every arithmetic or comparison, must not mix the device with the CPU:

1. in order, top to bottom;
2. once more for each cell after the notebook's first ``.to(device)``, as if re-run after the whole notebook ran
   (names bound as at the end): the re-run case of issue 9.

What it cannot catch: anything flowing through names it cannot place (function parameters, values returned by
the notebooks' own helpers, containers), device changes made by library code, and models it does not recognise
as models (it knows ``nn.*``, ``models.*``, ``torch.hub.load``, ``from_pretrained``, ``deepcopy`` and the
notebooks' model-building helpers). ``make gpu-check`` on a real GPU remains the real test.
"""

import ast
import copy
import re
from pathlib import Path

import nbformat
import pytest

from tools.notebooks import notebook_keys

ROOT = Path(__file__).resolve().parents[1]
DEVICE_NAMES = {"device", "where"}  # what the notebooks pass to .to(...) for the chosen device
FACTORIES = {"tensor", "ones", "zeros", "rand", "randn", "randperm", "arange", "linspace", "empty", "full",
             "as_tensor", "from_numpy", "eye", "ones_like", "zeros_like"}
MODEL_MAKERS = re.compile(r"(^|\.)(nn\.\w+|models\.\w+|hub\.load|from_pretrained|deepcopy|ResNetGenerator|fc_model|"
                          r"train)$")
MOVES = ("to", "cuda", "cpu")
MODEL_PARAMS = {"model", "m", "loss_fn", "netG"}  # function parameters that hold a model or a loss


def _call_name(node):
    return ast.unparse(node.func) if isinstance(node, ast.Call) else ""


class Placement(ast.NodeVisitor):
    """Walks cells, tracking where names live (True: device, False: CPU, None: unknown); collects slips."""

    def __init__(self):
        self.where = {}  # name -> True/False/None
        self.models = set()  # names bound to a model or a loss
        self.slips = []
        self.cell = ""

    # --- where an expression lives ---
    def place(self, node):
        if isinstance(node, ast.Constant):
            return None  # scalars mix with any device
        if isinstance(node, ast.Name):
            return self.where.get(node.id)
        if isinstance(node, (ast.Subscript, ast.Attribute, ast.Starred)):
            return self.place(node.value)
        if isinstance(node, (ast.BinOp, ast.Compare)):
            parts = [node.left, node.right] if isinstance(node, ast.BinOp) else [node.left, *node.comparators]
            return self.agree(parts, ast.unparse(node))
        if isinstance(node, ast.UnaryOp):
            return self.place(node.operand)
        if isinstance(node, ast.Call):
            return self.place_call(node)
        return None

    def place_call(self, node):
        func = node.func
        if isinstance(func, (ast.Attribute, ast.Call)):  # walk the chain first: x.to(...) must not hide a slip in x
            self.place(func.value if isinstance(func, ast.Attribute) else func)
        if any(k.arg == "device" for k in node.keywords):
            return self.device_arg(next(k.value for k in node.keywords if k.arg == "device"))
        if isinstance(func, ast.Attribute):
            if func.attr == "to" and node.args:
                return self.device_arg(node.args[0])
            if func.attr == "cuda":
                return True
            if func.attr == "cpu":
                return False
            if func.attr in FACTORIES and ast.unparse(func.value) == "torch":
                return False
        if self.is_model(func):
            return self.model_call(node)
        if _call_name(node) == "next":
            return False  # a batch drawn from a loader: on the CPU
        if isinstance(func, ast.Attribute) and not ast.unparse(func.value).startswith(("torch", "nn", "np", "plt")):
            return self.place(func.value)  # a method: where its tensor lives
        return self.agree(node.args, ast.unparse(node)) if node.args else None

    def device_arg(self, arg):
        text = ast.unparse(arg)
        if text in DEVICE_NAMES or text.startswith(("device", "torch.device(device")):
            return True
        if "cpu" in text:
            return False
        return None

    def is_model(self, func):
        if isinstance(func, ast.Name):
            return func.id in self.models
        return isinstance(func, ast.Call) and bool(MODEL_MAKERS.search(_call_name(func)))  # nn.NLLLoss()(...)

    def model_call(self, node):
        model = self.where.get(node.func.id) if isinstance(node.func, ast.Name) else None
        return self.agree([*node.args, *(k.value for k in node.keywords)], ast.unparse(node), model)

    def agree(self, parts, text, start=None):
        """The common placement of parts; a slip if some are on the device and others on the CPU."""
        places = {self.place(p) for p in parts} | {start}
        places.discard(None)
        if len(places) > 1:
            self.slips.append((self.cell.splitlines()[0], text))
            return None
        return places.pop() if places else None

    # --- binding names ---
    def bind(self, target, value_node, place):
        if isinstance(target, ast.Name):
            self.where[target.id] = place
            if value_node is not None and self.makes_model(value_node):
                self.models.add(target.id)
            elif value_node is not None:
                self.models.discard(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            values = value_node.elts if isinstance(value_node, (ast.Tuple, ast.List)) else [None] * len(target.elts)
            for t, v in zip(target.elts, values):
                self.bind(t, v, self.place(v) if v is not None else place)

    def makes_model(self, node):
        while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
            "to", "eval", "train", "cuda", "cpu"
        ):
            node = node.func.value
        if isinstance(node, ast.Name):
            return node.id in self.models
        return bool(MODEL_MAKERS.search(_call_name(node)))

    def visit_Assign(self, node):
        self.generic_visit(node)
        place = self.place(node.value)
        for target in node.targets:
            self.bind(target, node.value, place)

    def visit_AugAssign(self, node):
        self.place(node.value)

    def visit_Expr(self, node):
        place = self.place(node.value)
        call = node.value
        moved = isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr in MOVES
        if moved and isinstance(call.func.value, ast.Name) and call.func.value.id in self.models:
            self.where[call.func.value.id] = place  # model.to(device) moves the model in place

    def visit_For(self, node):
        self.place(node.iter)
        literal = isinstance(node.iter, (ast.List, ast.Tuple))
        self.bind(node.target, None, None if literal else False)  # batches from a loader or dataset: CPU
        if literal and isinstance(node.target, (ast.Tuple, ast.List)):  # for model, where in [(m, device), ...]
            for t in node.target.elts:
                if isinstance(t, ast.Name) and any(
                    isinstance(e, (ast.Tuple, ast.List)) and any(isinstance(x, ast.Name) and x.id in self.models
                                                                 for x in e.elts) for e in node.iter.elts):
                    self.models.add(t.id)
                    break
        for stmt in node.body:
            self.visit(stmt)

    def visit_With(self, node):
        for stmt in node.body:
            self.visit(stmt)

    def visit_If(self, node):
        for stmt in node.body + node.orelse:
            self.visit(stmt)

    def visit_FunctionDef(self, node):
        saved = (dict(self.where), set(self.models))
        for arg in node.args.args:
            self.where[arg.arg] = None
            if arg.arg in MODEL_PARAMS:
                self.models.add(arg.arg)
        for stmt in node.body:
            self.visit(stmt)
        self.where, self.models = saved
        self.where[node.name] = None

    def visit_Return(self, node):
        if node.value is not None:
            self.place(node.value)

    def run(self, source):
        self.cell = source
        lines = [line for line in source.splitlines() if not line.startswith(("%", "!"))]  # IPython magics
        tree = ast.parse("\n".join(lines))
        for stmt in tree.body:
            self.visit(stmt)


def find_slips(sources):
    """Slips in a notebook's code cells (in order, then each cell after the first .to(device) re-run at the end)."""
    walker = Placement()
    first_device_cell = None
    for i, src in enumerate(sources):
        walker.run(src)
        if first_device_cell is None and re.search(r"\.to\((device|where)", src):
            first_device_cell = i
    slips = list(walker.slips)
    end = walker
    for src in sources[first_device_cell + 1 :] if first_device_cell is not None else []:
        again = copy.copy(end)
        again.where, again.models, again.slips = dict(end.where), set(end.models), []
        again.run(src)
        slips += [(cell, text + "  [re-run after the whole notebook]") for cell, text in again.slips
                  if (cell, text) not in walker.slips]
    return sorted(set(slips))


DEVICE_NOTEBOOKS = [key for key in notebook_keys() if "get_device" in (ROOT / key).read_text(encoding="utf-8")]


@pytest.mark.parametrize("relpath", DEVICE_NOTEBOOKS)
def test_no_device_slips(relpath):
    nb = nbformat.read(ROOT / relpath, as_version=4)
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    assert find_slips(sources) == []


# --- the guard itself catches what it is for ---


def test_catches_a_batch_left_on_the_cpu():
    sources = [
        "model = nn.Sequential(nn.Linear(3, 1)).to(device)\nloss_fn = nn.MSELoss()",
        "for imgs, labels in train_loader:\n    out = model(imgs.view(imgs.shape[0], -1))\n"
        "    loss = loss_fn(out, labels.to(device))",
    ]
    assert [text for _, text in find_slips(sources)] == ["model(imgs.view(imgs.shape[0], -1))"]
    sources[1] = sources[1].replace("-1))", "-1).to(device))")
    assert find_slips(sources) == []


def test_a_model_moved_in_place_counts_as_on_the_device():
    sources = ["model = nn.Linear(3, 2)\nmodel.to(device)", "x = torch.ones(4, 3)\ny = model(x)"]
    assert [text for _, text in find_slips(sources)] == ["model(x)"]


def test_catches_labels_compared_on_the_cpu():
    sources = ["model = nn.Linear(3, 2).to(device)",
               "x, labels = next(iter(val_loader))\npred = model(x.to(device)).argmax(dim=1)\nok = pred == labels"]
    assert [text for _, text in find_slips(sources)] == ["pred == labels"]


def test_catches_the_issue_9_rerun_slip_and_passes_its_fix():
    """Chapter 7's loss check before the fix: right in order, wrong when re-run after the deeper model trained."""
    before = [
        "model = nn.Sequential(nn.Linear(3072, 2)).to(device)",  # an earlier model on the device
        "model = nn.Sequential(nn.Linear(3072, 2))\nloss_fn = nn.CrossEntropyLoss()",  # In[24], on the CPU
        "# not a listing: the two losses agree\nimgs, labels = next(iter(val_loader))\n"
        "logits = model(imgs.view(imgs.shape[0], -1))\nce = nn.CrossEntropyLoss()(logits, labels)",
        "model = model.to(device)",  # the training cell
    ]
    slips = find_slips(before)
    assert slips and all("re-run" in text for _, text in slips)
    assert {cell for cell, _ in slips} == {"# not a listing: the two losses agree"}
    fixed = list(before)
    fixed[2] = fixed[2].replace(
        "next(iter(val_loader))\n",
        "next(iter(val_loader))\nimgs, labels = imgs.to(device), labels.to(device)\nmodel = model.to(device)\n",
    )
    assert find_slips(fixed) == []


def test_a_model_kept_on_the_cpu_on_cpu_data_is_no_slip():
    sources = ["t_range = torch.arange(20., 90.)\ncpu_model = nn.Linear(1, 1)",
               "dev_model = copy.deepcopy(cpu_model).to(device)",
               "a = cpu_model(0.1 * t_range)\nb = dev_model((0.1 * t_range).to(device)).cpu()\nc = a - b"]
    assert find_slips(sources) == []
    sources[2] = sources[2].replace("dev_model((0.1 * t_range).to(device))", "dev_model(0.1 * t_range)")
    assert len(find_slips(sources)) == 1


# --- timing on a GPU waits for the queued work ---


@pytest.mark.parametrize("device_type, waits_on", [("cuda", ["cuda"]), ("mps", ["mps"]), ("cpu", [])])
def test_going_further_clock_waits_for_cuda_and_mps(device_type, waits_on):
    """Chapter 7's going-further `synchronize()`, run with a stand-in torch that records which GPU it waited on."""
    from types import SimpleNamespace

    nb = nbformat.read(ROOT / "p1ch7" / "2_birds_airplanes.ipynb", as_version=4)
    (cell,) = [c.source for c in nb.cells if "samples per second, book's DataLoader loop" in c.source]
    (func,) = [n for n in ast.parse(cell).body if isinstance(n, ast.FunctionDef) and n.name == "synchronize"]
    waited = []
    fake_torch = SimpleNamespace(cuda=SimpleNamespace(synchronize=lambda: waited.append("cuda")),
                                 mps=SimpleNamespace(synchronize=lambda: waited.append("mps")))
    scope = {"torch": fake_torch, "device": SimpleNamespace(type=device_type)}
    exec(compile(ast.Module(body=[func], type_ignores=[]), "going-further", "exec"), scope)
    scope["synchronize"]()
    assert waited == waits_on
    assert cell.count("synchronize()") >= 3  # defined, then called before and after the timed epochs
