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

Generation can reuse the keys and values of earlier positions instead of
recomputing them: pass a :class:`~course_lib.models.kv_cache.KVCache` to ``forward``
(``model.new_cache(B)``), or call ``generate(..., use_cache=True)`` (chapter 11).
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

__all__ = ["GPTConfig", "CausalSelfAttention", "MLP", "Block", "GPT", "weight_decay_groups"]


def _require_int(name: str, value: object, minimum: int) -> int:
    """``value`` as a Python ``int`` (NumPy integers accepted), at least ``minimum``."""
    return require_int(name, value, minimum, expected=f"an integer >= {minimum}")


@dataclass(frozen=True)
class GPTConfig:
    """Hyper-parameters of a GPT. All sizes are counts (tokens, layers, features).

    ``d_ff`` defaults to ``4 * d_model`` (GPT-2). ``dropout`` is applied to the
    embeddings, the attention weights and both residual branches, as in GPT-2.
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
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", 4 * self.d_model)
        object.__setattr__(self, "d_ff", _require_int("d_ff", self.d_ff, 1))
        for name, low, high, closed, expected in (
                ("dropout", 0, 1, (True, False), "a probability in [0, 1)"),
                ("layer_norm_eps", 0, None, (False, True),
                 "a positive number (LayerNorm divides by sqrt(variance + eps))"),
                ("init_std", 0, None, (True, True), "a standard deviation >= 0")):
            value = getattr(self, name)
            checked = require_number(name, value, low, high, closed=closed, expected=expected)
            object.__setattr__(self, name, plain(value, checked))
        object.__setattr__(self, "bias", require_bool("bias", self.bias))

    @property
    def head_dim(self) -> int:
        """Features per attention head, ``d_model // n_head``."""
        return self.d_model // self.n_head

    def to_dict(self) -> dict:
        """Plain ``dict`` (JSON-friendly) of the fields; ``GPTConfig(**d)`` rebuilds it."""
        return asdict(self)

    def to_hf(self):
        """The equivalent ``transformers.GPT2Config`` (dropouts, epsilon and widths carried over)."""
        if not self.bias:
            raise ValueError("bias=False has no GPT-2 equivalent in transformers (GPT-2 has biases)")
        from transformers import GPT2Config

        return GPT2Config(
            vocab_size=self.vocab_size, n_positions=self.context_length, n_embd=self.d_model,
            n_layer=self.n_layer, n_head=self.n_head, n_inner=self.d_ff,
            activation_function="gelu_new", resid_pdrop=self.dropout, embd_pdrop=self.dropout,
            attn_pdrop=self.dropout, layer_norm_epsilon=self.layer_norm_eps,
            initializer_range=self.init_std, bos_token_id=None, eos_token_id=None,
            tie_word_embeddings=True,
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


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position ``t`` sees only positions ``<= t``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.dropout = config.n_head, config.dropout
        # one matrix computes queries, keys and values for every head: C -> 3C
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=config.bias)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None,
                layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        # (B, T, C) -> (B, nh, T, hs): each head attends independently
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in (q, k, v))
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
            q, k, v, attn_mask=mask, is_causal=causal,
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


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None,
                layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)  # (B, T, C): tokens exchange information
        return x + self.mlp(self.ln_2(x))  # (B, T, C): each token is processed alone


class GPT(nn.Module):
    """Token + position embeddings, ``n_layer`` blocks, a final LayerNorm, tied output layer."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig; got {type(config).__name__}")
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.d_model)  # token embedding
        self.wpe = nn.Embedding(config.context_length, config.d_model)  # position embedding
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied: one (V, C) matrix reads and writes tokens
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2's initialisation: N(0, 0.02) weights, zero biases; residual projections
        (the last layer of each branch) scaled down by 1/sqrt(2 n_layer), so the residual
        stream's variance does not grow with depth."""
        std = self.config.init_std
        if isinstance(module, nn.Linear):
            if module in self._residual_projections():
                std = std / math.sqrt(2 * self.config.n_layer)
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)

    def _residual_projections(self) -> list[nn.Module]:
        return [m for b in self.blocks for m in (b.attn.proj, b.mlp.proj)]

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
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C) + (T, C) -> (B, T, C)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)
        if cache is not None:
            cache.commit()
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        return logits, loss

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Parameter groups for ``torch.optim.AdamW``; see :func:`weight_decay_groups`."""
        return weight_decay_groups(self, weight_decay)

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
        the same. Once the window is full, learned absolute positions force the
        cache to be refilled from the shifted window at every step (as costly as no
        cache): the gain is in sequences up to ``context_length``.
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
        state["lm_head.weight"] = state["wte.weight"]
        model.load_state_dict(state)
        return model.to(next(hf_model.parameters()).device)
