"""Chapter 2 on a fresh run.

Offline (the default) the notebooks run on the stand-ins of tests/standins/pretrained.py:
random weights and tiny random GPT-2/BLIP models under the real file names and repository
ids. Tests on them check structure only (shapes, types, ranges) and say so; the book's
figures that do not depend on trained weights (image sizes, parameter counts, the
CycleGAN file's layout) are checked as such. ``pytest --real-downloads`` (internet needed)
also runs the tests marked ``real_downloads``, which check the trained results.
"""

import ast
import hashlib
import json
from pathlib import Path

import pytest

from conftest import run_notebook
from tests.standins.pretrained import FACTS, standin_dir, use_real_downloads

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "p1ch2"
NB_PRETRAINED = "p1ch2/2_pre_trained_networks.ipynb"
NB_CYCLEGAN = "p1ch2/3_cyclegan.ipynb"
NB_ZOOS = "p1ch2/4_model_zoos.ipynb"
NB_EXERCISES = "p1ch2/exercises_solutions.ipynb"


@pytest.fixture(scope="module")
def labels():
    return [line.strip() for line in (DATA / "imagenet_classes.txt").read_text().splitlines()]


@pytest.fixture(scope="module")
def pretrained(executed_notebook):
    return executed_notebook(NB_PRETRAINED)


@pytest.fixture(scope="module")
def zoos(executed_notebook):
    return executed_notebook(NB_ZOOS)


def _from_layout_or_in_place(request, relpath):
    """Offline: run the notebook unchanged from the temporary layout whose data/ holds the stand-in weights."""
    if use_real_downloads(request.config):
        return request.getfixturevalue("executed_notebook")(relpath), ROOT
    layout = request.getfixturevalue("p1ch2_layout")
    return run_notebook(layout / relpath), layout


@pytest.fixture(scope="module")
def cyclegan(request):
    return _from_layout_or_in_place(request, NB_CYCLEGAN)


@pytest.fixture(scope="module")
def exercises(request):
    return _from_layout_or_in_place(request, NB_EXERCISES)


def _stdout(nb, contains):
    return "".join(o.get("text", "") for o in nb.find(contains)[1] if o.get("name") == "stdout")


def _warnings(nb):
    return [line for line in nb.stderr().splitlines() if "Warning" in line and "TqdmWarning" not in line]


# --- 2_pre_trained_networks -------------------------------------------------------


def test_list_models_has_the_books_entries(pretrained):
    names = ast.literal_eval(pretrained.result("# In[2]\n"))
    for name in ("alexnet", "convnext_base", "densenet121", "inception_v3", "resnet101", "vit_h_14", "wide_resnet50_2"):
        assert name in names
    assert names == sorted(names)


def test_resnet101_parameter_count_and_printout(pretrained):
    # 44.5 million parameters: the architecture's, whatever the weights
    assert int(pretrained.result("sum(p.numel()")) == 44_549_160
    printout = pretrained.result("# In[5]\n")
    assert printout.startswith("ResNet(\n  (conv1): Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2)")
    assert "(fc): Linear(in_features=2048, out_features=1000, bias=True)" in printout


def test_bobby_image_and_batch(pretrained):
    assert "image mode=RGB size=1280x720" in pretrained.result("# In[8]\n")
    assert pretrained.result("# In[10]\n") == "torch.Size([1, 3, 224, 224])"
    assert pretrained.result("# In[13]\n") == "1000"


def test_top_class_and_top5_structure_on_standin_weights(pretrained, labels):
    """Stand-in weights (random) offline: a (label, percentage) pair and five ranked pairs, not the book's figures."""
    label, pct = ast.literal_eval(pretrained.result("# In[15]\n"))
    assert label in labels and 0 < pct <= 100
    top5 = ast.literal_eval(pretrained.result("# In[16]\n"))
    assert len(top5) == 5 and all(lab in labels for lab, _ in top5)
    pcts = [p for _, p in top5]
    assert pcts == sorted(pcts, reverse=True)
    assert top5[0] == (label, pytest.approx(pct))
    assert 0 < sum(pcts) < 100


def test_weights_enum_carries_transforms_and_categories(pretrained):
    text = pretrained.text("weights.transforms()")
    assert "ImageClassification(" in text and "crop_size=[224]" in text
    top5 = ast.literal_eval(pretrained.result("weights.transforms()"))
    assert len(top5) == 5 and all(isinstance(lab, str) and 0 <= p <= 100 for lab, p in top5)


def test_pretrained_notebook_prints_no_warnings(pretrained):
    assert _warnings(pretrained) == []


@pytest.mark.real_downloads
def test_real_resnet101_sees_a_golden_retriever(pretrained):
    """Real DEFAULT (IMAGENET1K_V2) weights: the book's top-1 for bobby.jpg (its percentage differs from the book's)."""
    label, _ = ast.literal_eval(pretrained.result("# In[15]\n"))
    assert label == "golden retriever"
    assert ast.literal_eval(pretrained.result("# In[16]\n"))[0][0] == "golden retriever"
    assert ast.literal_eval(pretrained.result("weights.transforms()"))[0][0] == "golden retriever"


# --- 3_cyclegan ---------------------------------------------------------------------


def _generator_class():
    """ResNetGenerator as defined in the notebook's first code cell, built here without a kernel."""
    import nbformat

    nb = nbformat.read(ROOT / NB_CYCLEGAN, as_version=4)
    (src,) = [c.source for c in nb.cells if c.cell_type == "code" and "class ResNetGenerator" in c.source]
    scope = {}
    exec(compile(src, "ResNetGenerator", "exec"), scope)
    return scope["ResNetGenerator"]


def test_generator_state_dict_matches_published_file():
    """Names, order and shapes equal the manifest of the real horse2zebra_0.4.0.pth (shared/facts)."""
    manifest = json.loads(FACTS.read_text())["tensors"]
    state = _generator_class()().state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == [(t["name"], t["shape"]) for t in manifest]
    assert sum(v.numel() for v in state.values()) == 11_378_179


def test_generator_on_second_edition_horse_photo():
    """The published horse.jpg (5184x3456) gives a (1, 3, 256, 384) output in [-1, 1] (random weights)."""
    import torch
    from PIL import Image
    from torchvision import transforms

    torch.manual_seed(0)
    net = _generator_class()().eval()
    img = Image.open(DATA / "horse.jpg")
    assert img.size == (5184, 3456)
    batch = transforms.Compose([transforms.Resize(256), transforms.ToTensor()])(img).unsqueeze(0)
    with torch.no_grad():
        out = net(batch)
    assert out.shape == (1, 3, 256, 384)
    assert -1 <= out.min().item() < out.max().item() <= 1


def test_cyclegan_notebook_loads_weights_and_makes_an_image(cyclegan):
    nb, root = cyclegan
    assert nb.result("# In[3]\n") == "<All keys matched successfully>"
    assert nb.result("# In[8]\n") == "torch.Size([1, 3, 256, 384])"
    shape, lo, hi = nb.result("batch_out.shape, batch_out.min()").rsplit(", ", 2)
    assert shape == "(torch.Size([1, 3, 256, 384])"
    assert -1 <= float(lo) < float(hi.rstrip(")")) <= 1
    assert "image mode=RGB size=384x256" in nb.result("# In[10]\n")
    from PIL import Image

    with Image.open(root / "outputs" / "p1ch2" / "zebra.jpg") as saved:
        assert saved.size == (384, 256)
    assert _warnings(nb) == []


def test_cyclegan_run_left_the_repository_data_alone(cyclegan):
    """The stand-in weights live in the temporary layout; the book's zebra.jpg in data/ is untouched."""
    nb, root = cyclegan
    if root == ROOT:
        pytest.skip("ran in place on real files (--real-downloads)")
    standin = (root / "data" / "p1ch2" / "horse2zebra_0.4.0.pth").resolve()
    assert standin.parent == standin_dir().resolve()
    real = DATA / "horse2zebra_0.4.0.pth"
    assert not real.exists() or real.resolve() != standin
    digest = hashlib.sha256((DATA / "zebra.jpg").read_bytes()).hexdigest()
    assert digest == "6926445cdc96c8397de6688a23989a412b50e2919eedd4f2a89448255926d7a4"


def test_exercise_bobby_through_the_generator(exercises):
    nb, _ = exercises
    assert nb.result("batch_t = preprocess(img)") == "((1280, 720), torch.Size([1, 3, 256, 455]))"
    printed = _stdout(nb, "bobby_zebra.jpg")
    assert printed.startswith("torch.Size([1, 3, 256, 456])")
    assert "size=456x256" in nb.result("bobby_zebra.jpg")


# --- 4_model_zoos ----------------------------------------------------------------------


def test_hub_resnet18_runs(zoos):
    assert zoos.result("torch.hub.load(") == "torchvision.models.resnet.ResNet"
    label, pct = ast.literal_eval(zoos.result("resnet18_model(batch)"))
    assert isinstance(label, str) and 0 < pct <= 100


def test_gpt2_pipeline_continues_the_prompt(zoos):
    """Tiny random GPT-2 offline: checks the pipeline's output structure, not the book's sentence."""
    (result,) = ast.literal_eval(zoos.result("# In[4]\n"))
    assert set(result) == {"generated_text"}
    text = result["generated_text"]
    assert text.startswith("AI models are so smart they can replace my") and len(text) > 44


@pytest.mark.parametrize("cell", ["# In[7]\n", "zebra_path = Path("])
def test_blip_captions_and_shows_the_image(zoos, cell):
    """Tiny random BLIP offline: a non-empty caption string is printed under a displayed thumbnail."""
    outputs = zoos.find(cell)[1]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    caption = _stdout(zoos, cell).strip().splitlines()[-1]
    assert caption and not caption.startswith("..")


def test_zoos_notebook_prints_no_warnings(zoos):
    assert _warnings(zoos) == []


@pytest.mark.real_downloads
def test_real_blip_sees_a_horse(zoos):
    assert "horse" in _stdout(zoos, "# In[7]\n")


# --- the stand-ins themselves --------------------------------------------------------


def test_standins_are_where_the_notebooks_look(request):
    if use_real_downloads(request.config):
        pytest.skip("no stand-ins with --real-downloads")
    import os

    from torchvision import models

    base = standin_dir()
    assert base is not None and Path(os.environ["TORCH_HOME"]).parent == base
    name = Path(models.ResNet101_Weights.DEFAULT.url).name
    assert name == "resnet101-cd907fc2.pth"
    assert (base / "torch" / "hub" / "checkpoints" / name).is_file()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
