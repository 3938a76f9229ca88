"""NF4 with double quantization (QLoRA): the published codebook, nearest-level codes,
exact round trips, storage measured from the stored tensors, and the frozen NF4Linear."""

import math
import warnings

import pytest
import torch
from scipy.stats import norm
from torch import nn

from course_lib.models.nf4 import (
    NF4_OFFSET,
    NF4Linear,
    NF4Weight,
    QuantizedConstants,
    bits_per_parameter,
    dequantize_constants,
    dequantize_nf4,
    nf4_codebook,
    pack_codes,
    quantize_constants,
    quantize_linears,
    quantize_nf4,
    unpack_codes,
)

# The NF4 data type as published in QLoRA's appendix (Dettmers et al. 2023,
# dettmers2023qlora) and in bitsandbytes' kernels, float32 values.
PUBLISHED = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
             -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
             0.07958029955625534, 0.16093020141124725, 0.24611230194568634,
             0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
             0.7229568362236023, 1.0]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def weight(*shape, seed=0, std=0.05):
    return torch.randn(*shape, generator=gen(seed)) * std


def nearest_codes(w, absmax, block_size):
    """Brute force: index of the level nearest to w / absmax, block by block."""
    scaled = w.flatten().view(-1, block_size) / absmax[:, None]
    return (scaled[..., None] - nf4_codebook()).abs().argmin(-1)


def test_codebook_equals_the_published_nf4_values():
    levels = nf4_codebook(dtype=torch.float64)
    torch.testing.assert_close(levels, torch.tensor(PUBLISHED, dtype=torch.float64),
                               atol=1.5e-7, rtol=0)
    assert levels[0] == -1 and levels[7] == 0 and levels[15] == 1
    assert (levels > 0).sum() == 8 and (levels < 0).sum() == 7  # asymmetric: 8 + 7 + zero
    assert torch.all(levels[1:] > levels[:-1])


def test_codebook_levels_are_normal_quantiles():
    top = norm.ppf(NF4_OFFSET)
    positive = nf4_codebook(dtype=torch.float64)[8:] * top
    expected = norm.ppf([0.5 + (NF4_OFFSET - 0.5) * i / 8 for i in range(1, 9)])
    torch.testing.assert_close(positive, torch.tensor(expected), atol=1e-12, rtol=0)
    assert nf4_codebook() is not nf4_codebook()  # a fresh tensor: nothing shared to mutate


def test_packing_puts_two_codes_in_a_byte_and_round_trips():
    codes = torch.cartesian_prod(torch.arange(16), torch.arange(16)).flatten()
    packed = pack_codes(codes)
    assert packed.dtype == torch.uint8 and packed.shape == (256,)
    assert packed.tolist() == list(range(256))  # first code in the high four bits
    assert torch.equal(unpack_codes(packed), codes.to(torch.uint8))


def test_every_value_is_the_nearest_level_times_its_block_absmax():
    w = weight(32, 128)
    q = quantize_nf4(w, double_quant=False)
    absmax = w.flatten().view(-1, 64).abs().amax(1)
    assert torch.equal(q.absmax, absmax)
    codes = nearest_codes(w, absmax, 64)
    assert torch.equal(unpack_codes(q.packed).long(), codes.flatten())
    expected = (nf4_codebook()[codes] * absmax[:, None]).view(w.shape)
    assert torch.equal(dequantize_nf4(q), expected)


def test_the_error_is_at_most_half_the_widest_gap_times_the_absmax():
    w = weight(64, 64, seed=1)
    q = quantize_nf4(w, double_quant=False)
    levels = nf4_codebook()
    half_gap = float((levels[1:] - levels[:-1]).max()) / 2  # (1 - 0.7230) / 2
    error = (dequantize_nf4(q) - w).flatten().view(-1, 64).abs()
    assert torch.all(error <= half_gap * q.absmax[:, None] * (1 + 1e-6))
    assert torch.all(error.amax(1) > 0)  # gaussian weights are not on the grid


def test_a_tensor_already_on_the_grid_is_recovered_exactly():
    codes = torch.randint(16, (40, 64), generator=gen(2))
    codes[:, 0] = torch.where(torch.arange(40) % 2 == 0, 15, 0)  # each block reaches -/+1
    scales = torch.rand(40, generator=gen(3)) * 2 + 0.01
    w = (nf4_codebook()[codes] * scales[:, None]).view(20, 128)
    q = quantize_nf4(w, double_quant=False)
    assert torch.equal(dequantize_nf4(q), w)
    assert torch.equal(unpack_codes(q.packed).long(), codes.flatten())


def test_double_quantization_keeps_the_codes_and_stores_the_constants_in_8_bits():
    w = weight(64, 512, seed=4)  # 512 blocks of 64: two blocks of 256 constants
    single, double = quantize_nf4(w, double_quant=False), quantize_nf4(w)
    assert torch.equal(single.packed, double.packed)  # codes chosen with the exact absmax
    c = double.absmax
    assert isinstance(c, QuantizedConstants) and c.codes.dtype == torch.int8
    assert c.codes.shape == (512,) and c.scales.shape == (2,) and c.block_size == 256
    assert torch.equal(c.mean, single.absmax.mean())  # the paper centres the constants
    recovered = dequantize_constants(c)
    step = c.scales.repeat_interleave(256)  # half a step: symmetric int8 rounding
    assert torch.all((recovered - single.absmax).abs() <= step / 2 * (1 + 1e-5))
    levels = nf4_codebook()[unpack_codes(double.packed).long()].view(-1, 64)
    assert torch.equal(dequantize_nf4(double), (levels * recovered[:, None]).view(w.shape))
    rel = (recovered - single.absmax).abs() / single.absmax
    assert float(rel.max()) < 0.01


def test_storage_is_measured_from_the_stored_tensors():
    n = 64 * 256 * 3
    w = weight(n // 768, 768, seed=5)
    assert bits_per_parameter(quantize_nf4(w, double_quant=False)) == 4 + 32 / 64
    double = bits_per_parameter(quantize_nf4(w))
    assert double == 4 + 8 / 64 + 32 / (64 * 256) + 32 / n  # the last term: the mean
    assert round(8 / 64 + 32 / (64 * 256), 3) == 0.127  # the paper's figure, vs 0.5


def test_shapes_not_divisible_by_the_block_size_are_padded_with_zeros():
    w = weight(5, 7, seed=6)  # 35 values: blocks of 16 -> 3 blocks, 13 padded zeros
    q = quantize_nf4(w, block_size=16, double_quant=False)
    assert q.packed.shape == (24,) and q.absmax.shape == (3,) and q.shape == (5, 7)
    flat = torch.nn.functional.pad(w.flatten(), (0, 13))
    codes = nearest_codes(flat, flat.view(3, 16).abs().amax(1), 16).flatten()
    assert torch.equal(unpack_codes(q.packed).long(), codes)
    assert torch.all(codes[35:] == 7)  # padding gets the code of 0
    assert dequantize_nf4(q).shape == (5, 7)
    assert bits_per_parameter(q) == (24 * 8 + 3 * 32) / 35
    d = quantize_nf4(w, block_size=16, constants_block_size=2)  # 3 constants -> 4 stored
    assert d.absmax.codes.shape == (4,) and d.absmax.count == 3
    assert dequantize_constants(d.absmax).shape == (3,)


def test_zero_blocks_and_other_dtypes():
    w = torch.zeros(2, 64)
    w[1] = weight(64, seed=7)
    q = quantize_nf4(w)
    assert torch.equal(dequantize_nf4(q)[0], torch.zeros(64))
    wb = weight(8, 64, seed=8).to(torch.bfloat16)
    out = dequantize_nf4(quantize_nf4(wb, double_quant=False), torch.bfloat16)
    assert out.dtype == torch.bfloat16 and out.shape == (8, 64)
    from32 = dequantize_nf4(quantize_nf4(wb.float(), double_quant=False))
    assert torch.equal(out, from32.to(torch.bfloat16))


def layer(double_quant=True, bias=True, seed=0):
    torch.manual_seed(seed)
    linear = nn.Linear(128, 48, bias=bias)
    return linear, NF4Linear.from_linear(linear, double_quant=double_quant)


@pytest.mark.parametrize("double_quant", [True, False])
def test_nf4_linear_computes_with_the_dequantized_weight(double_quant):
    linear, q = layer(double_quant)
    x = torch.randn(2, 5, 128, generator=gen(9))
    w = dequantize_nf4(quantize_nf4(linear.weight, double_quant=double_quant))
    torch.testing.assert_close(q(x), nn.functional.linear(x, w, linear.bias), atol=0, rtol=0)
    assert q.bits_per_parameter() == bits_per_parameter(q.quantized)
    with torch.no_grad():
        rel = (q(x) - linear(x)).norm() / linear(x).norm()
    assert float(rel) < 0.2


def test_nf4_linear_is_frozen_and_keeps_its_bias_in_float():
    _, q = layer()
    assert [n for n, _ in q.named_parameters()] == ["bias"]
    assert not any(p.requires_grad for p in q.parameters())
    assert {n for n, _ in q.named_buffers()} == {"packed", "absmax_codes", "absmax_scales",
                                                 "absmax_mean"}
    _, no_bias = layer(bias=False)
    assert list(no_bias.parameters()) == [] and no_bias(torch.ones(1, 128)).shape == (1, 48)


def test_nf4_linear_state_dict_round_trip():
    _, q = layer(seed=1)
    fresh = NF4Linear(128, 48)
    fresh.load_state_dict(q.state_dict())
    x = torch.randn(3, 128, generator=gen(10))
    assert torch.equal(fresh(x), q(x))
    assert torch.equal(fresh.to_linear().weight, q.dequantized_weight())


def test_nf4_linear_returns_the_input_dtype_and_computes_in_its_own():
    linear, _ = layer()
    q = NF4Linear.from_linear(linear, compute_dtype=torch.bfloat16)
    x = torch.randn(4, 128, generator=gen(11))
    y = q(x)
    assert y.dtype == torch.float32
    expected = nn.functional.linear(x.bfloat16(), q.dequantized_weight(),
                                    q.bias.bfloat16()).float()
    assert torch.equal(y, expected)


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 64)
        self.hidden = nn.Linear(64, 64)
        self.head = nn.Linear(64, 10, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        return self.head(self.hidden(self.emb(ids)))


def test_quantize_linears_replaces_the_named_layers_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(),
                          nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 3)))
    reference = nn.functional.linear
    first = model[0]
    assert quantize_linears(model, target_modules=("0", "2.0")) is model
    assert isinstance(model[0], NF4Linear) and isinstance(model[2][0], NF4Linear)
    assert isinstance(model[2][1], nn.Linear)
    x = torch.randn(2, 64, generator=gen(12))
    w = dequantize_nf4(quantize_nf4(first.weight))
    assert torch.equal(model[0](x), reference(x, w, first.bias))


def test_quantize_linears_refuses_a_layer_tied_to_an_embedding():
    with pytest.raises(ValueError, match=r"\['head'\], whose weight is tied to an embedding"):
        quantize_linears(Tied(), target_modules=("head", "hidden"))
    model = quantize_linears(Tied(), target_modules=("hidden",))
    assert isinstance(model.hidden, NF4Linear) and model.head.weight is model.emb.weight


def test_same_dequantized_values_as_torchao():
    torchao = pytest.importorskip("torchao")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchao.quantization import to_nf4
    w = weight(256, 512, seed=13)
    theirs = to_nf4(w, 64, 256)
    ours = quantize_nf4(w, block_size=64, constants_block_size=256)
    # torchao writes the levels to 4 decimals
    torch.testing.assert_close(theirs.nf4, nf4_codebook(), atol=5.1e-5, rtol=0)
    mine, their = unpack_codes(ours.packed), unpack_codes(theirs.quantized_data)
    differ = mine != their
    assert int(differ.sum()) < 1e-3 * w.numel(), torchao.__version__
    # codes differ only where w / absmax lies within the table's rounding of a midpoint
    levels = nf4_codebook()
    scaled = (w.view(-1, 64) / w.view(-1, 64).abs().amax(1, keepdim=True)).flatten()
    to_mid = (scaled[:, None] - (levels[1:] + levels[:-1]) / 2).abs().min(1).values
    assert float(to_mid[differ].max()) < 5e-5
    # the constants agree within one int8 step of their blocks (torchao maps the
    # largest centred constant to 128 and clamps at 127; we map it to 127.5)
    c = ours.absmax
    their_c = theirs.dequantize_scalers(theirs.quantized_scalers,
                                        theirs.quantization_factor, 256)
    step = c.scales.repeat_interleave(256)
    assert torch.all((dequantize_constants(c) - their_c).abs() <= step * 1.01)
    same = ~differ.view(w.shape)
    diff = (dequantize_nf4(ours) - theirs.get_original_weight()).abs()
    assert float(diff[same].max()) <= float(step.max()) * 1.01 + 5.1e-5 * float(w.abs().max())


def test_an_nf4_weight_is_a_plain_record():
    q = quantize_nf4(torch.ones(3, 64))
    assert isinstance(q, NF4Weight) and q.numel == 192 and q.block_size == 64
    assert math.isclose(dequantize_nf4(q).mean().item(), 1.0, rel_tol=1e-2)
    c = quantize_constants(torch.tensor([1.0, 2.0, 3.0]), 2)
    torch.testing.assert_close(dequantize_constants(c), torch.tensor([1.0, 2.0, 3.0]),
                               atol=1e-2, rtol=0)
