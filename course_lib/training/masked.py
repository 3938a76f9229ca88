"""Masked language modelling: BERT's masking rule and a tiny BERT (chapters 5 and 6).

BERT (Devlin et al. 2019) selects 15% of the tokens as prediction targets. Of
those, 80% are replaced by ``[MASK]``, 10% by a random token and 10% are left
unchanged, so that the model cannot assume that unmasked tokens are always
correct. The loss is the cross-entropy at the selected positions only; every
other position gets the target -100, which the loss ignores.

:func:`mask_tokens` implements the rule with an explicit ``torch.Generator``;
``tests/unit/test_mlm.py`` checks its statistics against ``transformers``'
``DataCollatorForLanguageModeling``. :func:`tiny_bert` builds a small
``BertForMaskedLM`` from a ``BertConfig`` — no download — that trains on a CPU.

:func:`pretrained_tiny_bert` returns such a model pretrained on WordNet's glosses
(never on the test split of chapter 6), with its WordPiece tokenizer: it loads the
committed checkpoint after checking its sha256, or retrains it with
:func:`pretrain_tiny_bert` — :func:`pack_sequences`, :func:`masked_lm_batches`,
:func:`masked_lm_loss` and :func:`course_lib.training.loop.train`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.training.checkpoint import file_sha256, verify_sha256
from course_lib.core.provenance import provenance

__all__ = ["IGNORE_INDEX", "mask_tokens", "tiny_bert_config", "tiny_bert", "TinyBertRecipe",
           "pack_sequences", "masked_lm_batches", "masked_lm_loss", "pretrain_tiny_bert",
           "load_tiny_bert", "default_tiny_bert_dir", "pretrained_tiny_bert"]

IGNORE_INDEX = -100


def _probability(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a probability in [0, 1]; got {value!r}")
    return float(value)


def mask_tokens(
    input_ids: torch.Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    generator: torch.Generator | None = None,
    mlm_probability: float = 0.15,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
    special_token_ids: Iterable[int] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply BERT's masking to token ids ``(B, T)``; return ``(inputs, labels)``, both ``(B, T)``.

    Each token that is not special is selected with probability ``mlm_probability``.
    A selected token becomes ``mask_token_id`` with probability ``mask_replace_prob``,
    a uniformly random id in ``[0, vocab_size)`` with probability ``random_replace_prob``,
    and stays as it is otherwise. ``labels`` holds the original id at selected
    positions and -100 elsewhere. ``input_ids`` is not modified.
    """
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype != torch.int64:
        raise TypeError(f"input_ids must be an int64 tensor; got "
                        f"{getattr(input_ids, 'dtype', type(input_ids).__name__)}")
    _probability("mlm_probability", mlm_probability)
    _probability("mask_replace_prob", mask_replace_prob)
    _probability("random_replace_prob", random_replace_prob)
    if mask_replace_prob + random_replace_prob > 1.0:
        raise ValueError(f"mask_replace_prob + random_replace_prob must be <= 1; got "
                         f"{mask_replace_prob} + {random_replace_prob}")
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_token_id must be an id in [0, vocab_size={vocab_size}); "
                         f"got {mask_token_id!r}")
    device = input_ids.device

    def coin(p: float, shape) -> torch.Tensor:
        draw = torch.rand(shape, generator=generator, device=generator.device if generator
                          is not None else "cpu")
        return (draw < p).to(device)

    special = torch.isin(input_ids, torch.tensor(list(special_token_ids), dtype=torch.int64,
                                                 device=device))
    selected = coin(mlm_probability, input_ids.shape) & ~special
    labels = input_ids.masked_fill(~selected, IGNORE_INDEX)
    to_mask = selected & coin(mask_replace_prob, input_ids.shape)
    # among the rest of the selected, a random token with the right conditional probability
    rest = 1.0 - mask_replace_prob
    p_random = random_replace_prob / rest if rest > 0 else 0.0
    to_random = selected & ~to_mask & coin(p_random, input_ids.shape)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator,
                               device=generator.device if generator is not None else "cpu")
    inputs = input_ids.masked_fill(to_mask, mask_token_id)
    inputs = torch.where(to_random, random_ids.to(device), inputs)
    return inputs, labels


def tiny_bert_config(vocab_size: int, *, context_length: int = 128, n_layer: int = 2,
                     n_head: int = 4, d_model: int = 128, dropout: float = 0.1, **kwargs):
    """A ``transformers.BertConfig`` for a small BERT (MLP width ``4 d_model``).

    Extra keyword arguments go to ``BertConfig`` (for example ``num_labels``,
    ``pad_token_id``).
    """
    from transformers import BertConfig

    if d_model % n_head:
        raise ValueError(f"d_model ({d_model}) must be divisible by n_head ({n_head})")
    return BertConfig(
        vocab_size=vocab_size, hidden_size=d_model, num_hidden_layers=n_layer,
        num_attention_heads=n_head, intermediate_size=4 * d_model,
        max_position_embeddings=context_length, hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout, **kwargs)


def tiny_bert(config=None, **kwargs):
    """A randomly initialised ``BertForMaskedLM``; ``config`` or :func:`tiny_bert_config` kwargs."""
    from transformers import BertForMaskedLM

    if config is None:
        config = tiny_bert_config(**kwargs)
    elif kwargs:
        raise TypeError("pass either config or keyword arguments for tiny_bert_config, not both")
    return BertForMaskedLM(config)


# --- pretraining the course's tiny BERT on WordNet -----------------------------------

MANIFEST = "pretraining.json"  # config, provenance and sha256 of the files, next to the weights
_HASHED_FILES = ("model.safetensors", "tokenizer.json")


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


def pack_sequences(texts: Sequence[str], tokenizer, context_length: int) -> torch.Tensor:
    """Pack texts into rows ``[CLS] a [SEP] b [SEP] … [PAD]…``: int64 ``(n_rows, context_length)``.

    Texts are taken in order and never split across rows (one longer than a row is
    cut); a row ends where the next text would not fit and is padded with ``[PAD]``.
    Packing wastes little compute on padding, as RoBERTa's FULL-SENTENCES input does.
    """
    if isinstance(context_length, bool) or not isinstance(context_length, int) \
            or context_length < 3:
        raise ValueError(f"context_length must be an integer >= 3; got {context_length!r}")
    cls, sep, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=True,
                        max_length=context_length - 2)["input_ids"]
    rows, row = [], [cls]
    for ids in encoded:
        piece = ids + [sep]
        if len(row) + len(piece) > context_length:
            rows.append(row + [pad] * (context_length - len(row)))
            row = [cls]
        row += piece
    if len(row) > 1:
        rows.append(row + [pad] * (context_length - len(row)))
    return torch.tensor(rows, dtype=torch.int64)


def masked_lm_batches(
    sequences: torch.Tensor, batch_size: int, tokenizer, *, val_fraction: float = 0.02,
) -> Callable[[str, torch.Generator], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """A batch function for :func:`course_lib.training.loop.train` on packed ``sequences`` ``(N, T)``.

    ``get_batch(split, generator)`` draws ``batch_size`` rows of the split (the last
    ``val_fraction`` of the rows is ``"val"``), masks them with :func:`mask_tokens`
    (special tokens are never chosen) and returns ``(inputs, labels, attention_mask)``,
    each ``(batch_size, T)``; the mask is 0 on ``[PAD]``.
    """
    _probability("val_fraction", val_fraction)
    n_val = max(1, round(len(sequences) * val_fraction))
    if len(sequences) - n_val < 1:
        raise ValueError(f"sequences has {len(sequences)} rows: too few to hold out "
                         f"val_fraction={val_fraction} and still train")
    splits = {"train": sequences[:-n_val], "val": sequences[-n_val:]}
    special = tokenizer.all_special_ids

    def get_batch(split: str, generator: torch.Generator):
        rows = splits[split]
        ids = rows[torch.randint(len(rows), (batch_size,), generator=generator)]
        inputs, labels = mask_tokens(ids, mask_token_id=tokenizer.mask_token_id,
                                     vocab_size=len(tokenizer), generator=generator,
                                     special_token_ids=special)
        return inputs, labels, (ids != tokenizer.pad_token_id).long()

    return get_batch


def masked_lm_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean cross-entropy (nats) at the masked positions of ``(inputs, labels, attention_mask)``.

    For a ``BertForMaskedLM`` the output layer runs only at the ~15% selected
    positions: with a small model and a vocabulary of thousands that halves the
    compute, and gives the same loss as ``model(..., labels=labels).loss``. Under DDP
    the whole model is called, so that gradients are synchronised.
    """
    inputs, labels, attention_mask = batch
    selected = labels != IGNORE_INDEX
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        logits = model(input_ids=inputs, attention_mask=attention_mask).logits[selected]
    else:
        hidden = model.bert(input_ids=inputs, attention_mask=attention_mask).last_hidden_state
        logits = model.cls(hidden[selected])  # (n_selected, V)
    return F.cross_entropy(logits.float(), labels[selected])


def pretrain_tiny_bert(folder: str | os.PathLike, recipe: TinyBertRecipe | None = None, *,
                       device: str | torch.device | None = None, progress: bool = True) -> Path:
    """Train the tokenizer and the tiny BERT of ``recipe``; save both to ``folder``.

    The corpus's lines are shuffled (``recipe.seed``), packed by
    :func:`pack_sequences` and trained on with BERT's masking and
    :func:`course_lib.training.loop.train`. Training checkpoints go to ``<folder>.partial/``,
    so an interrupted call resumes where it stopped. ``folder`` then receives
    ``model.safetensors`` + ``config.json`` (``save_pretrained``), the tokenizer, and
    ``pretraining.json`` (recipe, result, provenance, sha256 of the weights and of
    ``tokenizer.json``); it appears complete or not at all. Returns ``folder``.
    """
    from course_lib.data.corpora import load_corpus
    from course_lib.data.tokenizers import train_wordpiece
    from course_lib.training.loop import TrainConfig, train

    recipe = recipe or TinyBertRecipe()
    folder = Path(folder)
    if (folder / MANIFEST).exists():
        raise FileExistsError(f"folder {str(folder)!r} already holds a pretrained model; "
                              f"delete it to pretrain again")
    partial = folder.with_name(folder.name + ".partial")
    text = load_corpus(recipe.corpus)
    lines = text.splitlines()
    tokenizer = train_wordpiece(lines, recipe.vocab_size, model_max_length=recipe.context_length)
    order = np.random.default_rng(recipe.seed).permutation(len(lines))
    sequences = pack_sequences([lines[i] for i in order], tokenizer, recipe.context_length)
    get_batch = masked_lm_batches(sequences, recipe.batch_size, tokenizer,
                                  val_fraction=recipe.val_fraction)
    torch.manual_seed(recipe.seed)
    model = tiny_bert(vocab_size=len(tokenizer), context_length=recipe.context_length,
                      n_layer=recipe.n_layer, n_head=recipe.n_head, d_model=recipe.d_model,
                      dropout=recipe.dropout, pad_token_id=tokenizer.pad_token_id)
    config = TrainConfig(max_steps=recipe.max_steps, lr=recipe.lr,
                         warmup_steps=recipe.warmup_steps, weight_decay=recipe.weight_decay,
                         eval_interval=max(1, recipe.max_steps // 10), seed=recipe.seed,
                         checkpoint_dir=str(partial / "checkpoints"),
                         checkpoint_interval=max(1, recipe.max_steps // 10), progress=progress)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    result = train(model, get_batch, config, device=device, resume=True,
                   loss_fn=masked_lm_loss, description="tiny BERT (MLM)")
    staging = partial / "final"
    shutil.rmtree(staging, ignore_errors=True)
    model.cpu().save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    n_tokens = int((sequences != tokenizer.pad_token_id).sum())
    manifest = {
        "recipe": asdict(recipe),
        "corpus": {"name": recipe.corpus, "lines": len(lines),
                   "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                   "sequences": len(sequences), "tokens": n_tokens,
                   "note": "WordNet 3.0 glosses without the test split of "
                           "course_lib.data.corpora.wordnet_categories()"},
        "result": {k: v for k, v in result.to_dict().items() if k != "lr"},
        "provenance": provenance(result.device, function="course_lib.training.masked.pretrain_tiny_bert",
                                 started=started),
        "sha256": {name: file_sha256(staging / name) for name in _HASHED_FILES},
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    if folder.exists() and not any(folder.iterdir()):
        folder.rmdir()  # an empty folder left by someone: replace it
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, folder)
    shutil.rmtree(partial, ignore_errors=True)
    return folder


def load_tiny_bert(folder: str | os.PathLike):
    """``(BertForMaskedLM, BertTokenizer)`` from ``folder``, after checking the sha256 sums.

    A file whose sha256 differs from the one in ``pretraining.json`` is an error
    (a corrupted or substituted file), and so is a folder without that manifest.
    """
    from transformers import AutoTokenizer, BertForMaskedLM

    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise FileNotFoundError(f"folder {str(folder)!r} holds no {MANIFEST}: not a tiny BERT "
                                f"saved by pretrain_tiny_bert")
    verify_sha256(folder, json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["sha256"])
    return BertForMaskedLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def default_tiny_bert_dir() -> Path:
    """``notebooks/results/tiny_bert`` of the course's repository when ``course_lib`` runs
    from a checkout of it, else ``tiny_bert`` in :func:`course_lib.data.tokens.default_cache_dir`."""
    repository = Path(__file__).resolve().parents[2]
    if (repository / "notebooks").is_dir():
        return repository / "notebooks" / "results" / "tiny_bert"
    from course_lib.data.tokens import default_cache_dir
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
    :func:`load_tiny_bert`, which verifies the sha256 of the weights and tokenizer.
    If it holds no model and ``train_if_missing``, :func:`pretrain_tiny_bert` trains
    one there first: about half an hour on a 2-core CPU (minutes on a GPU),
    resumable if interrupted. The folder is an ordinary ``transformers`` checkpoint,
    so a classifier starts from it with::

        BertForSequenceClassification.from_pretrained(path, num_labels=5)

    (the encoder is loaded; the pooler and the classification layer are new, since
    pretraining had no next-sentence task).
    """
    folder = Path(path) if path is not None else default_tiny_bert_dir()
    if not (folder / MANIFEST).is_file():
        if not train_if_missing:
            raise FileNotFoundError(f"no pretrained tiny BERT in {str(folder)!r} and "
                                    f"train_if_missing=False; call pretrained_tiny_bert("
                                    f"train_if_missing=True) to train one there")
        pretrain_tiny_bert(folder)
    return load_tiny_bert(folder)
