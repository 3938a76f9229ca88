"""The course's tiny BERT, pretrained on WordNet once and kept in the store (chapters 5–6).

:func:`pretrained_tiny_bert` returns a 2-layer ``BertForMaskedLM`` pretrained on WordNet's
glosses (never on the test split of chapter 6) and its WordPiece tokenizer. It loads
``notebooks/results/tiny_bert`` — after :func:`course_lib.core.store.load_manifest` has
checked the sha256 of every file there, ``config.json`` and the tokenizer included — or,
if the folder is missing, pretrains it first with :func:`pretrain_tiny_bert`: the
recipe's tokenizer, :func:`~course_lib.training.masked.pack_sequences`,
:func:`~course_lib.training.masked.masked_lm_batches`,
:func:`~course_lib.training.masked.masked_lm_loss` and
:func:`course_lib.training.loop.train`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from course_lib.core import store
from course_lib.core.seeding import seeded
from course_lib.data.corpora import load_corpus
from course_lib.data.tokenizers import train_wordpiece
from course_lib.data.tokens import default_cache_dir
from course_lib.models.bert import tiny_bert
from course_lib.training.loop import TrainConfig, train
from course_lib.training.masked import masked_lm_batches, masked_lm_loss, pack_sequences

__all__ = ["TinyBertRecipe", "pretrain_tiny_bert", "load_tiny_bert", "default_tiny_bert_dir",
           "pretrained_tiny_bert"]


@dataclass(frozen=True)
class TinyBertRecipe:
    """Everything that decides the pretrained tiny BERT: tokenizer, model and training.

    ``batch_size`` counts packed sequences of ``context_length`` tokens;
    ``val_fraction`` of the sequences are held out to measure the MLM loss. No
    dropout: a few passes over the data leave the model far from overfitting (pass
    ``hidden_dropout_prob=0.1`` to ``from_pretrained`` to fine-tune with it).
    """

    corpus: str = "wordnet"
    vocab_size: int = 4096
    context_length: int = 64
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 128
    dropout: float = 0.0
    batch_size: int = 32
    max_steps: int = 5000
    lr: float = 2e-3
    warmup_steps: int = 200
    weight_decay: float = 0.01
    val_fraction: float = 0.02
    seed: int = 0


def _pretrain(folder: Path, recipe: TinyBertRecipe, partial: Path,
              device: str | torch.device | None, progress: bool) -> dict:
    """Train tokenizer and model; write both into ``folder``; return the store's result."""
    text = load_corpus(recipe.corpus)
    lines = text.splitlines()
    tokenizer = train_wordpiece(lines, recipe.vocab_size, model_max_length=recipe.context_length)
    order = np.random.default_rng(recipe.seed).permutation(len(lines))
    sequences = pack_sequences([lines[i] for i in order], tokenizer, recipe.context_length)
    get_batch = masked_lm_batches(sequences, recipe.batch_size, tokenizer,
                                  val_fraction=recipe.val_fraction)
    config = TrainConfig(max_steps=recipe.max_steps, lr=recipe.lr,
                         warmup_steps=recipe.warmup_steps, weight_decay=recipe.weight_decay,
                         eval_interval=max(1, recipe.max_steps // 10), seed=recipe.seed,
                         checkpoint_dir=str(partial / "checkpoints"),
                         checkpoint_interval=max(1, recipe.max_steps // 10), progress=progress)
    with seeded(recipe.seed):  # initialisation and dropout; the caller's RNG is left alone
        model = tiny_bert(vocab_size=len(tokenizer), context_length=recipe.context_length,
                          n_layer=recipe.n_layer, n_head=recipe.n_head, d_model=recipe.d_model,
                          dropout=recipe.dropout, pad_token_id=tokenizer.pad_token_id)
        result = train(model, get_batch, config, device=device, resume=True,
                       loss_fn=masked_lm_loss, description="tiny BERT (MLM)")
    model.cpu().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    n_tokens = int((sequences != tokenizer.pad_token_id).sum())
    return {"corpus": {"name": recipe.corpus, "lines": len(lines),
                       "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                       "sequences": len(sequences), "tokens": n_tokens,
                       "note": "WordNet 3.0 glosses without the test split of "
                               "course_lib.data.corpora.wordnet_categories()"},
            "train": {k: v for k, v in result.to_dict().items() if k != "lr"}}


def pretrain_tiny_bert(folder: str | os.PathLike, recipe: TinyBertRecipe | None = None, *,
                       device: str | torch.device | None = None, progress: bool = True) -> Path:
    """Train the tokenizer and the tiny BERT of ``recipe``; store both in ``folder``.

    The corpus's lines are shuffled (``recipe.seed``), packed and trained on with BERT's
    masking. Training checkpoints go to ``<folder>.partial/``, so an interrupted call
    resumes where it stopped. ``folder`` receives ``model.safetensors`` + ``config.json``
    (``save_pretrained``), the tokenizer's files and the store's ``manifest.json`` (spec =
    the recipe; result = corpus and training history; the sha256 of every file;
    provenance); it appears complete or not at all. Returns ``folder``.
    """
    recipe = recipe or TinyBertRecipe()
    folder = Path(folder)
    if (folder / store.MANIFEST).exists():
        raise FileExistsError(f"folder {str(folder)!r} already holds a pretrained model; "
                              f"delete it to pretrain again")
    partial = folder.with_name(folder.name + ".partial")
    store.load_or_build(folder, asdict(recipe),
                        lambda tmp: _pretrain(tmp, recipe, partial, device, progress),
                        device=device, function="course_lib.recipes.tiny_bert.pretrain_tiny_bert")
    shutil.rmtree(partial, ignore_errors=True)
    return folder


def load_tiny_bert(folder: str | os.PathLike):
    """``(BertForMaskedLM, tokenizer)`` from ``folder``, after checking every file's sha256.

    A file whose sha256 differs from the one in ``manifest.json`` (weights, config or
    tokenizer), a file the manifest does not list, or a folder without a manifest is an
    error: a corrupted or substituted model is never loaded.
    """
    from transformers import AutoTokenizer, BertForMaskedLM

    folder = Path(folder)
    if not (folder / store.MANIFEST).is_file():
        raise FileNotFoundError(f"folder {str(folder)!r} holds no {store.MANIFEST}: not a "
                                f"tiny BERT saved by pretrain_tiny_bert")
    store.load_manifest(folder)
    return BertForMaskedLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def default_tiny_bert_dir() -> Path:
    """``notebooks/results/tiny_bert`` of the course's repository when ``course_lib`` runs
    from a checkout of it, else ``tiny_bert`` in :func:`course_lib.data.tokens.default_cache_dir`."""
    repository = Path(__file__).resolve().parents[2]
    if (repository / "notebooks").is_dir():
        return repository / "notebooks" / "results" / "tiny_bert"
    return default_cache_dir() / "tiny_bert"


def pretrained_tiny_bert(path: str | os.PathLike | None = None, train_if_missing: bool = True):
    """The course's tiny BERT pretrained on WordNet, and its tokenizer: ``(model, tokenizer)``.

    ``model`` is a ``BertForMaskedLM`` (2 layers, width 128, 4 heads, 64 positions,
    4,096 WordPiece ids: :class:`TinyBertRecipe`), pretrained with BERT's 80/10/10
    masking on ``load_corpus("wordnet")``, which leaves out the test split of chapter
    6's task. ``tokenizer`` is a lower-casing ``transformers.BertTokenizer`` that adds
    ``[CLS] … [SEP]``; its ``model_max_length`` is the model's 64 positions, so call it
    with ``truncation=True`` (fewer than 0.5% of WordNet definitions are longer).

    ``path`` (default :func:`default_tiny_bert_dir`) is loaded with
    :func:`load_tiny_bert`, which verifies the sha256 of every file (config included).
    If it holds no model and ``train_if_missing``, :func:`pretrain_tiny_bert` trains
    one there first: about half an hour on a 2-core CPU (minutes on a GPU),
    resumable if interrupted. The folder is an ordinary ``transformers`` checkpoint,
    so a classifier starts from it with::

        BertForSequenceClassification.from_pretrained(path, num_labels=5)

    (the encoder is loaded; the pooler and the classification layer are new, since
    pretraining had no next-sentence task).
    """
    folder = Path(path) if path is not None else default_tiny_bert_dir()
    if not (folder / store.MANIFEST).is_file():
        if not train_if_missing:
            raise FileNotFoundError(f"no pretrained tiny BERT in {str(folder)!r} and "
                                    f"train_if_missing=False; call pretrained_tiny_bert("
                                    f"train_if_missing=True) to train one there")
        pretrain_tiny_bert(folder)
    return load_tiny_bert(folder)
