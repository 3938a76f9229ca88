"""The GPT of chapter 4: equal to transformers' GPT-2, causal, trainable, clear errors."""

import pytest
import torch
from transformers import GPT2LMHeadModel

from course_lib.models import GPT, GPTConfig

TINY = GPTConfig(vocab_size=97, context_length=32, n_layer=2, n_head=4, d_model=32)


def twins(config=TINY, seed=0):
    """A randomly initialised HF GPT-2 and our GPT holding the same weights."""
    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(config.to_hf()).eval()
    return hf, GPT.from_hf(hf).eval()


@pytest.mark.parametrize("config", [
    TINY,
    GPTConfig(vocab_size=50, context_length=16, n_layer=3, n_head=2, d_model=24, d_ff=40),
])
def test_logits_equal_gpt2_to_1e_5(config):
    hf, ours = twins(config)
    x = torch.randint(config.vocab_size, (3, config.context_length))
    with torch.no_grad():
        expected = hf(input_ids=x).logits
        got, _ = ours(x)
    assert got.shape == (3, config.context_length, config.vocab_size)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_loss_equals_gpt2_loss_with_shifted_targets():
    hf, ours = twins()
    hf.loss_type = "ForCausalLM"
    x = torch.randint(TINY.vocab_size, (2, 32))
    y = torch.cat([x[:, 1:], torch.full((2, 1), -100)], dim=1)  # last position: nothing
    with torch.no_grad():
        torch.testing.assert_close(ours(x, y)[1], hf(input_ids=x, labels=x).loss,
                                   atol=1e-6, rtol=0)


def test_config_round_trips_through_transformers():
    assert GPTConfig.from_hf(TINY.to_hf()) == TINY
    assert GPTConfig(**TINY.to_dict()) == TINY


def test_attention_is_causal():
    _, model = twins()
    x = torch.randint(TINY.vocab_size, (1, 20))
    changed = x.clone()
    changed[0, 12] = (x[0, 12] + 1) % TINY.vocab_size
    with torch.no_grad():
        a, b = model(x)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :12], b[:, :12])  # the past cannot see the future
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_every_parameter_gets_a_finite_nonzero_gradient():
    torch.manual_seed(0)
    model = GPT(TINY)
    x = torch.randint(TINY.vocab_size, (4, 32))
    _, loss = model(x, torch.roll(x, -1, dims=1))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_initial_loss_is_near_uniform_guessing():
    torch.manual_seed(0)
    x = torch.randint(TINY.vocab_size, (8, 32))
    _, loss = GPT(TINY)(x, torch.roll(x, -1, dims=1))
    assert abs(loss.item() - torch.log(torch.tensor(97.0)).item()) < 0.05


def test_initialisation_scales_residual_projections():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, context_length=8, n_layer=8, n_head=4, d_model=256))
    assert abs(model.blocks[0].attn.qkv.weight.std().item() - 0.02) < 1e-3
    assert abs(model.blocks[0].mlp.proj.weight.std().item() - 0.02 / 4) < 5e-4
    assert model.lm_head.weight is model.wte.weight


def test_param_groups_decay_matrices_only_and_cover_each_parameter_once():
    model = GPT(TINY)
    decay, no_decay = model.param_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    ids = [id(p) for g in (decay, no_decay) for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_generate_greedy_matches_argmax_and_slides_past_the_context():
    _, model = twins()
    start = torch.randint(TINY.vocab_size, (2, 30))
    out = model.generate(start, 5, temperature=0)
    assert out.shape == (2, 35) and torch.equal(out[:, :30], start)
    with torch.no_grad():
        first = model(start)[0][:, -1].argmax(-1)
    assert torch.equal(out[:, 30], first)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a = model.generate(start, 4, top_k=5, generator=g1)
    assert torch.equal(a, model.generate(start, 4, top_k=5, generator=g2))


@pytest.mark.parametrize("kwargs, words", [
    (dict(n_head=5), ["d_model (32)", "n_head (5)", "divisible"]),
    (dict(n_layer=0), ["n_layer", ">= 1", "0"]),
    (dict(vocab_size=2.5), ["vocab_size", "integer", "2.5"]),
    (dict(dropout=1.0), ["dropout", "[0, 1)", "1.0"]),
])
def test_bad_configs_get_clear_errors(kwargs, words):
    fields = TINY.to_dict() | kwargs
    fields.pop("d_ff")
    with pytest.raises((ValueError, TypeError)) as err:  # TypeError: not an integer
        GPTConfig(**fields)
    for word in words:
        assert word in str(err.value)


def test_sequence_longer_than_context_is_refused():
    with pytest.raises(ValueError, match=r"T=33, longer than the model's context_length=32"):
        GPT(TINY)(torch.zeros(1, 33, dtype=torch.long))


def test_bad_inputs_name_the_argument():
    model = GPT(TINY)
    with pytest.raises(ValueError, match=r"idx must be an integer tensor of shape \(B, T\)"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"targets has shape \(2, 2\)"):
        model(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        model.generate(torch.zeros(1, 1, dtype=torch.long), 1, temperature=-1)


def test_unsupported_gpt2_options_are_refused():
    hf_config = TINY.to_hf()
    hf_config.scale_attn_by_inverse_layer_idx = True
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx"):
        GPTConfig.from_hf(hf_config)
