"""Quantization, pruning, sizes and timing helpers of chapter 13."""

import warnings

import pytest
import torch

from course_lib.models import GPT, GPTConfig, compress

CONFIG = GPTConfig(vocab_size=40, context_length=16, n_layer=2, n_head=2, d_model=64)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(CONFIG).eval()


def test_tied_output_layer_is_left_out(model):
    names = [name for name, _ in compress.linear_layers(model)]
    assert "lm_head" not in names and len(names) == 4 * CONFIG.n_layer


def test_int8_copy_is_warning_free_close_and_under_40_percent_on_disk(model):
    x = torch.randint(CONFIG.vocab_size, (2, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = compress.quantize_int8(model)
        got = q(x)[0]
    assert type(model.blocks[0].attn.qkv) is torch.nn.Linear  # the original is untouched
    assert "quantized" in type(q.blocks[0].attn.qkv).__module__
    with torch.no_grad():
        expected = model(x)[0]
    assert (got - expected).abs().max() < 0.05 * expected.abs().max()
    assert compress.file_size(q) < 0.4 * compress.file_size(model)


def test_pruning_removes_the_smallest_weights_globally(model):
    pruned = compress.prune_magnitude(model, 0.3)
    assert compress.sparsity(model) == 0.0
    assert abs(compress.sparsity(pruned) - 0.3) < 1e-3
    kept = torch.cat([m.weight.flatten() for _, m in compress.linear_layers(pruned)])
    removed = torch.cat([o.weight[p.weight == 0].flatten() for (_, o), (_, p) in zip(
        compress.linear_layers(model), compress.linear_layers(pruned))])
    assert removed.abs().max() <= kept[kept != 0].abs().min()
    assert not any("orig" in n for n, _ in pruned.named_parameters())  # made permanent
    assert torch.equal(pruned.wte.weight, model.wte.weight)


def test_zeros_compress_and_sizes_are_deterministic(model):
    pruned = compress.prune_magnitude(model, 0.6)
    assert compress.file_size(pruned) == compress.file_size(model)
    assert compress.file_size(pruned, compressed=True) < 0.7 * compress.file_size(
        model, compressed=True)


def test_time_generation_returns_a_positive_median(model):
    prompt = torch.zeros(1, 3, dtype=torch.long)
    assert compress.time_generation(model, prompt, 4, use_cache=True, repeats=2) > 0


@pytest.mark.parametrize("amount", [1.0, -0.1, "half"])
def test_bad_amount_is_named(model, amount):
    with pytest.raises((ValueError, TypeError), match="amount must be the fraction"):
        compress.prune_magnitude(model, amount)


def test_nothing_to_quantize_is_explained():
    with pytest.raises(ValueError, match="no nn.Linear layer to quantize"):
        compress.quantize_int8(torch.nn.Sequential(torch.nn.ReLU()))


def test_symmetric_int8_matches_pytorch_and_bounds_the_error(model):
    weight = model.blocks[0].attn.qkv.weight
    q, scale = compress.symmetric_int8(weight)
    packed = compress.quantize_int8(model).blocks[0].attn.qkv.weight()
    assert torch.equal(q, packed.int_repr()) and scale.item() == pytest.approx(packed.q_scale())
    assert (q.float() * scale - weight).abs().max() <= scale / 2 + 1e-9
    rows, row_scales = compress.symmetric_int8(weight, per_row=True)
    assert row_scales.shape == (weight.shape[0], 1) and rows.dtype == torch.int8
    assert (rows.float() * row_scales - weight).abs().mean() < (
        q.float() * scale - weight).abs().mean()
    with pytest.raises(ValueError, match=r"per_row=True needs a 2-D"):
        compress.symmetric_int8(torch.ones(3), per_row=True)
