"""Chapter 3 on a fresh run. The book's printed results are the committed outputs of the cells tagged
nbval-check-output (nbval compares them on every run); these tests check what a tag cannot."""

import pytest

NB = "p1ch3/1_tensors.ipynb"


@pytest.fixture(scope="module")
def nb(executed_notebook):
    return executed_notebook(NB)


def test_named_tensor_cells_are_skipped_on_torch_without_them(nb):
    import torch

    has_named = hasattr(torch.Tensor, "refine_names")
    printed = nb.text("HAS_NAMED_TENSORS = hasattr")
    assert f"named tensors available: {has_named}" in printed
    if not has_named:
        assert nb.text("# In[8]: runs only") == ""


def test_no_warnings_from_chapter_cells(nb):
    # e.g. the TypedStorage deprecation of Tensor.storage() would show up here. On a torch that still has named
    # tensors (2.4 ... 2.13) In[7] runs and torch says once that they are experimental, as the book's text does.
    import torch

    named = "UserWarning: Named tensors and all their associated APIs are an experimental feature"
    stderr = nb.stderr()
    if hasattr(torch.Tensor, "refine_names"):
        assert named in stderr
        stderr = "\n".join(line for line in stderr.splitlines() if named not in line)
    assert "Warning" not in stderr
    for source, _ in nb.cells:
        assert ".storage()" not in source
