"""μP (GPTConfig.mup_base_width) against Microsoft's reference package ``mup``.

The reference is the standard-parametrization GPT made μP by ``mup`` itself: its
output layer replaced by ``mup.MuSharedReadout`` (tied to the token embedding),
``mup.set_base_shapes`` against the base and a wider "delta" model, ``mup.init``
for the initialisation scales and ``mup.MuAdamW`` for the per-layer learning rates.
Attention's 1/d scaling is by hand in both (``mup`` leaves it to the user).
"""

import math

import mup
import pytest
import torch

from course_lib.models.gpt import GPT, GPTConfig, weight_decay_groups

BASE, V, T = 32, 64, 16


def _config(d: int, base: int | None = BASE) -> GPTConfig:
    return GPTConfig(vocab_size=V, context_length=T, n_layer=2, n_head=2, d_model=d,
                     mup_base_width=base)


def _reference(d: int) -> GPT:
    """Our SP GPT of width ``d`` turned into μP by the ``mup`` package."""
    model = GPT(_config(d, None))
    model.lm_head = mup.MuSharedReadout(model.wte.weight, bias=False)
    for block in model.blocks:  # 1/d attention, as mup's documentation asks of the user
        block.attn.scale = _config(d).attention_scale
    base, delta = GPT(_config(BASE, None)), GPT(_config(2 * BASE, None))
    for m in (base, delta):
        m.lm_head = mup.MuSharedReadout(m.wte.weight, bias=False)
    mup.set_base_shapes(model, base, delta=delta, rescale_params=False)
    return model


def _named_groups(model, groups) -> dict[str, tuple[float, float]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}


@pytest.mark.parametrize("d", [16, 32, 128])
def test_learning_rates_and_weight_decay_equal_mups(d):
    ours = GPT(_config(d))
    ref = _reference(d)
    mine = _named_groups(ours, ours.param_groups(0.1, 1e-2))
    theirs = _named_groups(ref, mup.MuAdamW(weight_decay_groups(ref, 0.1), lr=1e-2)
                           .param_groups)
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert mine[name] == pytest.approx(theirs[name], rel=1e-12), name
    assert mine["blocks.0.mlp.fc.weight"][0] == pytest.approx(1e-2 * BASE / d)


@pytest.mark.parametrize("d", [16, 128])
def test_initial_scales_equal_mups(d):
    """mup.init.normal_(std) on each weight (the mean variance of 50 draws), against the
    standard deviation ours drew, within five standard errors (1 / sqrt(2 n) of it)."""
    torch.manual_seed(0)
    ours = GPT(_config(d))
    ref = _reference(d)
    residual = {n for n, _ in ref.named_parameters() if n.endswith("proj.weight")}
    for name, p in ref.named_parameters():
        if p.ndim < 2:
            continue
        std = 0.02 / (math.sqrt(2 * 2) if name in residual else 1.0)
        draws = []
        for _ in range(50):
            expected = torch.empty_like(p)
            expected.infshape = p.infshape
            draws.append(mup.init.normal_(expected, std=std).var().item())
        got = dict(ours.named_parameters())[name].std().item()
        tolerance = 5 / math.sqrt(2 * p.numel())
        assert got == pytest.approx(math.sqrt(sum(draws) / 50), rel=tolerance), name


@pytest.mark.parametrize("d", [16, 64])
def test_training_losses_equal_mups(d):
    """The same initial weights, batches and rates: the same losses, step for step."""
    torch.manual_seed(1)
    ours, ref = GPT(_config(d)), _reference(d)
    ref.load_state_dict(ours.state_dict())
    opt_ours = torch.optim.AdamW(ours.param_groups(0.1, 3e-3), lr=3e-3)
    opt_ref = mup.MuAdamW(weight_decay_groups(ref, 0.1), lr=3e-3)
    data = torch.randint(0, V, (12, 8, T + 1), generator=torch.Generator().manual_seed(2))
    for batch in data:
        losses = []
        for model, opt in ((ours, opt_ours), (ref, opt_ref)):
            loss = model(batch[:, :-1], batch[:, 1:])[1]
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_base_width_is_sp_exactly():
    torch.manual_seed(3)
    sp = GPT(_config(BASE, None))
    torch.manual_seed(3)
    mu = GPT(_config(BASE))
    x = torch.randint(0, V, (2, T))
    assert torch.equal(sp(x)[0], mu(x)[0])
    assert [g["lr"] for g in mu.param_groups(0.0, 1e-3)] == [1e-3] * 3


def test_bad_mup_settings_are_refused():
    with pytest.raises(ValueError, match="mup_base_width .*divisible by n_head"):
        GPTConfig(vocab_size=V, context_length=T, n_layer=1, n_head=3, d_model=48,
                  mup_base_width=32)
    with pytest.raises(ValueError, match="mup_base_width"):
        _config(32, 0)
    with pytest.raises(ValueError, match="lr is required under μP"):
        GPT(_config(64)).param_groups(0.1)
    with pytest.raises(ValueError, match="mup_base_width=32 has no GPT-2 equivalent"):
        _config(64).to_hf()


def test_a_bad_learning_rate_is_named():
    with pytest.raises(ValueError, match="lr"):
        GPT(_config(64)).param_groups(0.1, -1.0)
    with pytest.raises(ValueError, match="lr"):
        GPT(_config(64, None)).param_groups(0.1, float("nan"))
