"""The training-memory estimate agrees with what PyTorch holds, measured two ways."""

import pytest
import torch

from course_lib.models import GPT, GPTConfig, memory


def setup(config, batch_size, seed=0):
    torch.manual_seed(seed)
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randint(config.vocab_size, (batch_size, config.context_length))
    y = torch.roll(x, -1, dims=1)

    def step():
        model(x, y)[1].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # creates the optimizer state
    return model, optimizer, x, y, step


@pytest.mark.parametrize("config, batch_size", [
    (GPTConfig(vocab_size=1000, context_length=64, n_layer=2, n_head=4, d_model=64), 4),
    (GPTConfig(vocab_size=64, context_length=128, n_layer=3, n_head=2, d_model=96, d_ff=200), 2),
])
def test_activation_formula_equals_saved_tensors(config, batch_size):
    model, _, x, y, _ = setup(config, batch_size)
    measured = memory.saved_activation_bytes(lambda: model(x, y)[1], exclude=model.parameters())
    assert measured == memory.activation_bytes(config, batch_size)


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("mlp", ["gelu", "swiglu"])
@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rope"])
@pytest.mark.parametrize("bias, tie", [(True, True), (False, False)])
def test_activation_formula_covers_the_modern_block(norm, mlp, position, bias, tie):
    config = GPTConfig(vocab_size=50, context_length=12, n_layer=3, n_head=4, d_model=48,
                       norm=norm, mlp=mlp, position=position, bias=bias,
                       tie_embeddings=tie)
    model, _, x, y, _ = setup(config, 3)
    measured = memory.saved_activation_bytes(lambda: model(x, y)[1], exclude=model.parameters())
    assert measured == memory.activation_bytes(config, 3)


@pytest.mark.parametrize("config, batch_size", [
    (GPTConfig(vocab_size=1000, context_length=64, n_layer=2, n_head=4, d_model=64), 4),
    (GPTConfig(vocab_size=50, context_length=32, n_layer=4, n_head=4, d_model=128), 1),
])
def test_peak_estimate_matches_measured_peak_within_5_percent(config, batch_size):
    model, optimizer, _, _, step = setup(config, batch_size)
    existing = list(model.parameters()) + [
        t for state in optimizer.state.values() for t in state.values()]
    peak = memory.measure_peak_memory(step, existing)
    estimate = memory.training_memory(config, batch_size)
    assert abs(estimate.peak / peak - 1) < 0.05
    assert estimate.total >= peak  # the simple sum is an upper bound


def test_components():
    config = GPTConfig(vocab_size=100, context_length=16, n_layer=1, n_head=1, d_model=8)
    m = memory.training_memory(config, 2)
    n = sum(p.numel() for p in GPT(config).parameters())
    assert (m.weights, m.gradients, m.optimizer) == (4 * n, 4 * n, 8 * n)
    assert m.loss_buffers == 2 * 2 * 16 * 100 * 4
    assert "peak" in str(m)
    with pytest.raises(ValueError, match="batch_size must be a positive integer; got 0"):
        memory.training_memory(config, 0)
