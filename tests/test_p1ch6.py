"""Chapter 6 on a fresh run: nn.Linear and nn.Sequential on the thermometer data, the activation-function
figures, and the exercise solutions.

The book's weights and losses come from unseeded draws (split and initial weights). The notebook is seeded
so that the split holds out the book's two readings, but its initial weights differ, so these tests check
what must hold: falling finite losses, a linear fit near the book's. What is printed exactly every time (the
models and their parameters' names and shapes, the tanh values) is the committed output of cells tagged
nbval-check-output, which nbval compares.
"""

import re

import pytest

NN = "p1ch6/1_neural_networks.ipynb"
ACT = "p1ch6/2_activation_functions.ipynb"
EXERCISES = "p1ch6/exercises_solutions.ipynb"

NUMBER = r"-?(?:\d+\.?\d*(?:e[+-]?\d+)?|inf|nan)"


def numbers(text):
    text = re.sub(r"grad_fn=<\w+>", "", text)  # AddmmBackward0 holds no figure
    return [float(x) for x in re.findall(NUMBER, text)]


def epoch_losses(text):
    """{epoch: (training loss, validation loss)} from the chapter's log lines."""
    pattern = r"Epoch (\d+), Training loss (\S+), Validation loss (\S+)"
    return {int(e): (float(t.rstrip(",")), float(v)) for e, t, v in re.findall(pattern, text)}


def has_png(outputs):
    return any("image/png" in o.get("data", {}) for o in outputs)


@pytest.fixture(scope="module")
def nn_nb(executed_notebook):
    return executed_notebook(NN)


def test_split(nn_nb):
    train, val = [numbers(t) for t in re.findall(r"tensor\(\[(.*?)\]\)", nn_nb.result("# In[3]: "))]
    assert len(train) == 9 and len(val) == 2 and sorted(train + val) == list(range(11))


def test_linear_module_outputs_a_batch(nn_nb):
    out = nn_nb.result("# In[5]\n")
    assert out.count("[") == 3 and "grad_fn=<AddmmBackward0>" in out  # a 2 x 1 batch
    weight = nn_nb.result("# In[6]\n")
    assert weight.startswith("Parameter containing:\ntensor([[") and "requires_grad=True" in weight
    single = numbers(nn_nb.result("# In[8]\n"))[0]
    batch = numbers(nn_nb.result("# In[9]: "))
    assert len(batch) == 10 and set(batch) == {single}
    w, b = numbers(weight)[0], numbers(nn_nb.result("# In[7]\n"))[0]
    assert single == pytest.approx(w + b, abs=2e-4)  # the module computes w * 1 + b
    assert nn_nb.result("# In[12]\n").count("Parameter containing:") == 2


@pytest.mark.parametrize("cell", ["# In[14]: ", "# In[15]\n"])
def test_linear_model_trains_to_the_books_fit(nn_nb, cell):
    text = nn_nb.text(cell)
    losses = epoch_losses(text)
    assert sorted(losses) == [1, 1000, 2000, 3000]
    train = [losses[e][0] for e in sorted(losses)]
    assert all(a > b for a, b in zip(train, train[1:]))  # falling
    assert train[-1] < 4
    w, b = numbers(text.split("Parameter containing:")[1])[0], numbers(text.split("Parameter containing:")[2])[0]
    assert w == pytest.approx(5.43, abs=0.05) and b == pytest.approx(-17.97, abs=0.3)


def test_named_parameter_prints(nn_nb):
    assert re.fullmatch(r"Parameter containing:\ntensor\(\[\S+\], requires_grad=True\)", nn_nb.result("# In[21]\n"))


def test_neural_network_fits_the_held_out_readings(nn_nb):
    text = nn_nb.text("# In[22]\n")
    losses = epoch_losses(text)
    assert sorted(losses) == [1, 1000, 2000, 3000, 4000, 5000]
    assert losses[5000][0] < losses[1000][0] < losses[1][0] and losses[5000][0] < 4
    output = numbers(text.split("output")[1].split("answer")[0])
    answer = numbers(text.split("answer")[1].split("hidden")[0])
    assert answer == [-4.0, 21.0]  # the book's two held-out readings
    assert output == pytest.approx(answer, abs=3)
    assert len(numbers(text.split("hidden")[1])) == 8  # gradient of the 8 x 1 hidden weight


def test_device_run_matches_cpu(nn_nb):
    text = nn_nb.text("device = get_device()")
    assert text.startswith("Using device: ")
    assert "same fit on the device as on the CPU: True" in text


def test_nn_notebook_prints_no_warning(nn_nb):
    assert nn_nb.stderr() == ""


# ---------------------------------------------------------------- figures


@pytest.mark.parametrize("notebook, cell", [(NN, "# In[23]\n"), (ACT, "# Figure 6.5"), (ACT, "# Figure 6.6")])
def test_figures_render(executed_notebook, notebook, cell):
    assert has_png(executed_notebook(notebook).find(cell)[1])


# ---------------------------------------------------------------- exercises (section 6.5)


@pytest.fixture(scope="module")
def ex_nb(executed_notebook):
    return executed_notebook(EXERCISES)


def test_hidden_size_and_learning_rate_grid(ex_nb):
    rows = {}
    for line in ex_nb.text("grid = {}").splitlines()[1:]:
        hidden, lr, train, val, dist = line.split()
        rows[int(hidden), float(lr)] = (float(train), float(val), float(dist))
    assert len(rows) == 12
    # what the markdown claims: at lr 1e-3 more hidden units give a straighter curve ...
    dists = [rows[h, 1e-3][2] for h in (2, 8, 32, 128)]
    assert all(a > b for a, b in zip(dists, dists[1:]))
    # ... and at 32 and 128 units a larger learning rate a more curved one
    for h in (32, 128):
        assert rows[h, 1e-2][2] > rows[h, 1e-3][2]
    assert rows[2, 1e-2][0] > 20 and rows[2, 1e-2][2] < 0.1  # saturated: flat and useless


def test_overfitting_exercise(ex_nb):
    text = ex_nb.text("overfit_model, (loss_train, loss_val)")
    (book_train, book_val), (over_train, over_val) = re.findall(r"training loss (\S+), validation loss (\S+)", text)
    assert float(over_train) < float(book_train)
    assert float(over_val) > 10 * float(over_train) and float(over_val) > 5 * float(book_val)
    assert has_png(ex_nb.find("overfit_model, (loss_train, loss_val)")[1])


def test_wine_model_learns(ex_nb):
    baseline = float(re.search(r"predicting the mean: (\S+)", ex_nb.text("wine = np.loadtxt")).group(1))

    losses = epoch_losses(ex_nb.text("wine_model = nn.Sequential"))
    assert sorted(losses) == [1, 500, 1000, 1500, 2000, 2500, 3000]
    train = [losses[e][0] for e in sorted(losses)]
    assert all(a > b for a, b in zip(train, train[1:]))
    assert losses[3000][1] < 0.8 * baseline  # clearly better than always guessing the mean

    summary = ex_nb.text('print(f"standardized inputs, 3000 epochs')
    standardized_val, raw_val = [float(v) for v in re.findall(r"validation (\S+)", summary)[:2]]
    assert standardized_val == losses[3000][1] and raw_val > standardized_val
    assert "thermometer:" in ex_nb.text("thermo_seconds = time.perf_counter() - start")
    assert has_png(ex_nb.find("correlations = ")[1])
