"""Chapter 7 on a fresh quick-mode run, ON THE CIFAR-10 STAND-IN.

The test harness (tools/standins.py) points ``datasets.CIFAR10`` at a stand-in built from
JPEG re-encoded CIFAR-10 images in a different sample order, because the official archive cannot
be downloaded offline. So these tests check exact figures only where they do not depend on the
pixel data (shapes, sizes, parameter counts, softmax), and otherwise check tolerances and
behaviour (accuracy bars, training progress), never the book's exact data-dependent numbers.
"""

import ast
import pickle
import re

import pytest

from tools import standins as standin

NB1 = "p1ch7/1_datasets.ipynb"
NB2 = "p1ch7/2_birds_airplanes.ipynb"
NBX = "p1ch7/exercises_solutions.ipynb"

# Tests that read the data (a fresh run of a notebook): the CIFAR-10 plugin skips them where neither the stand-in
# nor the official data can be had (or, in CI with DLWPT_REQUIRE_CIFAR10=1, lets them fail). The others always run.
data = pytest.mark.cifar10


@pytest.fixture(scope="module")
def nb1(executed_notebook):
    return executed_notebook(NB1)


@pytest.fixture(scope="module")
def nb2(executed_notebook):
    return executed_notebook(NB2)


@pytest.fixture(scope="module")
def nbx(executed_notebook):
    return executed_notebook(NBX)


def floats(text):
    return [float(v) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", text)]


# --- the stand-in itself -------------------------------------------------------------------


@pytest.mark.skipif(not standin.TARBALL.is_file(), reason=f"needs the CIFAR-10 stand-in's source {standin.TARBALL}")
def test_standin_has_torchvision_layout_and_cifar_sizes():
    """Stand-in: torchvision's python-version layout, 5,000/1,000 images per class, not in the repo."""
    root = standin.build_standin()
    folder = root / "cifar-10-batches-py"
    assert standin.ROOT not in root.parents  # never written into the repository
    counts = [0] * 10
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        assert batch["data"].shape == (10000, 3072) and str(batch["data"].dtype) == "uint8"
        for label in batch["labels"]:
            counts[label] += 1
    assert counts == [5000] * 10
    with open(folder / "test_batch", "rb") as f:
        assert len(pickle.load(f, encoding="latin1")["labels"]) == 10000
    with open(folder / "batches.meta", "rb") as f:
        assert pickle.load(f, encoding="latin1")["label_names"][:3] == ["airplane", "automobile", "bird"]


# --- part 1: datasets and transforms -------------------------------------------------------


@data
@pytest.mark.parametrize(
    "cell, printed",
    [
        ("# In[5]\n", "50000"),
        ("# In[9]\n", "torch.Size([3, 32, 32])"),
        ("# In[11]\n", "torch.Tensor"),
        ("# In[12]\n", "(torch.Size([3, 32, 32]), torch.float32)"),
        ("# In[15]\n", "torch.Size([3, 32, 32, 50000])"),
        ("# In[18]\n", "Normalize(mean=(0.4915, 0.4823, 0.4468), std=(0.247, 0.2435, 0.2616))"),
    ],
)
def test_datasets_printed_results(nb1, cell, printed):
    assert nb1.result(cell) == printed


@data
def test_dataset_is_a_torch_dataset(nb1):
    mro = nb1.result("# In[4]\n")
    assert "torchvision.datasets.cifar.CIFAR10" in mro and "torch.utils.data.dataset.Dataset" in mro


@data
def test_item_is_pil_image_and_label_with_its_name(nb1):
    """Stand-in: item 99 is some class (the book's is an automobile); label and name must agree."""
    m = re.fullmatch(r"\(<PIL\.Image\.Image image mode=RGB size=32x32>, (\d), '(\w+)'\)", nb1.result("# In[6]\n"))
    assert m, nb1.result("# In[6]\n")
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert names[int(m.group(1))] == m.group(2)


@data
def test_to_tensor_values_in_unit_range(nb1):
    lo, hi = floats(nb1.result("# In[13]\n").replace("tensor(0.)", "tensor(0.0)").replace("tensor(1.)", "tensor(1.0)"))
    assert 0.0 <= lo < hi <= 1.0


@data
def test_standin_channel_stats_close_to_book(nb1):
    """Stand-in (JPEG) pixels differ slightly: per-channel stats within 0.005 of the book's figures."""
    mean = floats(nb1.result("# In[16]\n"))
    std = floats(nb1.result("# In[17]\n"))
    assert mean == pytest.approx([0.4915, 0.4823, 0.4468], abs=0.005)
    assert std == pytest.approx([0.2470, 0.2435, 0.2616], abs=0.005)


@data
def test_images_render_inline(nb1, nb2):
    for nb, cells in [(nb1, ["# Figure 7.1", "# In[7]\n", "# In[14]\n", "# In[21]\n"]), (nb2, ["# In[12]\n"])]:
        for cell in cells:
            outputs = nb.find(cell)[1]
            assert any("image/png" in o.get("data", {}) for o in outputs), cell


# --- part 2: birds vs airplanes ------------------------------------------------------------


@data
def test_cifar2_sizes(nb2):
    assert nb2.result("sizes of CIFAR-2") == "(10000, 2000)"


@data
@pytest.mark.parametrize(
    "cell, printed",
    [
        ("# In[8]\n", "tensor([0.0900, 0.2447, 0.6652])"),
        ("# In[9]\n", "tensor(1.)"),
        ("# In[10]\n", "tensor([[0.0900, 0.2447, 0.6652],\n        [0.6652, 0.2447, 0.0900]])"),
        ("# In[28]\n", "(3737474, [3145728, 1024, 524288, 512, 65536, 128, 256, 2])"),
        ("# In[29]\n", "(1574402, [1572864, 512, 1024, 2])"),
        ("# In[30]\n", "(torch.Size([1024, 3072]), torch.Size([1024]))"),
    ],
)
def test_birds_printed_results(nb2, cell, printed):
    assert nb2.result(cell) == printed


@data
def test_untrained_model_outputs_probabilities(nb2):
    probs = floats(nb2.result("# In[14]\n"))
    assert len(probs) == 2 and all(0 < p < 1 for p in probs) and sum(probs) == pytest.approx(1, abs=2e-4)
    assert "SoftmaxBackward" in nb2.result("# In[14]\n")
    assert nb2.result("# In[15]\n") == f"tensor([{probs.index(max(probs))}])"


@data
def test_nll_loss_of_one_sample_and_cross_entropy(nb2):
    text = nb2.result("# In[18]\n")
    assert "NllLossBackward" in text and floats(text)[0] > 0
    text = nb2.text("the two losses agree")
    nll, ce = floats(text)
    assert nll == ce and nll > 0 and text.rstrip().endswith("equal: True")


@data
def test_book_settings_visible_and_quick_mode_shortens(nb2):
    """Readers see 100 epochs, batch 64, lr 1e-2; the quick-mode test run trains 5 epochs."""
    source, _ = nb2.find("# In[21]\n")
    for setting in ["n_epochs = 100", "batch_size=64", "learning_rate = 1e-2", "quick_mode()", ".to(device)"]:
        assert setting in source
    assert re.findall(r"Epoch: (\d+)", nb2.text("# In[21]\n")) == ["0", "1", "2", "3", "4"]
    assert len(re.findall(r"Epoch: ", nb2.text("# In[19]\n"))) == 1


def test_training_runs_on_the_helper_device():
    import nbformat

    from tests.harness import ROOT

    for name in [NB2, NBX]:
        nb = nbformat.read(ROOT / name, as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "device = get_device()" in code
        assert not re.search(r"""to\(['"]cuda|device\(['"]cuda|\.cuda\(\)""", code), name  # no hard-coded GPU


@data
def test_fully_connected_validation_accuracy(nb2):
    """Stand-in, quick mode (5 epochs): at least 0.75 (the book: 0.794 after 100 epochs on the official data)."""
    (acc,) = floats(nb2.text("# In[22]\n"))
    assert acc >= 0.75
    train_acc, val_acc = floats(nb2.text("accuracy on any loader"))
    assert val_acc == acc and train_acc >= 0.75


@data
def test_deeper_model_training_accuracy_rises(nb2):
    """Stand-in, quick mode: running training accuracy of the last epoch beats the first; validation >= 0.75."""
    text = nb2.text("training the deeper model")
    running = [float(v) for v in re.findall(r"Training accuracy \(running\): ([\d.]+)", text)]
    assert len(running) == 5 and running[-1] > running[0] + 0.01
    final_train = float(re.search(r"^Training accuracy: ([\d.]+)", text, re.M).group(1))
    final_val = float(re.search(r"^Validation accuracy: ([\d.]+)", text, re.M).group(1))
    assert final_val >= 0.75 and final_train > 0.75


@data
def test_going_further_measures_both_loops_and_preloaded_learns(nb2):
    """Speeds are only checked for being measured (on a 2-core CPU the two loops are about equally fast)."""
    text = nb2.text("samples per second, book's DataLoader loop")
    speed = {w: float(s) for w, s in re.findall(r"(\w+) loop:\s+([\d.]+) samples/s", text)}
    assert set(speed) == {"DataLoader", "Preloaded"} and min(speed.values()) > 0
    ratio = float(re.search(r"Speed-up:\s+([\d.]+)x", text).group(1))
    assert ratio == pytest.approx(speed["Preloaded"] / speed["DataLoader"], rel=0.02)
    assert float(re.search(r"preloaded loop: ([\d.]+)", text).group(1)) >= 0.75


@data
def test_no_warnings_besides_matplotlib_clipping(nb1, nb2, nbx):
    for nb in (nb1, nb2, nbx):
        lines = [line for line in nb.stderr().splitlines() if line.strip()]
        assert all(line.startswith("Clipping input data") for line in lines), lines


# --- exercises -------------------------------------------------------------------------------


@data
def test_random_crop_keeps_shape_and_changes_every_access(nbx):
    text = nbx.text("first, label1 = cifar2_crop[0]")
    assert "shape: (3, 32, 32)" in text
    assert "same pixels both times: False" in text and "differs from the uncropped image: True" in text


@data
def test_exercise_models_learn(nbx):
    """Stand-in, quick mode (3 epochs): every variant beats chance clearly on validation; the capacity table's
    parameter counts (not data-dependent) are exact."""
    capacity = nbx.text("capacity = {512: plain}")
    counts = dict(re.findall(r"hidden=(\S+)\s+params=\s*(\d+)", capacity))
    assert counts == {"512": "1574402", "32": str(3072 * 32 + 32 + 32 * 2 + 2), "2": "6152", "linear": "6146"}
    rows = capacity + nbx.text("def one_hot") + nbx.text("plain = train(")
    vals = [float(v) for v in re.findall(r"validation(?: accuracy)? ([\d.]+)", rows)]
    assert len(vals) == 4 + 2 + 2 and min(vals) > 0.65


def test_notebooks_have_no_outputs_committed():
    """Chapter 7 notebooks are committed without outputs (their tests run on a stand-in), or with those of the
    workflow's recorded book-settings run on the official data (tests/book_run.py)."""
    import nbformat

    from tests.book_run import policy_problems
    from tests.harness import ROOT

    for name in [NB1, NB2, NBX]:
        nb = nbformat.read(ROOT / name, as_version=4)
        assert policy_problems(nb, "p1ch7") == [], name
        for cell in nb.cells:
            if cell.cell_type == "code":
                ast.parse("\n".join(ln for ln in cell.source.splitlines() if not ln.startswith("%")))
