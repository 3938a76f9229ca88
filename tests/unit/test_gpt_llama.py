"""The modern block of the course's GPT: RMSNorm, SwiGLU, RoPE, no biases, untied output.

Its defaults leave the GPT-2 model exactly as it was (numbers from the code before the
options existed); with all options on, it equals transformers' LlamaForCausalLM.
"""

import hashlib
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM

from course_lib.core.seeding import seeded
from course_lib.models import GPT, GPTConfig
from course_lib.models.gpt import (
    RMSNorm,
    RotaryEmbedding,
    SinusoidalPositions,
    SwiGLU,
    apply_rope,
)

RESULTS = Path(__file__).resolve().parents[2] / "notebooks" / "results"
SHAPE = dict(vocab_size=97, context_length=32, n_layer=2, n_head=4, d_model=32)
LLAMA = dict(norm="rmsnorm", mlp="swiglu", position="rope", bias=False)
MODERN = GPTConfig(**SHAPE, **LLAMA, tie_embeddings=False)


# --- the defaults are GPT-2, unchanged ---------------------------------------------------
# Computed by course_lib/models/gpt.py at eb643f0 (before the options existed) for
# GPT(GPTConfig(**SHAPE)) built under seeded(0), on the input of default_model_outputs.
HEAD_MODULE_TREE_SHA = "25ec031217a9ccb4"  # sha256 of str(model)
HEAD_STATE_SHAPES_SHA = "45fe5a98e9d2785e"  # sha256 of [(state_dict key, shape), ...]
HEAD_PARAM_SUMS = {"wte.weight": 0.6455222152408169, "wpe.weight": 0.5040055226090772,
                   "blocks.1.mlp.proj.weight": 0.8204237062398647,
                   "blocks.0.attn.qkv.weight": -0.39705445526396943}
HEAD_ABS_SUM = 584.9252348591027  # sum of |p| over the state_dict
HEAD_LOGITS = [0.16354042291641235, -0.10525300353765488, 0.058143068104982376,
               -0.05670055001974106, 0.2687285244464874]  # logits[1, -1, :5]
HEAD_LOSS = 4.597409248352051
HEAD_GREEDY = [[0, 7, 14, 21, 28, 28, 28, 28, 28, 28, 28, 28, 28],
               [30, 37, 44, 51, 58, 9, 9, 9, 9, 9, 9, 9, 9]]


def sha16(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_default_model_is_the_gpt2_model_of_before():
    """Same modules, names, shapes, initial draws, logits, loss and greedy tokens. (The
    draws are compared to 1e-9, not bit for bit: PyTorch's CPU normal_ has an AVX2 and
    a plain code path that may differ in the last bit.)"""
    with seeded(0):
        model = GPT(GPTConfig(**SHAPE)).eval()
    state = model.state_dict()
    assert sha16(str(model)) == HEAD_MODULE_TREE_SHA
    assert sha16(repr([(k, tuple(v.shape)) for k, v in state.items()])) \
        == HEAD_STATE_SHAPES_SHA
    for name, expected in HEAD_PARAM_SUMS.items():
        assert state[name].double().sum().item() == pytest.approx(expected, abs=1e-9)
    assert sum(v.double().abs().sum().item() for v in state.values()) \
        == pytest.approx(HEAD_ABS_SUM, abs=1e-7)
    x = torch.arange(64).reshape(2, 32) * 7 % 97
    with torch.no_grad():
        logits, loss = model(x, torch.roll(x, -1, 1))
    torch.testing.assert_close(logits[1, -1, :5], torch.tensor(HEAD_LOGITS), atol=1e-6, rtol=0)
    assert loss.item() == pytest.approx(HEAD_LOSS, abs=1e-6)
    assert model.generate(x[:, :5], 8, temperature=0.0).tolist() == HEAD_GREEDY


def test_default_config_dict_has_only_the_old_keys():
    old_keys = ["vocab_size", "context_length", "n_layer", "n_head", "d_model", "d_ff",
                "dropout", "bias", "layer_norm_eps", "init_std"]
    assert list(GPTConfig(**SHAPE).to_dict()) == old_keys
    assert GPTConfig(**SHAPE, bias=False).to_dict()["bias"] is False
    modern = MODERN.to_dict()
    assert {k: modern[k] for k in ("norm", "mlp", "position", "tie_embeddings")} == {
        "norm": "rmsnorm", "mlp": "swiglu", "position": "rope", "tie_embeddings": False}
    assert "rope_theta" not in modern  # at its default
    assert GPTConfig(**modern) == MODERN
    assert GPTConfig(**GPTConfig(**SHAPE, rope_theta=500.0, position="rope").to_dict()
                     ).rope_theta == 500.0


def stored_model_configs() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(RESULTS.glob("*/manifest.json")):
        spec = json.loads(path.read_text())["spec"]
        if "model_config" in spec and "n_layer" in spec["model_config"]:
            found.append((path.parent.name, spec["model_config"]))
    return found


@pytest.mark.parametrize("name, stored", stored_model_configs())
def test_stored_configs_rebuild_and_give_the_same_dict(name, stored):
    """Committed models' specs lack the new keys; they rebuild the GPT-2 block and give
    back the very dict (so the stored spec still matches and keeps its key)."""
    config = GPTConfig(**stored)
    assert (config.norm, config.mlp, config.position, config.tie_embeddings) == (
        "layernorm", "gelu", "learned", True)
    assert config.to_dict() == stored


def test_some_stored_configs_were_found():
    assert len(stored_model_configs()) >= 3


# --- the pieces ----------------------------------------------------------------------------
def test_rmsnorm_divides_by_the_root_mean_square():
    x = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(0))
    norm = RMSNorm(8, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 8))
    expected = x / x.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt() * norm.weight
    torch.testing.assert_close(norm(x), expected)
    torch.testing.assert_close(norm(x), F.rms_norm(x, (8,), norm.weight, 1e-6))


def test_swiglu_is_a_silu_gated_product():
    config = GPTConfig(**SHAPE, mlp="swiglu")
    assert config.d_ff == 88  # 8 * ceil(32 / 3): about 2/3 of 4 * 32
    mlp = SwiGLU(config)
    x = torch.randn(2, 5, 32)
    gate = mlp.gate(x)
    expected = mlp.proj(gate * torch.sigmoid(gate) * mlp.fc(x))
    torch.testing.assert_close(mlp(x), expected)


def test_sinusoidal_positions_in_the_gpt_are_as_large_as_its_token_embeddings():
    config = GPTConfig(vocab_size=4096, context_length=1024, n_layer=1, n_head=1,
                       d_model=64, position="sinusoidal")
    with seeded(0):
        model = GPT(config)
    rms = lambda t: t.pow(2).mean().sqrt().item()  # noqa: E731
    assert rms(model.wpe.table) == pytest.approx(config.init_std, rel=0.01)
    assert rms(model.wte.weight) == pytest.approx(config.init_std, rel=0.01)


def test_sinusoidal_positions_follow_vaswani():
    table = SinusoidalPositions(16, 8).table  # (16, 8)
    assert table[0].tolist() == [0.0, 1.0] * 4
    p, i = 5, 2  # features 2i, 2i + 1 of position p
    w = 10000.0 ** (-2 * i / 8)
    torch.testing.assert_close(table[p, 2 * i:2 * i + 2],
                               torch.tensor([torch.sin(torch.tensor(p * w)),
                                             torch.cos(torch.tensor(p * w))]))


def rotated(x: torch.Tensor, positions: list[int], rope: RotaryEmbedding) -> torch.Tensor:
    return apply_rope(x, *rope(torch.tensor(positions)))


def test_rope_scores_depend_on_the_distance_only_and_keep_norms():
    rope = RotaryEmbedding(head_dim=16, context_length=64)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16, generator=g), torch.randn(1, 1, 1, 16, generator=g)
    scores = [(rotated(q, [m], rope) * rotated(k, [m - 3], rope)).sum().item()
              for m in (3, 10, 40, 63)]
    assert max(scores) - min(scores) < 1e-5  # query m, key m - 3: the same score
    torch.testing.assert_close(rotated(q, [17], rope).norm(), q.norm())
    assert abs((rotated(q, [5], rope) * k).sum() - (q * k).sum()) > 1e-3  # it does turn


def test_rope_halves_convention_is_the_interleaved_one_permuted():
    """Llama in transformers pairs features (i, i + hs/2); the RoFormer paper pairs
    (2i, 2i + 1). Permuting each head's features maps one onto the other."""
    hs, T = 8, 6
    x = torch.randn(1, 2, T, hs, generator=torch.Generator().manual_seed(1))
    angle = torch.arange(T)[:, None] * 10000.0 ** (-torch.arange(0, hs, 2) / hs)  # (T, hs/2)
    even, odd = x[..., 0::2], x[..., 1::2]  # the paper's pairs
    paper = torch.stack([even * angle.cos() - odd * angle.sin(),
                         even * angle.sin() + odd * angle.cos()], dim=-1).flatten(-2)
    perm = torch.cat([torch.arange(0, hs, 2), torch.arange(1, hs, 2)])  # evens, then odds
    ours = rotated(x[..., perm], list(range(T)), RotaryEmbedding(hs, T))
    torch.testing.assert_close(ours, paper[..., perm])


# --- the modern model ----------------------------------------------------------------------
@pytest.mark.parametrize("options", [
    dict(norm="rmsnorm"), dict(mlp="swiglu"), dict(position="rope"),
    dict(position="sinusoidal"), dict(LLAMA, tie_embeddings=False),
])
def test_every_parameter_of_a_modern_model_gets_a_gradient(options):
    with seeded(0):
        model = GPT(GPTConfig(**SHAPE, **options))
        x = torch.randint(97, (4, 32))
    _, loss = model(x, torch.roll(x, -1, dims=1))
    assert abs(loss.item() - torch.log(torch.tensor(97.0)).item()) < 0.1
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_modern_model_has_no_position_table_and_no_biases():
    model = GPT(MODERN)
    names = [n for n, _ in model.named_parameters()]
    assert not any("wpe" in n or n.endswith(".bias") for n in names)
    assert "blocks.0.mlp.gate.weight" in names and "lm_head.weight" in names
    assert model.lm_head.weight is not model.wte.weight
    assert not any("rope" in k for k in model.state_dict())  # tables are rebuilt, not stored


def test_rope_makes_order_matter():
    with seeded(0):
        model = GPT(GPTConfig(**SHAPE, position="rope")).eval()
    x = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        a, b = model(x)[0][0, -1], model(x[:, [1, 0, 2, 3]])[0][0, -1]
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("options", [LLAMA, dict(position="sinusoidal")])
def test_kv_cache_gives_the_full_forward_with_rope(options):
    """Cached keys are stored rotated; new tokens get positions cache.length onwards."""
    config = GPTConfig(**(SHAPE | dict(vocab_size=61, context_length=24, n_layer=3)),
                       **options)
    with seeded(0):
        model = GPT(config).eval()
        x = torch.randint(61, (3, 30))
    with torch.no_grad():
        full = model(x[:, :20])[0]
        cache = model.new_cache(3)
        pieces = [model(x[:, :7], cache=cache)[0]]  # a prompt, one token at a time, 8 at once
        pieces += [model(x[:, t:t + 1], cache=cache)[0] for t in range(7, 12)]
        pieces.append(model(x[:, 12:20], cache=cache)[0])
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)
    for prompt_len, new in [(5, 15), (1, 30), (24, 6), (30, 4)]:  # within and past context
        start = x[:2, :prompt_len]
        assert torch.equal(model.generate(start, new, temperature=0),
                           model.generate(start, new, temperature=0, use_cache=True))


# --- equal to transformers' Llama ---------------------------------------------------------
def llama_twins(config: GPTConfig, seed: int = 0):
    """A randomly initialised LlamaForCausalLM and our GPT holding the same weights. The
    norm gains and biases are drawn too (Llama starts them at 1 and 0)."""
    with seeded(seed):
        hf = LlamaForCausalLM(config.to_hf_llama()).eval()
        with torch.no_grad():
            for name, p in hf.named_parameters():
                if p.ndim == 1:
                    p.copy_(1 + 0.3 * torch.randn_like(p) if "norm" in name
                            else 0.1 * torch.randn_like(p))
    return hf, GPT.from_hf_llama(hf).eval()


@pytest.mark.parametrize("options", [
    dict(tie_embeddings=False),
    dict(tie_embeddings=True),
    dict(tie_embeddings=False, bias=True, d_ff=40, rope_theta=500.0, layer_norm_eps=1e-6),
])
def test_logits_and_loss_equal_llama_to_1e_5(options):
    config = GPTConfig(**(SHAPE | LLAMA | dict(init_std=0.1) | options))
    hf, ours = llama_twins(config)
    hf.loss_type = "ForCausalLM"
    assert GPTConfig.from_hf_llama(hf.config) == config
    x = torch.randint(config.vocab_size, (3, 32), generator=torch.Generator().manual_seed(2))
    y = torch.cat([x[:, 1:], torch.full((3, 1), -100)], dim=1)
    with torch.no_grad():
        expected = hf(input_ids=x, labels=x)
        logits, loss = ours(x, y)
    assert expected.logits.abs().max() > 1  # not a near-zero comparison
    torch.testing.assert_close(logits, expected.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(loss, expected.loss, atol=1e-6, rtol=0)
    assert sum(p.numel() for p in ours.parameters()) == hf.num_parameters()


@pytest.mark.parametrize("change, words", [
    (dict(num_key_value_heads=2), ["num_key_value_heads", "2", "4"]),
    (dict(hidden_act="gelu"), ["hidden_act", "'gelu'", "'silu'"]),
    (dict(rope_parameters={"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}),
     ["rope_type", "'linear'", "'default'"]),
    (dict(attention_dropout=0.1), ["attention_dropout", "0.1"]),
    (dict(mlp_bias=True), ["mlp_bias", "True", "False"]),
])
def test_llama_options_this_gpt_lacks_are_refused(change, words):
    hf_config = MODERN.to_hf_llama()
    for key, value in change.items():
        setattr(hf_config, key, value)
    with pytest.raises(ValueError) as err:
        GPTConfig.from_hf_llama(hf_config)
    for word in words:
        assert word in str(err.value)
