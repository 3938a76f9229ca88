"""Masked language modelling: BERT's masking rule, packing, batches and loss (chapter 5).

BERT (Devlin et al. 2019) selects 15% of the tokens as prediction targets. Of
those, 80% are replaced by ``[MASK]``, 10% by a random token and 10% are left
unchanged, so that the model cannot assume that unmasked tokens are always
correct. The loss is the cross-entropy at the selected positions only; every
other position gets the target -100, which the loss ignores.

:func:`mask_tokens` implements the rule with an explicit ``torch.Generator``;
``tests/unit/test_mlm.py`` checks its statistics against ``transformers``'
``DataCollatorForLanguageModeling``. :func:`pack_sequences`, :func:`masked_lm_batches`
and :func:`masked_lm_loss` turn texts into the batches and the loss that
:func:`course_lib.training.loop.train` needs; the course's tiny BERT
(:mod:`course_lib.models.bert`) is pretrained with them by
:mod:`course_lib.recipes.tiny_bert`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.core.losses import IGNORE_INDEX
from course_lib.data.tokens import get_rows

__all__ = ["mask_tokens", "pack_sequences", "masked_lm_batches", "masked_lm_loss"]


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


def pack_sequences(texts: Sequence[str], tokenizer, context_length: int) -> torch.Tensor:
    """Pack texts into rows ``[CLS] a [SEP] b [SEP] … [PAD]…``: int64 ``(n_rows, context_length)``.

    Texts are taken in order and never split across rows (one longer than a row is
    cut); a row ends where the next text would not fit and is padded with ``[PAD]``.
    Packing wastes little compute on padding, as RoBERTa's FULL-SENTENCES input does.
    """
    if isinstance(context_length, (bool, np.bool_)) \
            or not isinstance(context_length, (int, np.integer)) or context_length < 3:
        raise ValueError(f"context_length must be an integer >= 3; got {context_length!r}")
    context_length = int(context_length)
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
        ids = get_rows(rows, batch_size, generator)
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
