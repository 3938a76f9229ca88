"""Counting a transformer: parameters and floating-point operations (chapter 4).

Parameters are counted exactly from a config — no model is built — and agree with
``model.num_parameters()`` of the matching ``transformers`` model
(``tests/unit/test_flops.py``). FLOPs follow Kaplan et al. (2020, Table 1): a
multiply-add counts as 2 FLOPs, the forward pass of a token costs
``2 N + 2 n_layer n_ctx d_model`` and training (forward + backward) three times that,

    C_train per token = 6 N + 6 n_layer n_ctx d_model,    C_run ≈ 6 N D,

with ``N`` the non-embedding parameters and ``D`` the number of training tokens.

Accepted configs: :class:`course_lib.models.GPTConfig`, ``transformers.GPT2Config``
and ``transformers.BertConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "ParamCounts",
    "param_counts",
    "FlopsBreakdown",
    "forward_flops_breakdown",
    "flops_per_token",
    "training_flops",
]

BertHead = Literal["none", "pooler", "mlm", "classifier"]


@dataclass(frozen=True)
class _Shape:
    """The sizes that determine the counts, read from any supported config."""

    family: str  # "gpt" or "bert"
    vocab_size: int
    n_positions: int
    n_layer: int
    d_model: int
    d_ff: int
    bias: bool
    tied: bool
    type_vocab_size: int = 0
    num_labels: int = 0


def _shape(config: object) -> _Shape:
    name = type(config).__name__
    if name == "GPTConfig":
        return _Shape("gpt", config.vocab_size, config.context_length, config.n_layer,
                      config.d_model, config.d_ff, config.bias, True)
    if name == "GPT2Config":
        d_ff = config.n_inner if config.n_inner is not None else 4 * config.n_embd
        return _Shape("gpt", config.vocab_size, config.n_positions, config.n_layer,
                      config.n_embd, d_ff, True, bool(config.tie_word_embeddings))
    if name == "BertConfig":
        return _Shape("bert", config.vocab_size, config.max_position_embeddings,
                      config.num_hidden_layers, config.hidden_size, config.intermediate_size,
                      True, bool(config.tie_word_embeddings), config.type_vocab_size,
                      config.num_labels)
    raise TypeError(f"config must be a GPTConfig, GPT2Config or BertConfig; got {name}")


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts of one model.

    ``embedding`` holds the embedding tables (token, position and, for BERT, token
    type); ``non_embedding`` is everything else — Kaplan et al.'s ``N``. A tied
    output layer shares the token embedding and is counted once.
    """

    total: int
    embedding: int
    non_embedding: int

    def __str__(self) -> str:
        return (f"{self.total:,} parameters ({self.embedding:,} embedding, "
                f"{self.non_embedding:,} non-embedding)")


def _layer_params(s: _Shape) -> int:
    """One block: attention (Q, K, V, output), MLP (two layers), two LayerNorms."""
    d, f = s.d_model, s.d_ff
    weights = 4 * d * d + 2 * d * f
    biases = (3 * d + d + f + d) if s.bias else 0
    norms = 2 * (2 * d if s.bias else d)  # gain (and bias) of two LayerNorms
    return weights + biases + norms


def param_counts(config: object, *, head: BertHead = "mlm") -> ParamCounts:
    """Exact parameter counts of the model that ``config`` describes.

    For GPT configs the model is the language model (``GPT`` or ``GPT2LMHeadModel``).
    For a ``BertConfig``, ``head`` picks the model: ``"none"`` the encoder alone
    (``BertModel(config, add_pooling_layer=False)``), ``"pooler"`` ``BertModel``,
    ``"mlm"`` ``BertForMaskedLM``, ``"classifier"`` ``BertForSequenceClassification``
    with ``config.num_labels`` classes.
    """
    s = _shape(config)
    d = s.d_model
    ln = 2 * d if s.bias else d
    embedding = (s.vocab_size + s.n_positions + s.type_vocab_size) * d
    body = s.n_layer * _layer_params(s)
    if s.family == "gpt":
        other = ln + (0 if s.tied else s.vocab_size * d)  # final LayerNorm (+ untied head)
    else:
        other = ln  # LayerNorm after the embeddings
        if head not in ("none", "pooler", "mlm", "classifier"):
            raise ValueError(f"head must be 'none', 'pooler', 'mlm' or 'classifier'; got {head!r}")
        if head in ("pooler", "classifier"):
            other += d * d + d  # pooler: dense layer on the [CLS] vector
        if head == "classifier":
            other += d * s.num_labels + s.num_labels
        if head == "mlm":  # transform (dense + LayerNorm), output bias, (untied) decoder
            other += d * d + d + ln + s.vocab_size + (0 if s.tied else s.vocab_size * d)
    non_embedding = body + other
    return ParamCounts(embedding + non_embedding, embedding, non_embedding)


@dataclass(frozen=True)
class FlopsBreakdown:
    """Forward-pass FLOPs per token, by operation (Kaplan et al. 2020, Table 1).

    ``attention_scores`` is the context-dependent term ``2 n_layer n_ctx d_model``
    (``Q K^T`` and the weighted sum of values, over the full context);
    ``unembedding`` (``2 d_model V``, the output layer) is listed but, like Kaplan,
    left out of :attr:`non_embedding`.
    """

    attention_qkv: int
    attention_scores: int
    attention_project: int
    feedforward: int
    unembedding: int

    @property
    def non_embedding(self) -> int:
        """``2 N + 2 n_layer n_ctx d_model`` (weight matrices only; biases and norms ignored)."""
        return self.attention_qkv + self.attention_scores + self.attention_project + self.feedforward

    @property
    def total(self) -> int:
        return self.non_embedding + self.unembedding


def forward_flops_breakdown(config: object, context_length: int | None = None) -> FlopsBreakdown:
    """Forward FLOPs per token for ``config`` at a context of ``context_length`` tokens.

    ``context_length`` defaults to the config's maximum; FLOPs of the attention
    scores grow linearly with it, everything else does not depend on it.
    """
    s = _shape(config)
    n_ctx = s.n_positions if context_length is None else context_length
    if isinstance(n_ctx, (bool, np.bool_)) or not isinstance(n_ctx, (int, np.integer)) \
            or n_ctx < 1:
        raise ValueError(f"context_length must be a positive integer; got {context_length!r}")
    n_ctx = int(n_ctx)
    d, L = s.d_model, s.n_layer
    return FlopsBreakdown(
        attention_qkv=2 * L * d * 3 * d,
        attention_scores=2 * L * n_ctx * d,
        attention_project=2 * L * d * d,
        feedforward=2 * L * 2 * d * s.d_ff,
        unembedding=2 * d * s.vocab_size,
    )


def flops_per_token(
    config: object,
    *,
    context_length: int | None = None,
    training: bool = True,
    include_unembedding: bool = False,
) -> int:
    """FLOPs to process one token: ``6 N + 6 n_layer n_ctx d_model`` for training.

    ``training=False`` gives the forward pass only (a third). With
    ``include_unembedding`` the output layer's ``2 d_model V`` per forward pass is
    added — it is large for small models with big vocabularies.
    """
    b = forward_flops_breakdown(config, context_length)
    forward = b.total if include_unembedding else b.non_embedding
    return 3 * forward if training else forward


#: FLOPs per parameter per training token: 2 for the forward pass, 4 for the backward.
FLOPS_PER_PARAM_TOKEN = 6


def training_flops(n_params: object, n_tokens: object,
                   flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN) -> float | np.ndarray:
    """``C ≈ 6 N D`` FLOPs to train ``n_params`` parameters on ``n_tokens`` tokens.

    The product, not the sum: doubling both the model and the data quadruples the
    compute. Numbers give a float; arrays (of shapes that broadcast) give an array.
    """
    checked = []
    for name, value in (("n_params", n_params), ("n_tokens", n_tokens)):
        try:
            array = np.asarray(value, dtype=float) if not isinstance(value, (bool, str)) \
                else None
        except (TypeError, ValueError):
            array = None
        if array is None or array.size == 0 or not np.all(np.isfinite(array) & (array > 0)):
            raise ValueError(f"{name} must be a positive number (or an array of them); "
                             f"got {value!r}")
        checked.append(array)
    c = flops_per_param_token * checked[0] * checked[1]
    return float(c) if c.ndim == 0 else c
