"""Where the real CycleGAN weights were fetched (the published repository's push jobs: online, no ../shared), the
two notebooks that read them run in place with nbval instead of being left out for the stand-in layout."""

import types
from pathlib import Path

from dlwpt.fetch import Entry, git_blob_id
from tests.standins import pretrained

ROOT = Path(__file__).resolve().parents[1]


def config(real_downloads=False):
    return types.SimpleNamespace(getoption=lambda name, default=None: real_downloads)


def entry_for(blob):
    return Entry(path=pretrained.CYCLEGAN_WEIGHTS, size=None, sha256=None, url="https://example.invalid",
                         git_blob=blob)


def test_only_verified_weights_count(tmp_path, monkeypatch):
    weights = tmp_path / pretrained.CYCLEGAN_WEIGHTS
    assert not pretrained.real_cyclegan_weights(tmp_path)  # absent
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"the published weights, standing in")
    published = entry_for(git_blob_id(weights))
    monkeypatch.setattr("dlwpt.fetch.load_manifest", lambda: [published])
    assert pretrained.real_cyclegan_weights(tmp_path)
    weights.write_bytes(b"a stand-in, or a download cut short")  # another file: checked again
    assert not pretrained.real_cyclegan_weights(tmp_path)


def test_collection_in_place_with_the_real_weights(monkeypatch):
    notebook = ROOT / "p1ch2" / "3_cyclegan.ipynb"
    other = ROOT / "p1ch2" / "2_pre_trained_networks.ipynb"
    monkeypatch.setattr(pretrained, "real_cyclegan_weights", lambda: False)
    assert pretrained.pytest_ignore_collect(notebook, config()) is True  # stand-in layout (tests/test_p1ch2.py)
    assert pretrained.pytest_ignore_collect(other, config()) is None
    assert pretrained.pytest_ignore_collect(notebook, config(real_downloads=True)) is None
    monkeypatch.setattr(pretrained, "real_cyclegan_weights", lambda: True)
    assert pretrained.pytest_ignore_collect(notebook, config()) is None  # nbval runs it in place
    assert pretrained.cyclegan_in_place(config())
