"""Counting a transformer: parameters and floating-point operations (chapter 4).

Parameters are counted exactly from a config — no model is built — and agree with
``model.num_parameters()`` of the matching ``transformers`` model
(``tests/unit/test_flops.py``). FLOPs follow Kaplan et al. (2020, Table 1): a
multiply-add counts as 2 FLOPs, the forward pass of a token costs
``2 N + 2 n_layer n_ctx d_model`` and training (forward + backward) three times that,

    C_train per token = 6 N + 6 n_layer n_ctx d_model,    C_run ≈ 6 N D,

with ``N`` the non-embedding parameters and ``D`` the number of training tokens.
Only the weight matrices are counted (and the attention scores): biases, norms,
activations, RoPE's rotations and SwiGLU's product are a few FLOPs per feature,
not per parameter, and are left out, as by Kaplan et al.

The modern (Llama-style) block changes the counts in three places: SwiGLU has
three ``d_model x d_ff`` matrices instead of two, RMSNorm has a gain and no bias,
and RoPE (or sinusoidal positions) has no position parameters. Grouped-query
attention (a ``LlamaConfig`` with fewer key-value heads than heads) shrinks the
key and value matrices to ``d_model x n_kv_head hs``.

Accepted configs: :class:`course_lib.models.GPTConfig`, ``transformers.GPT2Config``,
``transformers.LlamaConfig`` and ``transformers.BertConfig``.
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
    n_positions: int  # context length; position parameters only if learned_positions
    n_layer: int
    d_model: int
    d_ff: int
    bias: bool  # biases of the linear layers (attention and MLP)
    tied: bool
    type_vocab_size: int = 0
    num_labels: int = 0
    norm: str = "layernorm"  # "layernorm" (gain and bias if `bias`) or "rmsnorm" (gain)
    mlp: str = "gelu"  # "gelu" (2 matrices) or "swiglu" (3 matrices)
    learned_positions: bool = True
    d_attn: int = 0  # width of the queries, n_head * hs (0: d_model)
    d_kv: int = 0  # width of the keys and of the values, n_kv_head * hs (0: d_attn)
    mlp_bias: bool | None = None  # None: `bias`

    @property
    def attn(self) -> int:
        return self.d_attn or self.d_model

    @property
    def kv(self) -> int:
        return self.d_kv or self.attn

    @property
    def norm_params(self) -> int:
        """Parameters of one norm: gain, plus a bias for a LayerNorm with biases."""
        return 2 * self.d_model if self.norm == "layernorm" and self.bias else self.d_model


def _shape(config: object) -> _Shape:
    name = type(config).__name__
    if name == "GPTConfig":
        return _Shape("gpt", config.vocab_size, config.context_length, config.n_layer,
                      config.d_model, config.d_ff, config.bias, config.tie_embeddings,
                      norm=config.norm, mlp=config.mlp,
                      learned_positions=config.position == "learned")
    if name == "GPT2Config":
        d_ff = config.n_inner if config.n_inner is not None else 4 * config.n_embd
        return _Shape("gpt", config.vocab_size, config.n_positions, config.n_layer,
                      config.n_embd, d_ff, True, bool(config.tie_word_embeddings))
    if name == "LlamaConfig":
        d, nh = config.hidden_size, config.num_attention_heads
        hs = getattr(config, "head_dim", None) or d // nh
        n_kv = config.num_key_value_heads or nh
        return _Shape("gpt", config.vocab_size, config.max_position_embeddings,
                      config.num_hidden_layers, d, config.intermediate_size,
                      bool(config.attention_bias), bool(config.tie_word_embeddings),
                      norm="rmsnorm", mlp="swiglu", learned_positions=False,
                      d_attn=nh * hs, d_kv=n_kv * hs, mlp_bias=bool(config.mlp_bias))
    if name == "BertConfig":
        return _Shape("bert", config.vocab_size, config.max_position_embeddings,
                      config.num_hidden_layers, config.hidden_size, config.intermediate_size,
                      True, bool(config.tie_word_embeddings), config.type_vocab_size,
                      config.num_labels)
    raise TypeError(f"config must be a GPTConfig, GPT2Config, LlamaConfig or BertConfig; "
                    f"got {name}")


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


def _mlp_matrices(s: _Shape) -> int:
    """``d_model x d_ff`` matrices in one MLP: 2 (in, out), or 3 for SwiGLU (gate too)."""
    return 3 if s.mlp == "swiglu" else 2


def _layer_params(s: _Shape) -> int:
    """One block: attention (Q, K, V, output), MLP (two or three layers), two norms."""
    d, f, a, kv = s.d_model, s.d_ff, s.attn, s.kv
    m = _mlp_matrices(s)
    attention = d * (a + 2 * kv) + a * d + ((a + 2 * kv + d) if s.bias else 0)
    mlp_bias = s.bias if s.mlp_bias is None else s.mlp_bias
    mlp = m * d * f + (((m - 1) * f + d) if mlp_bias else 0)
    return attention + mlp + 2 * s.norm_params


def param_counts(config: object, *, head: BertHead = "mlm") -> ParamCounts:
    """Exact parameter counts of the model that ``config`` describes.

    For GPT configs the model is the language model (``GPT``, ``GPT2LMHeadModel`` or
    ``LlamaForCausalLM``); position parameters are counted only when learned.
    For a ``BertConfig``, ``head`` picks the model: ``"none"`` the encoder alone
    (``BertModel(config, add_pooling_layer=False)``), ``"pooler"`` ``BertModel``,
    ``"mlm"`` ``BertForMaskedLM``, ``"classifier"`` ``BertForSequenceClassification``
    with ``config.num_labels`` classes.
    """
    s = _shape(config)
    d = s.d_model
    ln = s.norm_params
    positions = s.n_positions if s.learned_positions else 0
    embedding = (s.vocab_size + positions + s.type_vocab_size) * d
    body = s.n_layer * _layer_params(s)
    if s.family == "gpt":
        other = ln + (0 if s.tied else s.vocab_size * d)  # final norm (+ untied head)
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

    ``attention_scores`` is the context-dependent term ``2 n_layer n_ctx d_attn``
    (``d_attn = n_head hs``, ``d_model`` for GPT-2): ``Q K^T`` and the weighted sum
    of values, **averaged over the positions of a causal sequence**. The query at
    position ``t`` (``t = 1 .. n_ctx``) meets ``t`` keys and ``t`` values, ``4 t
    d_attn`` FLOPs per layer; the mean over the ``n_ctx`` positions is ``4 d_attn
    (n_ctx + 1) / 2 = 2 (n_ctx + 1) d_attn``, Kaplan's term up to the ``+ 1``. A
    dense attention over all ``n_ctx`` positions computes twice that, ``4 n_ctx
    d_attn`` (what PyTorch's counter reports for the math kernel).
    ``feedforward`` is ``2 n_layer m d_model d_ff`` with ``m = 2`` matrices, ``3``
    for SwiGLU. ``unembedding`` (``2 d_model V``, the output layer) is listed but,
    like Kaplan, left out of :attr:`non_embedding`.
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
    d, L, a = s.d_model, s.n_layer, s.attn
    return FlopsBreakdown(
        attention_qkv=2 * L * d * (a + 2 * s.kv),
        attention_scores=2 * L * n_ctx * a,
        attention_project=2 * L * a * d,
        feedforward=2 * L * _mlp_matrices(s) * d * s.d_ff,
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
