"""Offline stand-ins for the downloads the tests and tools/speed.py cannot make (CONTRIBUTING.md, "Stand-ins"): they
carry no trained knowledge and leave the notebooks unchanged. CIFAR-10: ``build_standin`` from ../shared/cifar10-jpeg,
``activate`` for the kernels. Chapter 2: ``build_chapter2`` (torchvision weights, hub folder, tiny Hugging Face
models, and a ``DLWPT_DATA`` folder with CycleGAN weights of the published layout where data/ lacks the real ones)."""

import io
import json
import os
import pickle
import shutil
import tarfile
import tempfile
import warnings
from pathlib import Path
from unittest import mock

from dlwpt.data import DATA_ENV

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DLWPT_SHARED") or ROOT.parent / "shared")  # ../shared: data mirror, CIFAR JPEGs, facts
TARBALL = SHARED / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"  # torchvision's source
OFFICIAL_DIR = ROOT / "data-unversioned" / "p1ch7" / "cifar-10-batches-py"  # where the notebooks put it
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SEED = 7  # fixed order of the stand-in samples
CACHE_ENV = "DLWPT_CIFAR_STANDIN_CACHE"  # optional: where to keep the built folder
ROOT_ENV = "DLWPT_CIFAR_STANDIN"  # set for the kernels: the stand-in root folder
REQUIRE_ENV = "DLWPT_REQUIRE_CIFAR10"  # "1" in CI with internet: chapter 7 must run, never be skipped
FACTS_FILE = "facts/horse2zebra_0.4.0.state_dict_manifest.json"  # relative to ../shared
FACTS = SHARED / FACTS_FILE
CYCLEGAN_WEIGHTS = "p1ch2/horse2zebra_0.4.0.pth"
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"  # of the stand-in Hugging Face repositories

# Run in-process (tools/speed.py bench) or as an IPython startup file (test kernels).
PATCH_CODE = r'''
import os as _os
import sys as _sys


def _dlwpt_patch_cifar(module, root):
    """Stand-in only: read CIFAR-10 from `root` and skip the official MD5 sums."""
    cls, init = module.CIFAR10, module.CIFAR10.__init__
    if not getattr(cls, "_dlwpt_standin", False):
        cls.__init__ = lambda self, _root, *args, **kwargs: init(self, root, *args, **kwargs)
        cls._check_integrity = lambda self: True
        module.check_integrity = lambda fpath, md5=None: _os.path.isfile(fpath)
        cls._dlwpt_standin = True


def _dlwpt_install(root):
    import importlib.util

    name = "torchvision.datasets.cifar"
    if name in _sys.modules:
        return _dlwpt_patch_cifar(_sys.modules[name], root)

    class _Finder:  # patches the module right after its first import
        def find_spec(self, fullname, path=None, target=None):
            if fullname != name:
                return None
            _sys.meta_path.remove(self)
            spec = importlib.util.find_spec(fullname)
            exec_module = spec.loader.exec_module
            spec.loader.exec_module = lambda module: (exec_module(module), _dlwpt_patch_cifar(module, root))
            return spec

    _sys.meta_path.insert(0, _Finder())
'''

STARTUP = PATCH_CODE + f"\nif _os.environ.get({ROOT_ENV!r}):\n    _dlwpt_install(_os.environ[{ROOT_ENV!r}])\n"


def build_standin():
    """The root of the stand-in's cifar-10-batches-py/, built once per archive version."""
    import numpy as np
    from PIL import Image

    base = Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "dlwpt-cache")
    out = base / f"cifar10-standin-{TARBALL.stat().st_size}-{int(TARBALL.stat().st_mtime)}-{SEED}"
    folder = out / "cifar-10-batches-py"
    if (folder / "batches.meta").is_file():
        return out
    samples = {"train": [], "test": []}
    with tarfile.open(TARBALL, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or not parts[2].endswith(".jpg"):
                continue
            split, cls, fname = parts
            with Image.open(io.BytesIO(tar.extractfile(member).read())) as im:
                pixels = np.asarray(im.convert("RGB"), dtype=np.uint8)
            assert pixels.shape == (32, 32, 3), (member.name, pixels.shape)
            # torchvision's layout: one row per image, channel-major (R plane, G plane, B plane)
            samples[split].append((cls, fname, CLASSES.index(cls), pixels.transpose(2, 0, 1).reshape(-1)))
    rng = np.random.default_rng(SEED)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="building-", dir=out.parent))
    (tmp / "cifar-10-batches-py").mkdir()

    def save(name, content):
        (tmp / "cifar-10-batches-py" / name).write_bytes(pickle.dumps(content, protocol=4))

    for split, names in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        items = sorted(samples[split], key=lambda s: s[:2])
        items = [items[i] for i in rng.permutation(len(items))]
        per = len(items) // len(names)
        for i, name in enumerate(names):
            chunk = items[i * per : (i + 1) * per]
            save(name, {"batch_label": f"stand-in {name} (JPEG re-encoded CIFAR-10, not the official archive)",
                        "labels": [s[2] for s in chunk], "data": np.stack([s[3] for s in chunk]),
                        "filenames": [f"{s[0]}/{s[1]}" for s in chunk]})
    save("batches.meta", {"label_names": CLASSES, "num_cases_per_batch": 10000, "num_vis": 3072})
    try:
        tmp.rename(out)
    except OSError:  # built meanwhile by another run (pytest-xdist's workers)
        shutil.rmtree(tmp, ignore_errors=True)
        if not (folder / "batches.meta").is_file():
            raise
    return out


def install_in_process(root):
    """The CIFAR-10 stand-in in this Python process (tools/speed.py bench)."""
    scope = {}
    exec(PATCH_CODE, scope)
    scope["_dlwpt_install"](str(root))


_ACTIVE = []  # activate()'s patch of os.environ and its temporary IPYTHONDIR


def activate():
    """Point kernels started from now on (they inherit os.environ) at the stand-in, unless it is already."""
    if os.environ.get(ROOT_ENV):
        return
    ipython_dir = tempfile.TemporaryDirectory(prefix="dlwpt-ipython-")
    startup = Path(ipython_dir.name) / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "50-dlwpt-cifar10-standin.py").write_text(STARTUP, encoding="utf-8")
    _ACTIVE.append((mock.patch.dict(os.environ, {ROOT_ENV: str(build_standin()), "IPYTHONDIR": ipython_dir.name}),
                    ipython_dir))
    _ACTIVE[-1][0].start()


def deactivate():
    while _ACTIVE:
        patch, ipython_dir = _ACTIVE.pop()
        patch.stop()
        ipython_dir.cleanup()


def official_reachable(timeout=5):
    """True if the official CIFAR-10 archive answers (through any proxy the environment sets)."""
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(OFFICIAL_URL, method="HEAD"), timeout=timeout).close()
        return True
    except Exception:  # offline, DNS, proxy, TLS: the notebooks could not download it either
        return False


def vision_hub_repo():
    """What 4_model_zoos passes to torch.hub.load: pytorch/vision at the installed TorchVision's tag."""
    import torchvision

    return "pytorch/vision:v" + torchvision.__version__.split("+")[0]


def hub_cache_folder(repo):
    """The folder torch.hub caches ``owner/name:ref`` in: ``owner_name_ref`` ("/" in ref -> "_")."""
    return repo.replace(":", "_").replace("/", "_")


def _snapshot(hub_cache, repo_id):
    """The snapshot folder of ``repo_id`` in the cache layout huggingface_hub reads offline."""
    repo = Path(hub_cache) / ("models--" + repo_id.replace("/", "--"))
    (repo / "snapshots" / FAKE_COMMIT).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(FAKE_COMMIT, encoding="utf-8")
    return repo / "snapshots" / FAKE_COMMIT


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

    snap = _snapshot(hub_cache, "gpt2")
    bpe = ByteLevelBPETokenizer()
    # the prompt in the corpus: like the real tokenizer, this one splits it into 9 tokens
    corpus = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))] + [GPT2_PROMPT] * 20
    bpe.train_from_iterator(corpus, vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>"])
    tok = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, model_max_length=1024)
    tok.add_special_tokens({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"})
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    # task_specific_params as in the real gpt2 config: the text-generation pipeline samples
    sampling = {"text-generation": {"do_sample": True, "max_length": 50}}
    config = GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=32, n_layer=2, n_head=2, bos_token_id=eos,
                        eos_token_id=eos, task_specific_params=sampling)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(snap)
    _save_like_the_hub(tok, snap)


def make_blip(hub_cache):
    """A tiny random BLIP captioner with a WordPiece (BERT) tokenizer, saved as the real repo id."""
    import torch
    import transformers as tf
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    snap = _snapshot(hub_cache, "Salesforce/blip-image-captioning-large")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "[ENC]"]
    vocab = {t: i for i, t in enumerate(specials + sorted(set(WORDS)))}
    # BERT WordPiece built with `tokenizers`: transformers 4.x has no `vocab=` argument, 5.x ignores `vocab_file=`
    wordpiece = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    wordpiece.decoder = decoders.WordPiece()
    tok = tf.BertTokenizerFast(tokenizer_object=wordpiece, bos_token="[DEC]", unk_token="[UNK]", sep_token="[SEP]",
                               pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    image_processor = tf.BlipImageProcessor()  # its defaults are the real one's: 384 x 384, CLIP's mean and std
    tiny = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    text = dict(tiny, vocab_size=len(tok), encoder_hidden_size=32, max_position_embeddings=64,
                bos_token_id=ids["[DEC]"], eos_token_id=ids["[SEP]"], sep_token_id=ids["[SEP]"],
                pad_token_id=ids["[PAD]"])
    config = tf.BlipConfig(vision_config=dict(tiny, patch_size=32), text_config=text, projection_dim=32,
                           image_text_hidden_size=32)
    torch.manual_seed(0)
    model = tf.BlipForConditionalGeneration(config)
    with torch.no_grad():  # keep the random captioner from ending (or emitting special tokens) at once
        special_ids = torch.tensor(list(ids.values()))
        model.text_decoder.cls.predictions.decoder.bias[special_ids] = -1e4
    model.save_pretrained(snap)
    _save_like_the_hub(tf.BlipProcessor(image_processor=image_processor, tokenizer=tok), snap)


def _save_like_the_hub(tokenizer, snap):
    """Save without ``clean_up_tokenization_spaces``, as the real configs: transformers 4.44 warns as for readers."""
    tokenizer.save_pretrained(snap)
    path = Path(snap) / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.pop("clean_up_tokenization_spaces", None)
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def real_cyclegan_weights(data_dir=ROOT / "data"):
    """True when ``data_dir`` holds the published CycleGAN weights: then nothing is redirected."""
    from dlwpt.fetch import check_file, load_manifest

    path = Path(data_dir) / CYCLEGAN_WEIGHTS
    (entry,) = [e for e in load_manifest() if e.path == CYCLEGAN_WEIGHTS]
    return path.is_file() and check_file(path, entry) is None


def data_folder_with_standin_weights(base, data=ROOT / "data"):
    """``base``: a data folder for ``DLWPT_DATA``, data/'s folders and files linked, but in its own p1ch2/ random
    tensors with every name and shape of the published CycleGAN weights (never written into data/)."""
    import torch

    (base / "p1ch2").mkdir(parents=True)
    for item in sorted([*data.glob("p1ch*"), *(data / "p1ch2").iterdir()]):
        source, target = item.resolve(), base / item.relative_to(data)
        if item.name != "p1ch2" and target != base / CYCLEGAN_WEIGHTS:
            try:
                target.symlink_to(source, target_is_directory=source.is_dir())
            except OSError:  # no right to make links (Windows): a copy
                (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
    gen = torch.Generator().manual_seed(0)
    tensors = json.loads(FACTS.read_text(encoding="utf-8"))["tensors"]
    torch.save({t["name"]: torch.randn(*t["shape"], generator=gen) * 0.05 for t in tensors}, base / CYCLEGAN_WEIGHTS)
    return base


def build_chapter2(base, env):
    """Chapter 2's stand-ins in ``base``; ``env`` (os.environ: huggingface_hub reads it on import) points at them."""
    torch_home, hf_home = base / "torch", base / "hf"
    env.update(TORCH_HOME=str(torch_home), HF_HOME=str(hf_home), HF_HUB_CACHE=str(hf_home / "hub"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    import torch
    from torchvision import models
    from transformers.utils import logging as hf_logging  # after the variables above: read on import

    weights_dir = torch_home / "hub" / "checkpoints"
    weights_dir.mkdir(parents=True)
    torch.manual_seed(0)
    for build, weights in ((models.resnet101, models.ResNet101_Weights), (models.resnet18, models.ResNet18_Weights)):
        # random weights under the IMAGENET1K_V1 file names; zeroed residual branches keep the random scores small
        torch.save(build(zero_init_residual=True).state_dict(), weights_dir / Path(weights.IMAGENET1K_V1.url).name)
    hub_repo = torch_home / "hub" / hub_cache_folder(vision_hub_repo())  # the cached snapshot torch.hub.load uses
    hub_repo.mkdir()
    (hub_repo / "hubconf.py").write_text('dependencies = ["torch"]\nfrom torchvision.models import resnet18\n',
                                         encoding="utf-8")
    hf_logging.disable_progress_bar()  # quiet pytest's output while saving
    with warnings.catch_warnings():  # transformers 4.44's notice, see _save_like_the_hub
        warnings.filterwarnings("ignore", message="`clean_up_tokenization_spaces` was not set", category=FutureWarning)
        make_gpt2(hf_home / "hub")
        make_blip(hf_home / "hub")
    if FACTS.is_file() and not real_cyclegan_weights():
        env[DATA_ENV] = str(data_folder_with_standin_weights(base / "data"))


# What the stand-ins set for the kernels: a run that must not use them (book_run, a fresh pytest) drops these.
ENV_NAMES = {ROOT_ENV, "IPYTHONDIR", "TORCH_HOME", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
             DATA_ENV}
