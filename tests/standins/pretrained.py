"""Offline stand-ins for chapter 2's downloads (loaded by the root conftest as a pytest plugin).

Chapter 2's notebooks download pretrained weights, a PyTorch Hub repository and
Hugging Face models. No hub is reachable in the test environment, so when the
run collects chapter 2 this plugin builds, in a temporary folder:

- ``$TORCH_HOME/hub/checkpoints/``: randomly initialised weights under the file
  names torchvision downloads for the weights the notebooks ask for
  (``IMAGENET1K_V1``: ``resnet101-63fe2227.pth``, ``resnet18-f37072fd.pth``);
- ``$TORCH_HOME/hub/pytorch_vision_v<installed torchvision>/hubconf.py``: a local
  stand-in for ``github.com/pytorch/vision`` at the tag the notebook pins (its entry
  points come from the installed torchvision); ``torch.hub`` uses a cached
  ``owner_repo_ref`` folder without going online;
- ``$HF_HUB_CACHE``: tiny random GPT-2 and BLIP models, with tokenizers, under
  the real repository ids (``gpt2``, ``Salesforce/blip-image-captioning-large``),
  and ``HF_HUB_OFFLINE=1``;
- ``horse2zebra_0.4.0.pth``: random tensors with the names and shapes of the
  published CycleGAN file (``../shared/facts/``; without it the CycleGAN tests
  skip, naming the missing file). The fixture ``p1ch2_layout``
  gives a temporary copy of the repository layout (``p1ch2/`` notebooks plus
  ``data/p1ch2/`` linking the real data files and this stand-in) so the CycleGAN
  notebook runs unchanged without writing into the repository's ``data/``.
  nbval therefore does not collect ``p1ch2/3_cyclegan.ipynb`` and
  ``p1ch2/exercises_solutions.ipynb``; tests/test_p1ch2.py runs them there.

The stand-ins only let the notebooks' code run as a reader runs it online; they
carry no trained knowledge. ``pytest --real-downloads`` skips all of this (the
notebooks then download the real files, so the internet is needed) and enables
the tests marked ``real_downloads``.
"""

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest

from tests.shared import SHARED, shared_file

ROOT = Path(__file__).resolve().parents[2]
FACTS_FILE = "facts/horse2zebra_0.4.0.state_dict_manifest.json"  # relative to ../shared
FACTS = SHARED / FACTS_FILE
OPTION = "--real-downloads"
# Notebooks that read ../data/p1ch2/horse2zebra_0.4.0.pth: run from the temporary layout.
LAYOUT_NOTEBOOKS = ("3_cyclegan.ipynb", "exercises_solutions.ipynb")
GPT2_ID = "gpt2"
BLIP_ID = "Salesforce/blip-image-captioning-large"
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
ENV_VARS = ("TORCH_HOME", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")

_state = {"dir": None, "saved_env": None}


def pytest_addoption(parser):
    parser.addoption(
        OPTION,
        action="store_true",
        default=False,
        help="chapter 2: download the real pretrained weights and models (needs the internet) instead of "
        "building offline stand-ins; also runs the tests marked real_downloads",
    )


def use_real_downloads(config):
    return bool(config.getoption(OPTION, default=False))


CYCLEGAN_WEIGHTS = "p1ch2/horse2zebra_0.4.0.pth"


def real_cyclegan_weights(data_dir=ROOT / "data"):
    """True when ``data/`` holds the published CycleGAN weights (``python -m dlwpt.fetch`` downloads them where the
    internet is reachable, as in the published repository's workflow): the two notebooks that read them then run
    in place on the real file, with nbval, instead of from the stand-in layout."""
    from dlwpt.fetch import check_file, load_manifest

    path = Path(data_dir) / CYCLEGAN_WEIGHTS
    if not path.is_file():
        return False
    (entry,) = [e for e in load_manifest() if e.path == CYCLEGAN_WEIGHTS]
    key = (str(path), path.stat().st_size, path.stat().st_mtime_ns)
    if key not in _verified:
        _verified[key] = check_file(path, entry) is None
    return _verified[key]


_verified = {}


def cyclegan_in_place(config):
    """The CycleGAN notebooks run in place (real weights), not from the stand-in layout."""
    return use_real_downloads(config) or real_cyclegan_weights()


def pytest_ignore_collect(collection_path, config):
    if cyclegan_in_place(config):
        return None
    path = Path(str(collection_path))
    if path.parent.name == "p1ch2" and path.name in LAYOUT_NOTEBOOKS:
        return True  # run from the temporary layout by tests/test_p1ch2.py
    return None


def _is_chapter2(item):
    path = Path(str(item.path))
    return path.parent.name == "p1ch2" or path.name == "test_p1ch2.py"


def pytest_collection_modifyitems(session, config, items):
    real = use_real_downloads(config)
    skip = pytest.mark.skip(reason=f"needs the internet and the real downloads; run with {OPTION}")
    for item in items:
        if not real and item.get_closest_marker("real_downloads"):
            item.add_marker(skip)
    if not real and any(_is_chapter2(item) for item in items):
        build_standins()  # before any kernel starts: kernels inherit os.environ


def pytest_unconfigure(config):
    if _state["saved_env"] is not None:
        for name, value in _state["saved_env"].items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if _state["dir"] is not None:
        shutil.rmtree(_state["dir"], ignore_errors=True)
    _state.update(dir=None, saved_env=None)


def standin_dir():
    """The temporary folder of the stand-ins (None when they were not built)."""
    return _state["dir"]


def build_standins():
    if _state["dir"] is not None:
        return _state["dir"]
    base = Path(tempfile.mkdtemp(prefix="dlwpt-ch2-standins-"))
    _state["dir"] = base
    _state["saved_env"] = {name: os.environ.get(name) for name in ENV_VARS}
    torch_home, hf_home = base / "torch", base / "hf"
    os.environ.update(
        TORCH_HOME=str(torch_home),
        HF_HOME=str(hf_home),
        HF_HUB_CACHE=str(hf_home / "hub"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    make_torchvision_weights(torch_home / "hub" / "checkpoints")
    make_hub_repo(torch_home / "hub" / hub_cache_folder(vision_hub_repo()))
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # quiet pytest's output while saving
    with warnings.catch_warnings():  # transformers 4.44's notice, see _like_the_hub_tokenizer_config
        warnings.filterwarnings("ignore", message="`clean_up_tokenization_spaces` was not set", category=FutureWarning)
        make_gpt2(hf_home / "hub")
        make_blip(hf_home / "hub")
    if FACTS.is_file():  # else p1ch2_layout skips the CycleGAN tests, naming the file
        make_horse2zebra(base / "horse2zebra_0.4.0.pth")
    return base


# --- torchvision ---------------------------------------------------------------


def make_torchvision_weights(folder):
    """Random weights saved under the file names of the weights the notebooks load (IMAGENET1K_V1)."""
    import torch
    from torchvision import models

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for build, weights in (
        (models.resnet101, models.ResNet101_Weights.IMAGENET1K_V1),
        (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1),
    ):
        # random init, no download; zeroed residual branches keep the random scores small
        model = build(zero_init_residual=True)
        torch.save(model.state_dict(), folder / Path(weights.url).name)


def vision_hub_repo():
    """What 4_model_zoos passes to torch.hub.load: pytorch/vision at the installed TorchVision's tag."""
    import torchvision

    return "pytorch/vision:v" + torchvision.__version__.split("+")[0]


def hub_cache_folder(repo):
    """The folder torch.hub caches ``owner/name:ref`` in: ``owner_name_ref`` ("/" in ref -> "_")."""
    owner_name, ref = repo.split(":")
    return "_".join([*owner_name.split("/"), ref.replace("/", "_")])


def make_hub_repo(repo_dir):
    """Stand-in for the cached snapshot of github.com/pytorch/vision that torch.hub.load uses."""
    repo_dir.mkdir(parents=True, exist_ok=True)
    (repo_dir / "hubconf.py").write_text(
        '"""Test stand-in for pytorch/vision\'s hubconf.py: entry points of the installed torchvision."""\n'
        'dependencies = ["torch"]\n\n'
        "from torchvision.models import get_model_weights, get_weight  # noqa: F401\n"
        "from torchvision.models.alexnet import alexnet  # noqa: F401\n"
        "from torchvision.models.resnet import resnet18, resnet34, resnet50, resnet101, resnet152  # noqa: F401\n"
    , encoding="utf-8")


# --- Hugging Face -----------------------------------------------------------------


def _snapshot(hub_cache, repo_id):
    """The snapshot folder of ``repo_id`` in the cache layout huggingface_hub reads offline."""
    repo = Path(hub_cache) / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(FAKE_COMMIT, encoding="utf-8")
    snap = repo / "snapshots" / FAKE_COMMIT
    snap.mkdir(parents=True, exist_ok=True)
    return snap


WORDS = (
    "a an the man woman horse zebra zebras dog rider riding standing sitting on in of with and is are "
    "field desert grass sky sunny day brown white black striped back its two one there some "
    "model models smart can replace my job they so ai write code people work time world"
).split()
GPT2_PROMPT = "AI models are so smart they can replace my"  # the book's In[4]: 9 tokens for the real GPT-2


def make_gpt2(hub_cache):
    """A tiny random GPT-2 with a small byte-level BPE tokenizer, saved as repo ``gpt2``."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    snap = _snapshot(hub_cache, GPT2_ID)
    bpe = ByteLevelBPETokenizer()
    # the prompt in the corpus: like the real tokenizer, this one splits it into 9 tokens
    corpus = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))] + [GPT2_PROMPT] * 20
    bpe.train_from_iterator(corpus, vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>"])
    tok = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, model_max_length=1024)
    tok.add_special_tokens({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"})
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=256,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=eos,
        eos_token_id=eos,
        # as in the real gpt2 config: the text-generation pipeline samples
        task_specific_params={"text-generation": {"do_sample": True, "max_length": 50}},
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(snap)
    tok.save_pretrained(snap)
    _like_the_hub_tokenizer_config(snap)


def make_blip(hub_cache):
    """A tiny random BLIP captioner with a WordPiece (BERT) tokenizer, saved as the real repo id."""
    import torch
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    snap = _snapshot(hub_cache, BLIP_ID)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "[ENC]"]
    vocab = {t: i for i, t in enumerate(specials + sorted(set(WORDS)))}
    # BERT WordPiece built with `tokenizers`: transformers 4.x has no `vocab=` argument, 5.x ignores `vocab_file=`
    wordpiece = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    wordpiece.decoder = decoders.WordPiece()
    tok = BertTokenizerFast(
        tokenizer_object=wordpiece,
        bos_token="[DEC]",
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    image_processor = BlipImageProcessor(
        size={"height": 384, "width": 384},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    config = BlipConfig(
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=32
        ),
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=32,
            encoder_hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=64,
            bos_token_id=ids["[DEC]"],
            eos_token_id=ids["[SEP]"],
            sep_token_id=ids["[SEP]"],
            pad_token_id=ids["[PAD]"],
        ),
        projection_dim=32,
        image_text_hidden_size=32,
    )
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config)
    with torch.no_grad():  # keep the random captioner from ending (or emitting special tokens) at once
        special_ids = torch.tensor(list(ids.values()))
        model.text_decoder.cls.predictions.decoder.bias[special_ids] = -1e4
    model.save_pretrained(snap)
    BlipProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(snap)
    _like_the_hub_tokenizer_config(snap)


def _like_the_hub_tokenizer_config(snap):
    """Drop ``clean_up_tokenization_spaces``, which the real gpt2 and BLIP tokenizer configs do not set,
    so that transformers 4.44 prints its FutureWarning about it offline just as it does for readers."""
    path = Path(snap) / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.pop("clean_up_tokenization_spaces", None)
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")


# --- CycleGAN ---------------------------------------------------------------------


def make_horse2zebra(path):
    """Random tensors with every name and shape of the published horse2zebra_0.4.0.pth."""
    import torch

    gen = torch.Generator().manual_seed(0)
    state = {}
    for entry in json.loads(FACTS.read_text(encoding="utf-8"))["tensors"]:
        state[entry["name"]] = torch.randn(*entry["shape"], generator=gen) * 0.05
    torch.save(state, path)


@pytest.fixture(scope="session")
def p1ch2_layout(request, tmp_path_factory):
    """A temporary copy of the repository layout for chapter 2: ``p1ch2/`` (its notebooks),
    ``data/p1ch2/`` (links to the real data files plus the stand-in ``horse2zebra_0.4.0.pth``) and
    ``dlwpt/`` (a copy: a kernel with the layout on ``PYTHONPATH`` imports it, so its
    ``REPO_ROOT`` is the layout and ``require_data`` accepts the chapter folder there)."""
    if cyclegan_in_place(request.config):
        pytest.skip("the notebooks run in place on the real files (--real-downloads, or the real CycleGAN weights)")
    shared_file(FACTS_FILE)  # skips, naming it, where ../shared is absent
    base = build_standins()
    root = tmp_path_factory.mktemp("p1ch2-layout")
    (root / "p1ch2").mkdir()
    for nb in (ROOT / "p1ch2").glob("*.ipynb"):
        shutil.copy(nb, root / "p1ch2" / nb.name)
    data = root / "data" / "p1ch2"
    data.mkdir(parents=True)
    for f in (ROOT / "data" / "p1ch2").iterdir():
        if f.name != "horse2zebra_0.4.0.pth":
            (data / f.name).symlink_to(f.resolve())
    (data / "horse2zebra_0.4.0.pth").symlink_to(base / "horse2zebra_0.4.0.pth")
    shutil.copytree(ROOT / "dlwpt", root / "dlwpt", ignore=shutil.ignore_patterns("__pycache__"))
    return root
