"""Chapter 3 on a fresh run: the book's printed results, and no warnings from its own cells."""

import pytest

NB = "p1ch3/1_tensors.ipynb"


@pytest.fixture(scope="module")
def nb(executed_notebook):
    return executed_notebook(NB)


@pytest.mark.parametrize(
    "cell, printed",
    [
        ("# In[4]\nimport torch", "tensor([1., 1., 1.])"),
        ("# In[12]\npoints.shape", "torch.Size([3, 2])"),
        ("# In[15]", "tensor(1.)"),
        ("# In[16]", "tensor([4., 1.])"),
        # grayscale examples of section 3.5
        ("# In[4]\nimg_gray_naive", "(torch.Size([5, 5]), torch.Size([2, 5, 5]))"),
        ("# In[5]\nunsqueezed", "(torch.Size([2, 3, 5, 5]), torch.Size([2, 3, 5, 5]), torch.Size([3, 1, 1]))"),
        ("# In[6]\nimg_gray", "torch.Size([2, 5, 5])"),
        ("einsum gives the same", "True"),
        ("# In[48]", "torch.int16"),
        ("# In[51]", "tensor([0., 0., 0., 0., 0.], dtype=torch.float64)"),
        ("# In[71]", "(torch.Size([3, 2]), torch.Size([2, 3]))"),
        # storage, offset, stride
        ("# In[17]", "tensor([4., 1., 5., 3., 2., 1.])"),
        ("# In[18]", "4.0"),
        ("# In[20]", "tensor([[2., 1.],\n        [5., 3.],\n        [2., 1.]])"),
        ("# In[21]", "2"),
        ("# In[22]", "torch.Size([2])"),
        ("# In[24]", "(2, 1)"),
        ("# In[26]", "2"),
        ("# In[27]", "(1,)"),
        ("# In[28]", "tensor([[ 4.,  1.],\n        [10.,  3.],\n        [ 2.,  1.]])"),
        ("# In[29]", "tensor([[4., 1.],\n        [5., 3.],\n        [2., 1.]])"),
        ("# In[31]", "tensor([[4., 5., 2.],\n        [1., 3., 1.]])"),
        ("# In[32]", "True"),
        ("# In[33]", "(2, 1)"),
        ("# In[34]", "(1, 2)"),
        ("# In[36]", "torch.Size([5, 4, 3])"),
        ("# In[37]", "(20, 5, 1)"),
        ("# In[38]", "(1, 5, 20)"),
        ("# In[39]", "True"),
        ("# In[40]", "False"),
        ("# In[42]", "tensor([4., 1., 5., 3., 2., 1.])"),
        ("# In[43]", "(1, 2)"),
        ("# In[45]", "(3, 1)"),
        ("# In[46]", "tensor([4., 5., 2., 1., 3., 1.])"),
    ],
)
def test_printed_result_matches_book(nb, cell, printed):
    assert nb.result(cell) == printed


def test_broadcasting_examples(nb):
    assert nb.result("x + 10") == "tensor([11, 12, 13])"
    assert "[30, 60, 90]" in nb.result("a_row * b_col")
    out = nb.result("result = m + t")
    assert out.startswith("(torch.Size([2, 2, 3]),")
    assert "[14, 25, 36]" in out and "[41, 52, 63]" in out


def test_named_tensor_cells_are_skipped_on_torch_without_them(nb):
    import torch

    has_named = hasattr(torch.Tensor, "refine_names")
    printed = nb.text("HAS_NAMED_TENSORS = hasattr")
    assert f"named tensors available: {has_named}" in printed
    if not has_named:
        assert nb.text("# In[8]: runs only") == ""


def test_serialized_files_round_trip(nb):
    assert nb.result("# In[60]").startswith("tensor([[1., 1., 1., 1.],")
    assert nb.result("# In[63]") == "tensor([[1., 1., 1., 1.],\n        [1., 1., 1., 1.]])"


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


def test_exercises(executed_notebook):
    ex = executed_notebook("p1ch3/exercises_solutions.ipynb")
    assert ex.result("c = b[1:, 1:]") == "(torch.Size([2, 2]), 4, (3, 1))"
    assert ex.result("a.size(), a.storage_offset()") == "(torch.Size([9]), 0, (1,))"
    assert "RuntimeError" in ex.text("a.cos_()")
