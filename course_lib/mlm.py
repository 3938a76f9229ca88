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
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["IGNORE_INDEX", "mask_tokens", "tiny_bert_config", "tiny_bert"]

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
