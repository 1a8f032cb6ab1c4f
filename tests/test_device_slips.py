"""A CPU-only guard against device slips (a model on the device called on CPU data, or the reverse): it reads the
notebooks' code, tracking where each name lives, in order and as if each cell were re-run after the whole notebook
(issue 9). Names it cannot place escape it; ``make gpu-check`` on a real GPU is the real test."""

import ast
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from tools.notebooks import notebook_keys

ROOT = Path(__file__).resolve().parents[1]
FACTORIES = {"tensor", "ones", "zeros", "rand", "randn", "randperm", "arange", "linspace", "empty", "full",
             "as_tensor", "from_numpy", "eye", "ones_like", "zeros_like"}
MODEL_MAKERS = re.compile(r"(^|\.)(nn\.\w+|models\.\w+|hub\.load|from_pretrained|deepcopy|ResNetGenerator|fc_model|"
                          r"train)$")
MOVES = ("to", "cuda", "cpu")


def _call_name(node):
    return ast.unparse(node.func) if isinstance(node, ast.Call) else ""


class Placement(ast.NodeVisitor):
    """Walks cells, tracking where names live (True: device, False: CPU, None: unknown); collects slips."""

    def __init__(self):
        self.where = {}  # name -> True/False/None
        self.models = set()  # names bound to a model or a loss
        self.slips = []

    def place(self, node):  # None for constants too: scalars mix with any device
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
            model = self.where.get(func.id) if isinstance(func, ast.Name) else None
            return self.agree([*node.args, *(k.value for k in node.keywords)], ast.unparse(node), model)
        if _call_name(node) == "next":
            return False  # a batch drawn from a loader: on the CPU
        if isinstance(func, ast.Attribute) and not ast.unparse(func.value).startswith(("torch", "nn", "np", "plt")):
            return self.place(func.value)  # a method: where its tensor lives
        return self.agree(node.args, ast.unparse(node)) if node.args else None

    def device_arg(self, arg):
        text = ast.unparse(arg)
        if text.startswith(("device", "where", "torch.device(device")):  # the notebooks' names for the device
            return True
        if "cpu" in text:
            return False
        return None

    def is_model(self, func):
        if isinstance(func, ast.Name):
            return func.id in self.models
        return isinstance(func, ast.Call) and bool(MODEL_MAKERS.search(_call_name(func)))  # nn.NLLLoss()(...)

    def agree(self, parts, text, start=None):
        """The common placement of parts; a slip if some are on the device and others on the CPU."""
        places = {self.place(p) for p in parts} | {start}
        places.discard(None)
        if len(places) > 1:
            self.slips.append((self.cell.splitlines()[0], text))
            return None
        return places.pop() if places else None

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
        while isinstance(node, ast.Call) and getattr(node.func, "attr", None) in {"to", "eval", "train", "cuda", "cpu"}:
            node = node.func.value
        if isinstance(node, ast.Name):
            return node.id in self.models
        return bool(MODEL_MAKERS.search(_call_name(node)))

    def visit_Assign(self, node):  # (``if``, ``with`` and the rest: their statements in order, by generic_visit)
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
        for stmt in node.body:
            self.visit(stmt)

    def visit_FunctionDef(self, node):
        saved = (dict(self.where), set(self.models))
        for arg in node.args.args:
            self.where[arg.arg] = None
        for stmt in node.body:
            self.visit(stmt)
        self.where, self.models = saved
        self.where[node.name] = None

    def visit_Return(self, node):
        if node.value is not None:
            self.place(node.value)

    def run(self, source):
        self.cell = source
        for stmt in ast.parse(TransformerManager().transform_cell(source)).body:  # as IPython runs it (magics)
            self.visit(stmt)


def find_slips(sources):
    """Slips in a notebook's code cells (in order, then each cell after the first .to(device) re-run at the end)."""
    walker = Placement()
    for src in sources:
        walker.run(src)
    first = next((i for i, src in enumerate(sources) if re.search(r"\.to\((device|where)", src)), len(sources))
    slips = list(walker.slips)
    for src in sources[first + 1 :]:
        again = Placement()
        again.where, again.models = dict(walker.where), set(walker.models)
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


@pytest.mark.parametrize("cells, slips, fix", [
    (["model = nn.Sequential(nn.Linear(3, 1)).to(device)\nloss_fn = nn.MSELoss()",  # a batch left on the CPU
      "for imgs, labels in train_loader:\n    out = model(imgs.view(imgs.shape[0], -1))\n"
      "    loss = loss_fn(out, labels.to(device))"],
     ["model(imgs.view(imgs.shape[0], -1))"], ("-1))", "-1).to(device))")),
    (["model = nn.Linear(3, 2)\nmodel.to(device)", "x = torch.ones(4, 3)\ny = model(x)"],  # moved in place
     ["model(x)"], ("(4, 3)", "(4, 3, device=device)")),
    (["model = nn.Linear(3, 2).to(device)",  # labels compared on the CPU
      "x, labels = next(iter(val_loader))\npred = model(x.to(device)).argmax(dim=1)\nok = pred == labels"],
     ["pred == labels"], ("== labels", "== labels.to(device)")),
    (["model = nn.Sequential(nn.Linear(3072, 2)).to(device)",  # issue 9: right in order, wrong when re-run
      "model = nn.Sequential(nn.Linear(3072, 2))\nloss_fn = nn.CrossEntropyLoss()",  # chapter 7's In[24]
      "imgs, labels = next(iter(val_loader))\nlogits = model(imgs.view(imgs.shape[0], -1))\n"
      "ce = nn.CrossEntropyLoss()(logits, labels)",
      "model = model.to(device)"],  # the training cell
     ["model(imgs.view(imgs.shape[0], -1))  [re-run after the whole notebook]"],
     ("next(iter(val_loader))\n", "next(iter(val_loader))\nimgs, labels = imgs.to(device), labels.to(device)\n"
      "model = model.to(device)\n")),
    (["t_range = torch.arange(20., 90.)\ncpu_model = nn.Linear(1, 1)",  # a CPU model on CPU data is no slip
      "dev_model = copy.deepcopy(cpu_model).to(device)",
      "a = cpu_model(0.1 * t_range)\nb = dev_model(0.1 * t_range).cpu()\nc = a - b"],
     ["dev_model(0.1 * t_range)"], ("dev_model(0.1 * t_range)", "dev_model((0.1 * t_range).to(device))")),
])
def test_the_guard_catches_each_slip_and_passes_its_fix(cells, slips, fix):
    assert [text for _, text in find_slips(cells)] == slips
    assert find_slips([cell.replace(*fix) for cell in cells]) == []


@pytest.mark.parametrize("device_type, waits_on", [("cuda", ["cuda"]), ("mps", ["mps"]), ("cpu", [])])
def test_going_further_clock_waits_for_cuda_and_mps(device_type, waits_on):
    """Chapter 7's going-further ``synchronize()``, run with a stand-in torch that records which GPU it waited on."""
    cells = nbformat.read(ROOT / "p1ch7" / "2_birds_airplanes.ipynb", as_version=4).cells
    (cell,) = [c.source for c in cells if "def synchronize(" in c.source]
    (func,) = [n for n in ast.parse(cell).body if isinstance(n, ast.FunctionDef) and n.name == "synchronize"]
    waited = []
    gpu = {name: SimpleNamespace(synchronize=lambda name=name: waited.append(name)) for name in ["cuda", "mps"]}
    scope = {"torch": SimpleNamespace(**gpu), "device": SimpleNamespace(type=device_type)}
    exec(compile(ast.Module(body=[func], type_ignores=[]), "going-further", "exec"), scope)
    scope["synchronize"]()
    assert waited == waits_on and cell.count("synchronize()") >= 3  # defined, called before and after the timing
