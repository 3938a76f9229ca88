"""A GPT (decoder-only transformer) small enough to hold in your head (chapter 4).

One class per concept, in the order a reader meets them: the config, causal
self-attention, the MLP, a pre-norm block, the model. Shapes in comments use

* ``B`` batch size, ``T`` sequence length (tokens), ``C`` model width ``d_model``,
* ``nh`` attention heads, ``hs = C // nh`` the width of one head, ``V`` vocabulary size.

The architecture is GPT-2's {Radford et al. 2019}: learned position embeddings,
pre-norm blocks (LayerNorm before attention and before the MLP), a tanh-GELU MLP
four times as wide as the model, a final LayerNorm and an output layer tied to the
token embedding. :meth:`GPT.from_hf` copies the weights of a ``transformers``
``GPT2LMHeadModel`` into this model, which then gives the same logits.

Four options of :class:`GPTConfig` turn it into the modern (Llama-style) block
{Touvron et al. 2023}; each defaults to GPT-2, and with all defaults the model is
the same module for module and number for number:

* ``norm="rmsnorm"`` — :class:`RMSNorm` {Zhang & Sennrich 2019}: no mean, no bias;
* ``mlp="swiglu"`` — :class:`SwiGLU` {Shazeer 2020}: a SiLU-gated MLP, three matrices;
* ``position="rope"`` — rotary position embeddings {Su et al. 2021} rotate queries
  and keys instead of adding a learned vector to the input (``"sinusoidal"`` adds
  the fixed sines and cosines of {Vaswani et al. 2017}, scaled to the size of the
  token embeddings at initialisation);
* ``bias=False`` and ``tie_embeddings=False`` — no biases, a separate output layer.

``mup_base_width`` switches from the standard parametrization (SP) to the maximal
update parametrization, μP {Yang et al. 2022}, in the form of Microsoft's ``mup``
package with Adam (chapter 11 checks it against that package). With width
multiplier ``m = d_model / mup_base_width``: the matrices inside the blocks start
with standard deviation ``init_std / sqrt(m)`` and train with learning rate
``lr / m`` (:meth:`GPT.param_groups`); the output layer reads ``x / m``; attention
scores are divided by ``hs`` instead of ``sqrt(hs)`` (times ``sqrt`` of the base
head width, so that ``m = 1`` is SP exactly). Embeddings, norms and biases keep
SP's initialisation and learning rate. The best learning rate then stays put as the
model widens, where under SP it falls.

With all of them, :meth:`GPT.from_hf_llama` copies a ``transformers``
``LlamaForCausalLM`` (same logits). RoPE follows Llama's convention in
``transformers``: feature ``i`` of a head is paired with feature ``i + hs/2``
(:func:`rotate_half`), not neighbours ``(2j, 2j + 1)`` as in the paper and Meta's
original code; the two differ only by a fixed permutation of each head's query and
key features, which ``transformers`` applies once when it converts Meta's weights.

Generation can reuse the keys and values of earlier positions instead of
recomputing them: pass a :class:`~course_lib.models.kv_cache.KVCache` to ``forward``
(``model.new_cache(B)``), or call ``generate(..., use_cache=True)`` (chapter 13).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib.core.losses import IGNORE_INDEX
from course_lib.core.validate import (
    plain,
    require_bool,
    require_int,
    require_number,
    require_token_ids,
)
from course_lib.models.kv_cache import KVCache

__all__ = ["GPTConfig", "RMSNorm", "SinusoidalPositions", "RotaryEmbedding", "rotate_half",
           "apply_rope", "CausalSelfAttention", "MLP", "SwiGLU", "Block", "GPT",
           "weight_decay_groups"]

#: The options of the modern block and their GPT-2 defaults. They were added after
#: models were stored, so :meth:`GPTConfig.to_dict` leaves them out at these values.
_LATER_DEFAULTS = {"norm": "layernorm", "mlp": "gelu", "position": "learned",
                   "rope_theta": 10000.0, "tie_embeddings": True, "mup_base_width": None}
_CHOICES = {"norm": ("layernorm", "rmsnorm"), "mlp": ("gelu", "swiglu"),
            "position": ("learned", "sinusoidal", "rope")}


def _require_int(name: str, value: object, minimum: int) -> int:
    """``value`` as a Python ``int`` (NumPy integers accepted), at least ``minimum``."""
    return require_int(name, value, minimum, expected=f"an integer >= {minimum}")


@dataclass(frozen=True)
class GPTConfig:
    """Hyper-parameters of a GPT. All sizes are counts (tokens, layers, features).

    ``d_ff`` defaults to ``4 * d_model`` (GPT-2); with ``mlp="swiglu"`` to
    ``8 * ceil(d_model / 3)``, about two thirds of that, so that SwiGLU's three
    matrices hold about as many parameters as GPT-2's two {Shazeer 2020}.
    ``dropout`` is applied to the embeddings, the attention weights and both
    residual branches, as in GPT-2. ``bias`` switches the biases of every linear
    layer and LayerNorm (RMSNorm has none). ``layer_norm_eps`` is the epsilon of
    either norm. ``norm``, ``mlp``, ``position`` (with ``rope_theta``, the base of
    RoPE's frequencies) and ``tie_embeddings`` choose the block: see the module
    docstring; their defaults are GPT-2's. ``mup_base_width`` (``None``: the standard
    parametrization) is the width at which μP equals SP; it must be divisible by
    ``n_head`` (the heads keep their number as the model widens).
    """

    vocab_size: int
    context_length: int
    n_layer: int
    n_head: int
    d_model: int
    d_ff: int | None = None
    dropout: float = 0.0
    bias: bool = True
    layer_norm_eps: float = 1e-5
    init_std: float = 0.02
    norm: str = "layernorm"
    mlp: str = "gelu"
    position: str = "learned"
    rope_theta: float = 10000.0
    tie_embeddings: bool = True
    mup_base_width: int | None = None

    def __post_init__(self) -> None:
        for name, minimum in (("vocab_size", 1), ("context_length", 1), ("n_layer", 1),
                              ("n_head", 1), ("d_model", 1)):
            object.__setattr__(self, name, _require_int(name, getattr(self, name), minimum))
        if self.d_model % self.n_head:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head}): each "
                f"head gets d_model // n_head features. Try n_head in "
                f"{[h for h in range(1, self.d_model + 1) if self.d_model % h == 0][-6:]}"
            )
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; "
                                 f"got {getattr(self, name)!r}")
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", 4 * self.d_model if self.mlp == "gelu"
                               else 8 * -(-self.d_model // 3))
        object.__setattr__(self, "d_ff", _require_int("d_ff", self.d_ff, 1))
        for name, low, high, closed, expected in (
                ("dropout", 0, 1, (True, False), "a probability in [0, 1)"),
                ("layer_norm_eps", 0, None, (False, True),
                 "a positive number (LayerNorm divides by sqrt(variance + eps))"),
                ("init_std", 0, None, (True, True), "a standard deviation >= 0"),
                ("rope_theta", 0, None, (False, True), "a positive number (RoPE's base)")):
            value = getattr(self, name)
            checked = require_number(name, value, low, high, closed=closed, expected=expected)
            object.__setattr__(self, name, plain(value, checked))
        for name in ("bias", "tie_embeddings"):
            object.__setattr__(self, name, require_bool(name, getattr(self, name)))
        if self.mup_base_width is not None:
            base = _require_int("mup_base_width", self.mup_base_width, 1)
            object.__setattr__(self, "mup_base_width", base)
            if base % self.n_head:
                raise ValueError(f"mup_base_width ({base}) must be divisible by n_head "
                                 f"({self.n_head}): the base model's heads have "
                                 f"mup_base_width // n_head features each")
        if self.position == "rope" and self.head_dim % 2:
            raise ValueError(f"position='rope' rotates pairs of features in each head: "
                             f"head_dim = d_model // n_head must be even; got {self.head_dim}")
        if self.position == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"position='sinusoidal' fills pairs of features (a sine and a "
                             f"cosine): d_model must be even; got {self.d_model}")

    @property
    def head_dim(self) -> int:
        """Features per attention head, ``d_model // n_head``."""
        return self.d_model // self.n_head

    @property
    def width_mult(self) -> float:
        """μP's width multiplier ``d_model / mup_base_width`` (1.0 under SP)."""
        return 1.0 if self.mup_base_width is None else self.d_model / self.mup_base_width

    @property
    def attention_scale(self) -> float:
        """What attention multiplies ``q k^T`` by: ``1 / sqrt(hs)`` under SP; under μP
        ``sqrt(hs_base) / hs`` (``hs_base = mup_base_width // n_head``), ``1 / hs`` up
        to a constant, which keeps the scores' size fixed as ``q`` and ``k``, trained
        with μP's rates, become correlated {Yang et al. 2022}."""
        if self.mup_base_width is None:
            return 1.0 / math.sqrt(self.head_dim)
        return math.sqrt(self.mup_base_width // self.n_head) / self.head_dim

    def to_dict(self) -> dict:
        """Plain ``dict`` (JSON-friendly) of the fields; ``GPTConfig(**d)`` rebuilds it.

        The options added for the modern block (``norm``, ``mlp``, ``position``,
        ``rope_theta``, ``tie_embeddings``) appear only away from their defaults, so
        a GPT-2 config gives the dict — and the stored specs keyed on it — it always
        gave, and a stored dict without them rebuilds the GPT-2 block.
        """
        return {k: v for k, v in asdict(self).items()
                if k not in _LATER_DEFAULTS or v != _LATER_DEFAULTS[k]}

    def _require(self, target: str, **wanted: object) -> None:
        """Refuse a conversion to ``target`` when a field differs from ``wanted``."""
        for name, value in wanted.items():
            if getattr(self, name) != value:
                raise ValueError(f"{name}={getattr(self, name)!r} has no {target} equivalent "
                                 f"in transformers; {target} needs {name}={value!r}")

    def to_hf(self):
        """The equivalent ``transformers.GPT2Config`` (dropouts, epsilon and widths carried over)."""
        self._require("GPT-2", bias=True, **{k: v for k, v in _LATER_DEFAULTS.items()
                                             if k != "rope_theta"})
        from transformers import GPT2Config

        return GPT2Config(
            vocab_size=self.vocab_size, n_positions=self.context_length, n_embd=self.d_model,
            n_layer=self.n_layer, n_head=self.n_head, n_inner=self.d_ff,
            activation_function="gelu_new", resid_pdrop=self.dropout, embd_pdrop=self.dropout,
            attn_pdrop=self.dropout, layer_norm_epsilon=self.layer_norm_eps,
            initializer_range=self.init_std, bos_token_id=None, eos_token_id=None,
            tie_word_embeddings=True,
        )

    def to_hf_llama(self):
        """The equivalent ``transformers.LlamaConfig``: needs ``norm="rmsnorm"``,
        ``mlp="swiglu"``, ``position="rope"`` and ``dropout=0`` (Llama has no dropout
        on the embeddings or the residual branches); ``bias`` sets both Llama's
        ``attention_bias`` and ``mlp_bias``."""
        self._require("Llama", norm="rmsnorm", mlp="swiglu", position="rope", dropout=0.0,
                      mup_base_width=None)
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=self.vocab_size, hidden_size=self.d_model, intermediate_size=self.d_ff,
            num_hidden_layers=self.n_layer, num_attention_heads=self.n_head,
            num_key_value_heads=self.n_head, head_dim=self.head_dim, hidden_act="silu",
            max_position_embeddings=self.context_length, initializer_range=self.init_std,
            rms_norm_eps=self.layer_norm_eps, tie_word_embeddings=self.tie_embeddings,
            rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta},
            attention_bias=self.bias, mlp_bias=self.bias, attention_dropout=0.0,
            bos_token_id=None, eos_token_id=None, pad_token_id=None,
        )

    @classmethod
    def from_hf_llama(cls, hf_config) -> GPTConfig:
        """Read a ``transformers.LlamaConfig``; refuse what this GPT does not implement
        (grouped-query attention, another activation, scaled RoPE, attention dropout)."""
        if type(hf_config).__name__ != "LlamaConfig":
            raise TypeError(f"hf_config must be a transformers LlamaConfig; got "
                            f"{type(hf_config).__name__}")
        d, nh = hf_config.hidden_size, hf_config.num_attention_heads
        rope = dict(getattr(hf_config, "rope_parameters", None) or {})
        theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
        for key, got, wanted in (
                ("num_key_value_heads", hf_config.num_key_value_heads, nh),
                ("head_dim", getattr(hf_config, "head_dim", None) or d // nh, d // nh),
                ("hidden_act", hf_config.hidden_act, "silu"),
                ("rope_parameters['rope_type']", rope.get("rope_type", "default"), "default"),
                ("attention_dropout", float(hf_config.attention_dropout), 0.0),
                ("mlp_bias", hf_config.mlp_bias, hf_config.attention_bias)):
            if got != wanted:
                raise ValueError(f"hf_config.{key} is {got!r}; this GPT supports only "
                                 f"{wanted!r}")
        return cls(
            vocab_size=hf_config.vocab_size, context_length=hf_config.max_position_embeddings,
            n_layer=hf_config.num_hidden_layers, n_head=nh, d_model=d,
            d_ff=hf_config.intermediate_size, bias=bool(hf_config.attention_bias),
            layer_norm_eps=hf_config.rms_norm_eps, init_std=hf_config.initializer_range,
            norm="rmsnorm", mlp="swiglu", position="rope", rope_theta=theta,
            tie_embeddings=bool(hf_config.tie_word_embeddings),
        )

    @classmethod
    def from_hf(cls, hf_config) -> GPTConfig:
        """Read a ``transformers.GPT2Config``; refuse options this GPT does not implement."""
        unsupported = {
            "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
            "add_cross_attention": False, "scale_attn_weights": True,
            "tie_word_embeddings": True,
        }
        for key, wanted in unsupported.items():
            if getattr(hf_config, key, wanted) != wanted:
                raise ValueError(f"hf_config.{key} is {getattr(hf_config, key)!r}; this GPT "
                                 f"supports only {wanted!r}")
        if hf_config.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"hf_config.activation_function is {hf_config.activation_function!r}"
                             "; expected a tanh-approximated GELU ('gelu_new')")
        drops = {hf_config.resid_pdrop, hf_config.embd_pdrop, hf_config.attn_pdrop}
        if len(drops) != 1:
            raise ValueError(f"GPT uses one dropout rate; hf_config has {sorted(drops)}")
        return cls(
            vocab_size=hf_config.vocab_size, context_length=hf_config.n_positions,
            n_layer=hf_config.n_layer, n_head=hf_config.n_head, d_model=hf_config.n_embd,
            d_ff=hf_config.n_inner, dropout=drops.pop(),
            layer_norm_eps=hf_config.layer_norm_epsilon, init_std=hf_config.initializer_range,
        )


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: decay matrices and embeddings, not biases or norms.

    Weight decay shrinks the weight matrices and embeddings (2-D tensors); biases
    and LayerNorm gains (1-D) are left alone, as in GPT-2 and nanoGPT. A tied
    weight appears once. Works for any ``nn.Module`` (BERT too, or a classifier and
    its masked-LM head held by one module).
    """
    weight_decay = require_number("weight_decay", weight_decay, 0)
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


class RMSNorm(nn.Module):
    """``x / rms(x) * weight`` over the last dimension: LayerNorm without the mean and
    the bias {Zhang & Sennrich 2019}. Computed in float32, as Llama does."""

    def __init__(self, d_model: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()  # (B, T, C)
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


def _norm(config: GPTConfig) -> nn.Module:
    """The block's norm: GPT-2's LayerNorm or RMSNorm."""
    if config.norm == "rmsnorm":
        return RMSNorm(config.d_model, eps=config.layer_norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)


class SinusoidalPositions(nn.Module):
    """Fixed position vectors {Vaswani et al. 2017}: features ``2i`` and ``2i + 1`` of
    position ``p`` are ``scale sin(p w_i)`` and ``scale cos(p w_i)``, ``w_i = 10000^(-2i/C)``.
    No parameters; called like ``nn.Embedding`` on positions ``(T,) -> (T, C)``.

    :class:`GPT` passes ``scale = sqrt(2) init_std``, which gives each feature the root
    mean square of a freshly initialised token embedding: Vaswani et al. multiply their
    (unit-variance) token embeddings by ``sqrt(C)`` instead, for the same balance. Unscaled
    sines, of root mean square ``1 / sqrt(2)``, would outweigh GPT-2's ``N(0, 0.02^2)``
    token embeddings some 35 times, and the model would have to learn its tokens
    through the positions.
    """

    def __init__(self, context_length: int, d_model: int, scale: float = 1.0) -> None:
        super().__init__()
        w = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float) / d_model)  # (C/2,)
        angle = torch.arange(context_length, dtype=torch.float)[:, None] * w  # (T_max, C/2)
        table = torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)  # (T_max, C)
        self.register_buffer("table", scale * table, persistent=False)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return self.table[pos]  # (T, C)


class RotaryEmbedding(nn.Module):
    """The cosines and sines with which RoPE rotates queries and keys {Su et al. 2021}.

    Pair ``(i, i + hs/2)`` of a head's features at position ``p`` turns by the angle
    ``p theta^(-2i/hs)``: fast for the first pairs, slow for the last. Tables for
    every position up to ``context_length``; no parameters.
    """

    def __init__(self, head_dim: int, context_length: int, theta: float = 10000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float)
                                    / head_dim))  # (hs/2,)
        angle = torch.arange(context_length, dtype=torch.float)[:, None] * inv_freq
        angle = torch.cat([angle, angle], dim=-1)  # (T_max, hs): pair i and i + hs/2 alike
        self.register_buffer("cos", angle.cos(), persistent=False)
        self.register_buffer("sin", angle.sin(), persistent=False)

    def forward(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos[pos], self.sin[pos]  # 2 x (T, hs)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last dimension: each pair
    ``(i, i + hs/2)`` turned by 90 degrees."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys ``x`` ``(B, nh, T, hs)`` by their positions' angles
    (``cos``, ``sin`` ``(T, hs)`` from :class:`RotaryEmbedding`). A query at ``m`` and
    a key at ``n`` rotated so have a dot product that depends on ``m - n`` only."""
    return x * cos + rotate_half(x) * sin


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position ``t`` sees only positions ``<= t``.

    With ``rope`` (the ``(cos, sin)`` of the input's positions) the queries and keys
    are rotated before they are compared, and stored in the cache rotated."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.dropout = config.n_head, config.dropout
        # None: SDPA's own 1 / sqrt(hs); under μP sqrt(hs_base) / hs
        self.scale = None if config.mup_base_width is None else config.attention_scale
        # one matrix computes queries, keys and values for every head: C -> 3C
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=config.bias)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        # (B, T, C) -> (B, nh, T, hs): each head attends independently
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in (q, k, v))
        if rope is not None:  # positions enter here, as rotations of q and k
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        causal, mask = True, None
        if cache is not None:  # attend over the stored positions too: k, v (B, nh, past + T, hs)
            past = cache.length
            k, v = cache.append(layer, k, v)
            if past and T == 1:
                causal = False  # one new token may see every stored position
            elif past:  # new token i (at position past + i) sees positions <= past + i
                causal, mask = False, torch.ones(T, past + T, dtype=torch.bool,
                                                 device=x.device).tril(diagonal=past)
        # softmax(q k^T / sqrt(hs) + causal mask) v, fused: (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, scale=self.scale,
            dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward layer: C -> d_ff -> C with a tanh-approximated GELU."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
        self.proj = nn.Linear(config.d_ff, config.d_model, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, T, C) -> (B, T, d_ff) -> (B, T, C)
        return self.dropout(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class SwiGLU(nn.Module):
    """Gated feed-forward layer {Shazeer 2020}: ``proj(silu(gate(x)) * fc(x))``, with
    ``silu(z) = z sigmoid(z)``; three ``C x d_ff`` matrices instead of two."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.gate = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
        self.fc = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
        self.proj = nn.Linear(config.d_ff, config.d_model, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, T, C) -> 2 x (B, T, d_ff), multiplied feature by feature -> (B, T, C)
        return self.dropout(self.proj(F.silu(self.gate(x)) * self.fc(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = _norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = _norm(config)
        self.mlp = SwiGLU(config) if config.mlp == "swiglu" else MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer, rope)  # (B, T, C): tokens exchange information
        return x + self.mlp(self.ln_2(x))  # (B, T, C): each token is processed alone


class GPT(nn.Module):
    """Token + position embeddings, ``n_layer`` blocks, a final norm, tied output layer.

    With ``position="rope"`` there is no position embedding (``rope`` rotates queries
    and keys instead); with ``tie_embeddings=False`` the output layer is its own matrix.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig; got {type(config).__name__}")
        self.config = c = config
        self.wte = nn.Embedding(c.vocab_size, c.d_model)  # token embedding
        if c.position == "learned":
            self.wpe = nn.Embedding(c.context_length, c.d_model)  # position embedding
        elif c.position == "sinusoidal":
            self.wpe = SinusoidalPositions(  # fixed, no parameters, as large as wte at init
                c.context_length, c.d_model, math.sqrt(2) * c.init_std)
        else:
            self.rope = RotaryEmbedding(c.head_dim, c.context_length, c.rope_theta)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = _norm(c)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_embeddings:  # tied: one (V, C) matrix reads and writes tokens
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2's initialisation: N(0, 0.02) weights, zero biases; residual projections
        (the last layer of each branch) scaled down by 1/sqrt(2 n_layer), so the residual
        stream's variance does not grow with depth. Under μP the matrices inside the
        blocks are scaled by a further 1/sqrt(width_mult) (their fan-in grows)."""
        std = self.config.init_std
        if isinstance(module, nn.Linear):
            if module in self._residual_projections():
                std = std / math.sqrt(2 * self.config.n_layer)
            if module in self._hidden_matrices():
                std = std / math.sqrt(self.config.width_mult)
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)

    def _residual_projections(self) -> list[nn.Module]:
        return [m for b in self.blocks for m in (b.attn.proj, b.mlp.proj)]

    def _hidden_matrices(self) -> list[nn.Module]:
        """The linear layers whose fan-in and fan-out both grow with width (μP's
        "matrix-like" weights): every ``nn.Linear`` inside the blocks."""
        return [m for b in self.blocks for m in b.modules() if isinstance(m, nn.Linear)]

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``(B, T, V)`` for token ids ``idx`` ``(B, T)``, and the loss if ``targets`` given.

        ``targets`` ``(B, T)`` holds the token to predict at each position (for a
        causal LM, ``idx`` shifted left by one); entries equal to -100 are ignored.
        The loss is the mean cross-entropy in nats per predicted token.

        With a ``cache`` (:meth:`new_cache`), ``idx`` continues the sequences whose
        keys and values the cache holds: its tokens get positions ``cache.length``
        onwards, attend to the stored positions, and are appended to the cache.

        A token id outside ``[0, vocab_size)`` in ``idx`` (or in ``targets``, other than
        -100) raises ``ValueError`` naming the id, its position ``(b, t)`` and
        ``vocab_size``, instead of an ``IndexError`` on the CPU or a device-side assert
        on a GPU; so does an empty ``idx``.
        """
        targets = self._check_inputs(idx, targets)
        return self._forward(idx, targets, cache)

    def _check_inputs(self, idx: torch.Tensor, targets: torch.Tensor | None
                      ) -> torch.Tensor | None:
        """Refuse what :meth:`forward` cannot compute, naming the argument; return the
        targets as int64. Token ids outside the vocabulary would be an ``IndexError`` on
        the CPU and a device-side assert on a GPU: they are found with one comparison
        over the batch and located only when there is one (skipped under
        ``torch.compile``, where the check would break the graph)."""
        if not isinstance(idx, torch.Tensor) or idx.ndim != 2 \
                or idx.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"idx must be an integer tensor of shape (B, T); got dtype "
                             f"{getattr(idx, 'dtype', type(idx).__name__)} and shape "
                             f"{tuple(getattr(idx, 'shape', ()))}")
        if idx.numel() == 0:
            raise ValueError(f"idx is empty (shape {tuple(idx.shape)}); expected at least one "
                             f"sequence of at least one token")
        checking = not torch.compiler.is_compiling()
        if checking:
            require_token_ids("idx", idx, self.config.vocab_size)
        if targets is None:
            return None
        if not isinstance(targets, torch.Tensor) or targets.shape != idx.shape:
            raise ValueError(f"targets has shape {tuple(getattr(targets, 'shape', ()))}; "
                             f"expected the shape of idx, {tuple(idx.shape)}")
        if targets.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"targets must hold integer token ids (int64); got dtype "
                             f"{targets.dtype}")
        if checking:
            require_token_ids("targets", targets, self.config.vocab_size,
                              ignore_index=IGNORE_INDEX)
        return targets.long()

    def _forward(self, idx: torch.Tensor, targets: torch.Tensor | None,
                 cache: KVCache | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`forward` on inputs already checked (``generate`` checks its prompt once)."""
        B, T = idx.shape
        past = cache.length if cache is not None else 0
        if past + T > self.config.context_length:
            raise ValueError(f"idx has sequence length T={T}, longer than the model's "
                             f"context_length={self.config.context_length}"
                             + (f" minus the {past} cached positions" if past else "")
                             + f"; crop the input (for example "
                             f"idx[:, -{self.config.context_length - past}:])")
        pos = torch.arange(past, past + T, device=idx.device)  # (T,)
        x, rope = self.wte(idx), None  # (B, T, C)
        if self.config.position == "rope":
            rope = self.rope(pos)  # cos, sin (T, hs), used in every attention layer
        else:
            x = x + self.wpe(pos)  # (B, T, C) + (T, C) -> (B, T, C)
        x = self.drop(x)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer, rope)
        if cache is not None:
            cache.commit()
        x = self.ln_f(x)
        if self.config.mup_base_width is not None:
            x = x / self.config.width_mult  # μP's readout multiplier, as mup's MuReadout
        logits = self.lm_head(x)  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        return logits, loss

    def param_groups(self, weight_decay: float, lr: float | None = None) -> list[dict]:
        """Parameter groups for ``torch.optim.AdamW``; see :func:`weight_decay_groups`.

        With ``lr`` each group carries its learning rate. Under μP (``mup_base_width``
        set) ``lr`` is required: the matrices inside the blocks get ``lr / m`` and weight
        decay ``weight_decay * m`` (so that AdamW's decay per step, ``lr * wd``, does not
        change with width), as ``mup.MuAdamW`` does; everything else keeps ``lr``.
        """
        groups = weight_decay_groups(self, weight_decay)
        if self.config.mup_base_width is None:
            if lr is not None:
                lr = require_number("lr", lr, 0, closed=(False, True),
                                    expected="a positive number")
                groups = [g | {"lr": lr} for g in groups]
            return groups
        if lr is None:
            raise ValueError("lr is required under μP (mup_base_width is set): the "
                             "blocks' matrices train with lr / width_mult")
        lr = require_number("lr", lr, 0, closed=(False, True), expected="a positive number")
        m = self.config.width_mult
        hidden = {id(mod.weight) for mod in self._hidden_matrices()}
        decay, no_decay = groups
        inner = [p for p in decay["params"] if id(p) in hidden]
        outer = [p for p in decay["params"] if id(p) not in hidden]
        return [{"params": inner, "weight_decay": decay["weight_decay"] * m, "lr": lr / m},
                {"params": outer, "weight_decay": decay["weight_decay"], "lr": lr},
                no_decay | {"lr": lr}]

    def new_cache(self, batch_size: int) -> KVCache:
        """An empty :class:`KVCache` for ``batch_size`` sequences of up to ``context_length``."""
        c = self.config
        weight = self.wte.weight
        return KVCache(c.n_layer, batch_size, c.n_head, c.context_length, c.head_dim,
                       device=weight.device, dtype=weight.dtype)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = False,
    ) -> torch.Tensor:
        """Extend ``idx`` ``(B, T0)`` by ``max_new_tokens`` sampled tokens: ``(B, T0 + n)``.

        ``temperature`` divides the logits (0 means greedy: always the most likely
        token); ``top_k`` keeps only the k most likely tokens; ``generator`` (on the
        model's device) makes sampling reproducible. The window slides: only the
        last ``context_length`` tokens condition each prediction.

        ``use_cache=True`` keeps keys and values in a :class:`KVCache`, so each step
        runs the model on one new token instead of the whole window; the tokens are
        the same. Once the window is full, absolute positions (learned or
        sinusoidal) force the cache to be refilled from the shifted window at every
        step (as costly as no cache): the gain is in sequences up to
        ``context_length``. RoPE's keys would stay valid (attention sees only the
        difference of positions), but the cache is refilled alike, so that cached and
        uncached generation compute the same thing for every ``position``.
        """
        max_new_tokens = _require_int("max_new_tokens", max_new_tokens, 0)
        temperature = require_number("temperature", temperature, 0)
        if top_k is not None:
            top_k = _require_int("top_k", top_k, 1)
        self._check_inputs(idx, None)  # once: every sampled token is in the vocabulary
        was_training = self.training
        self.eval()
        context = self.config.context_length
        cache = self.new_cache(idx.shape[0]) if use_cache else None
        for _ in range(max_new_tokens):
            window = idx[:, -context:]  # (B, <= context_length)
            if cache is not None:
                if 0 < cache.length < context:
                    window = idx[:, -1:]  # only the newest token is not cached yet
                else:  # empty, or full: (re)fill the cache from the window
                    cache.reset()
            logits = self._forward(window, None, cache)[0][:, -1, :]  # (B, V): next token
            if temperature == 0:
                next_id = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probs = F.softmax(logits, dim=-1)
                next_id = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
            idx = torch.cat([idx, next_id], dim=1)
        self.train(was_training)
        return idx

    def _load_copied(self, state: dict[str, torch.Tensor], device: torch.device) -> GPT:
        """Load the copied weights ``state`` (names of this model) and move to ``device``."""
        if self.config.tie_embeddings:
            state["lm_head.weight"] = state["wte.weight"]
        self.load_state_dict(state)
        return self.to(device)

    @classmethod
    def from_hf(cls, hf_model) -> GPT:
        """A GPT with the config and weights of a ``transformers`` ``GPT2LMHeadModel``.

        GPT-2 stores its linear layers as ``Conv1D`` with weights of shape
        ``(in, out)``; ``nn.Linear`` keeps ``(out, in)``, so those are transposed.
        """
        config = GPTConfig.from_hf(hf_model.config)
        model = cls(config)
        source = hf_model.state_dict()
        prefix = "transformer."
        renames = {"wte.weight": "wte.weight", "wpe.weight": "wpe.weight",
                   "ln_f.weight": "ln_f.weight", "ln_f.bias": "ln_f.bias"}
        for i in range(config.n_layer):
            for ours, theirs in (("ln_1", "ln_1"), ("ln_2", "ln_2"), ("attn.qkv", "attn.c_attn"),
                                 ("attn.proj", "attn.c_proj"), ("mlp.fc", "mlp.c_fc"),
                                 ("mlp.proj", "mlp.c_proj")):
                for kind in ("weight", "bias"):
                    renames[f"blocks.{i}.{ours}.{kind}"] = f"h.{i}.{theirs}.{kind}"
        transposed = (".attn.qkv.weight", ".attn.proj.weight", ".mlp.fc.weight", ".mlp.proj.weight")
        state = {}
        for ours, theirs in renames.items():
            tensor = source[prefix + theirs]
            state[ours] = tensor.t() if ours.endswith(transposed) else tensor
        return model._load_copied(state, next(hf_model.parameters()).device)

    @classmethod
    def from_hf_llama(cls, hf_model) -> GPT:
        """A GPT with the config and weights of a ``transformers`` ``LlamaForCausalLM``.

        The model is the modern block (:meth:`GPTConfig.from_hf_llama`). Llama keeps
        the query, key and value matrices apart (``(out, in)`` each, like
        ``nn.Linear``); they are stacked into ``attn.qkv``. Its MLP's ``gate_proj``,
        ``up_proj`` and ``down_proj`` are :class:`SwiGLU`'s ``gate``, ``fc`` and
        ``proj``. Both use the same RoPE pairing (:func:`rotate_half`), so no
        feature is permuted.
        """
        if type(getattr(hf_model, "config", None)).__name__ != "LlamaConfig":
            raise TypeError(f"hf_model must be a transformers LlamaForCausalLM; got "
                            f"{type(hf_model).__name__}")
        config = GPTConfig.from_hf_llama(hf_model.config)
        model = cls(config)
        source = {k.removeprefix("model."): v for k, v in hf_model.state_dict().items()}
        kinds = ("weight", "bias") if config.bias else ("weight",)
        state = {"wte.weight": source["embed_tokens.weight"],
                 "ln_f.weight": source["norm.weight"]}
        if not config.tie_embeddings:
            state["lm_head.weight"] = source["lm_head.weight"]
        for i in range(config.n_layer):
            ours, theirs = f"blocks.{i}.", f"layers.{i}."
            state[ours + "ln_1.weight"] = source[theirs + "input_layernorm.weight"]
            state[ours + "ln_2.weight"] = source[theirs + "post_attention_layernorm.weight"]
            for kind in kinds:
                state[ours + f"attn.qkv.{kind}"] = torch.cat(
                    [source[theirs + f"self_attn.{m}_proj.{kind}"] for m in "qkv"])
                for mine, hf in (("attn.proj", "self_attn.o_proj"), ("mlp.gate", "mlp.gate_proj"),
                                 ("mlp.fc", "mlp.up_proj"), ("mlp.proj", "mlp.down_proj")):
                    state[ours + f"{mine}.{kind}"] = source[theirs + f"{hf}.{kind}"]
        return model._load_copied(state, next(hf_model.parameters()).device)
