"""4-bit NormalFloat (NF4) weights with double quantization: QLoRA's frozen base (ch. 7).

QLoRA (Dettmers et al. 2023) fine-tunes a model whose frozen weights are stored in 4 bits
and dequantized on the fly, with LoRA adapters (:mod:`course_lib.models.lora`) trained in
higher precision on top. Three pieces, built here in the order a reader meets them:

1. **The NF4 codebook**: 16 levels in [-1, 1] placed at quantiles of the standard
   normal, so that each level is used about equally often by normally distributed
   weights (:func:`nf4_codebook`).
2. **Block-wise absmax quantization**: the flattened weight is cut into blocks of
   ``block_size`` (64) values; each block is divided by its largest magnitude (its
   *absmax*, one float32 constant per block) and every value is replaced by the index
   of the nearest codebook level, a 4-bit code; two codes are packed per byte
   (:func:`quantize_nf4`, :func:`dequantize_nf4`).
3. **Double quantization**: the float32 constants (32 bits per 64 weights, 0.5 bit per
   weight) are themselves quantized to 8 bits in blocks of 256, which brings them to
   ``8/64 + 32/(64*256) ≈ 0.127`` bit per weight (:func:`quantize_constants`).

:class:`NF4Linear` holds such a weight in place of an ``nn.Linear``'s and computes
``F.linear(x, dequantize(W), b)`` in a compute dtype; :func:`quantize_linears` swaps
them into a model, and :func:`course_lib.models.lora.apply_lora` wraps them in LoRA.

Padding: a tensor whose size is not a multiple of ``block_size`` is padded with zeros to
whole blocks (and the constants to whole blocks of ``constants_block_size``); the padding
is stored, counted in :func:`bits_per_parameter`, and cut off on dequantization.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.core.validate import require_bool, require_finite, require_int
from course_lib.models.compress import linear_layers, symmetric_int8

__all__ = ["NF4_OFFSET", "nf4_codebook", "pack_codes", "unpack_codes", "QuantizedConstants",
           "quantize_constants", "dequantize_constants", "NF4Weight", "quantize_nf4",
           "dequantize_nf4", "bits_per_parameter", "NF4Linear", "matches_target",
           "quantize_linears"]

# The outermost quantile: QLoRA's code writes it 0.9677083, the mean of 1 - 1/(2*15) and
# 1 - 1/(2*16) (half a step in from the tails for 15 and for 16 equal-probability bins).
NF4_OFFSET = 0.9677083
_COMPUTE_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


@functools.cache
def _levels() -> tuple[float, ...]:
    from scipy.stats import norm

    # 8 positive levels: quantiles at 9 equally spaced probabilities from 0.5 to the
    # offset, the first (0.5 -> 0) dropped; 7 negative ones likewise from 8 probabilities.
    # One shared exact zero: 8 + 7 + 1 = 16 levels, asymmetric, the ends at -/+ppf(offset).
    positive = [float(norm.ppf(0.5 + (NF4_OFFSET - 0.5) * i / 8)) for i in range(1, 9)]
    negative = [-float(norm.ppf(0.5 + (NF4_OFFSET - 0.5) * i / 7)) for i in range(1, 8)]
    top = positive[-1]
    return tuple(sorted(v / top for v in negative + [0.0] + positive))


def nf4_codebook(*, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 16 NF4 levels, ascending, shape ``(16,)``: ``[0] = -1``, ``[7] = 0``, ``[15] = 1``.

    Built from the standard normal's quantile function (``scipy.stats.norm.ppf``) as in
    QLoRA's appendix: 8 positive and 7 negative quantiles and an exact zero, divided by
    the largest so that they span [-1, 1]. A new tensor on every call.
    """
    return torch.tensor(_levels(), device=device, dtype=dtype)


def _describe(x: object) -> str:
    """``"a tensor of dtype torch.int64 and shape (3,)"``, or the type's name."""
    if isinstance(x, torch.Tensor):
        return f"a tensor of dtype {x.dtype} and shape {tuple(x.shape)}"
    return type(x).__name__


def _check_power_of_two(name: str, value: object) -> int:
    value = require_int(name, value, 2, expected="a power of two >= 2")
    if value & (value - 1):
        raise ValueError(f"{name} must be a power of two >= 2; got {value}")
    return value


def pack_codes(codes: torch.Tensor) -> torch.Tensor:
    """Two 4-bit codes per byte: ``(n,)`` integers in [0, 15], ``n`` even -> ``(n/2,)``
    uint8, the first code of each pair in the high four bits."""
    if not isinstance(codes, torch.Tensor) or codes.is_floating_point() \
            or codes.is_complex() or codes.dtype == torch.bool:
        raise TypeError(f"codes must be an integer tensor; got {_describe(codes)}")
    if codes.ndim != 1 or codes.numel() % 2:
        raise ValueError(f"codes must be 1-D with an even number of entries; got shape "
                         f"{tuple(codes.shape)}")
    bad = (codes < 0) | (codes > 15)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(f"codes holds {int(codes[i])} at position {i}; expected 4-bit "
                         f"codes in [0, 15]")
    c = codes.to(torch.uint8)
    return (c[0::2] << 4) | c[1::2]


def unpack_codes(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: ``(m,)`` uint8 -> ``(2m,)`` uint8 codes in [0, 15]."""
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8 or packed.ndim != 1:
        raise TypeError(f"packed must be a 1-D uint8 tensor; got {_describe(packed)}")
    return torch.stack([packed >> 4, packed & 0xF], dim=1).flatten()


@dataclass(frozen=True)
class QuantizedConstants:
    """Per-block absmax constants stored in 8 bits (double quantization).

    ``codes``: int8, ``(n_padded,)``, ``n_padded`` the number of constants rounded up to
    whole blocks of ``block_size``; ``scales``: float32, ``(n_padded / block_size,)``;
    ``mean``: float32, 0-d; ``count``: the number of real constants (the rest is padding).
    A constant is recovered as ``codes * scale_of_its_block + mean``.
    """

    codes: torch.Tensor
    scales: torch.Tensor
    mean: torch.Tensor
    block_size: int
    count: int


def quantize_constants(absmax: torch.Tensor, block_size: int = 256) -> QuantizedConstants:
    """Double quantization of QLoRA's constants: ``(n,)`` float -> 8-bit codes.

    What is done, exactly: the mean of the ``n`` constants is subtracted (they are all
    positive; centred, the symmetric int8 range is used on both sides, as the paper
    does); the centred values are padded with zeros to whole blocks of ``block_size``
    and each block gets symmetric int8 quantization with its own float32 scale
    (:func:`course_lib.models.compress.symmetric_int8`, per row: scale = block absmax /
    127.5, so a constant is off by at most half a step). The paper stores the
    constants as 8-bit *floats*; linear int8 codes, as ``torchao``'s NF4 uses, cost the
    same 8 bits and give a smaller worst-case error for these narrow, centred values.
    The mean (one float32 per tensor) is stored too.
    """
    if not isinstance(absmax, torch.Tensor) or not absmax.is_floating_point() \
            or absmax.ndim != 1 or absmax.numel() == 0:
        raise TypeError(f"absmax must be a non-empty 1-D floating-point tensor; got "
                        f"{_describe(absmax)}")
    block_size = _check_power_of_two("constants_block_size", block_size)
    c = require_finite("absmax", absmax.detach()).to(torch.float32)
    mean = c.mean()
    n_padded = math.ceil(c.numel() / block_size) * block_size
    centred = F.pad(c - mean, (0, n_padded - c.numel()))
    codes, scales = symmetric_int8(centred.view(-1, block_size), per_row=True)
    return QuantizedConstants(codes.flatten(), scales.flatten(), mean, block_size,
                              c.numel())


def dequantize_constants(q: QuantizedConstants) -> torch.Tensor:
    """The ``q.count`` constants back in float32, shape ``(q.count,)``."""
    blocks = q.codes.view(-1, q.block_size).to(torch.float32) * q.scales[:, None]
    return blocks.flatten()[:q.count] + q.mean


@dataclass(frozen=True)
class NF4Weight:
    """A tensor in NF4: what is stored, and nothing else.

    ``packed``: uint8, ``(n_blocks * block_size / 2,)``, two 4-bit codes per byte, in the
    order of the flattened tensor, padded with zeros to whole blocks; ``absmax``: the
    per-block constants, float32 ``(n_blocks,)`` or, double-quantized, a
    :class:`QuantizedConstants`; ``shape``: the original shape.
    """

    packed: torch.Tensor
    absmax: torch.Tensor | QuantizedConstants
    shape: tuple[int, ...]
    block_size: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def quantize_nf4(weight: torch.Tensor, *, block_size: int = 64, double_quant: bool = True,
                 constants_block_size: int = 256) -> NF4Weight:
    """Block-wise absmax NF4 quantization of ``weight`` (any shape, floating point).

    The flattened weight, in float32, is cut into blocks of ``block_size`` values (the
    last padded with zeros); each block is divided by its absmax ``c`` and each value
    ``w`` gets the code of the codebook level nearest to ``w / c`` (a block of zeros
    gets the code of 0). The codes are chosen with the exact ``c``; with
    ``double_quant`` the stored constants are then quantized to 8 bits
    (:func:`quantize_constants`), so :func:`dequantize_nf4` returns
    ``level * c_stored``.
    """
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        raise TypeError(f"weight must be a floating-point tensor; got {_describe(weight)}")
    if weight.numel() == 0:
        raise ValueError(f"weight is empty (shape {tuple(weight.shape)}); expected at least "
                         f"one value to quantize")
    block_size = _check_power_of_two("block_size", block_size)
    double_quant = require_bool("double_quant", double_quant)
    if double_quant:
        _check_power_of_two("constants_block_size", constants_block_size)
    w = require_finite("weight", weight.detach()).to(torch.float32).flatten()
    n_blocks = math.ceil(w.numel() / block_size)
    blocks = F.pad(w, (0, n_blocks * block_size - w.numel())).view(n_blocks, block_size)
    absmax = blocks.abs().amax(dim=1)  # (n_blocks,)
    scaled = blocks / absmax.clamp(min=torch.finfo(torch.float32).tiny)[:, None]
    levels = nf4_codebook(device=w.device)
    # nearest level = number of midpoints below the value (a tie goes to the lower level)
    codes = torch.bucketize(scaled.flatten(), (levels[1:] + levels[:-1]) / 2)
    constants = (quantize_constants(absmax, constants_block_size) if double_quant
                 else absmax)
    return NF4Weight(pack_codes(codes), constants, tuple(weight.shape), block_size)


def dequantize_nf4(q: NF4Weight, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The tensor ``q`` stands for, of shape ``q.shape`` and dtype ``dtype``:
    ``level[code] * absmax`` of its block, computed in float32 and then cast."""
    if not isinstance(q, NF4Weight):
        raise TypeError(f"q must be an NF4Weight (from quantize_nf4); got {type(q).__name__}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype; got {dtype!r}")
    absmax = (dequantize_constants(q.absmax) if isinstance(q.absmax, QuantizedConstants)
              else q.absmax)
    codes = unpack_codes(q.packed).view(-1, q.block_size).long()  # (n_blocks, block_size)
    values = nf4_codebook(device=q.packed.device)[codes] * absmax[:, None]
    return values.flatten()[:q.numel].view(q.shape).to(dtype)


def _bits(t: torch.Tensor) -> int:
    return t.numel() * t.element_size() * 8


def bits_per_parameter(q: NF4Weight) -> float:
    """Bits stored per value of the original tensor, measured from the stored tensors:
    (bits of the packed codes + of the constants [+ their scales and mean]) / numel.

    Single quantization, no padding: ``4 + 32/64 = 4.5``; double:
    ``4 + 8/64 + 32/(64*256) + 32/numel ≈ 4.127`` (the last term: the one mean).
    """
    if not isinstance(q, NF4Weight):
        raise TypeError(f"q must be an NF4Weight (from quantize_nf4); got {type(q).__name__}")
    c = q.absmax
    constants = (_bits(c.codes) + _bits(c.scales) + _bits(c.mean)
                 if isinstance(c, QuantizedConstants) else _bits(c))
    return (_bits(q.packed) + constants) / q.numel


def _check_compute_dtype(compute_dtype: object) -> torch.dtype:
    if compute_dtype not in _COMPUTE_DTYPES:
        raise TypeError(f"compute_dtype must be one of {list(_COMPUTE_DTYPES)}; got "
                        f"{compute_dtype!r}")
    return compute_dtype  # type: ignore[return-value]


class NF4Linear(nn.Module):
    """A frozen linear layer whose weight ``(d_out, d_in)`` is stored in NF4.

    Input ``(..., d_in)``, output ``(..., d_out)`` in the input's dtype. The forward pass
    casts ``x`` to ``compute_dtype``, dequantizes the weight to it (every call: the
    4-bit copy is the only one kept) and computes ``F.linear(x, W, b)``. The weight's
    codes and constants are buffers (integers have no gradient; they are in the
    ``state_dict`` but not in ``parameters()``); the bias, kept in float32, is a
    parameter with ``requires_grad=False``. Build one with :meth:`from_linear`. Choose
    the precision with ``compute_dtype``, not ``.to(torch.bfloat16)``: that would also
    cast the float32 constants (and the bias) that the 4-bit codes are scaled by.
    """

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 block_size: int = 64, double_quant: bool = True,
                 constants_block_size: int = 256,
                 compute_dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.in_features = require_int("in_features", in_features, 1,
                                       expected="a positive integer")
        self.out_features = require_int("out_features", out_features, 1,
                                        expected="a positive integer")
        self.block_size = _check_power_of_two("block_size", block_size)
        self.double_quant = require_bool("double_quant", double_quant)
        self.constants_block_size = _check_power_of_two("constants_block_size",
                                                        constants_block_size)
        self.compute_dtype = _check_compute_dtype(compute_dtype)
        n_blocks = math.ceil(in_features * out_features / block_size)
        self.register_buffer("packed", torch.zeros(n_blocks * block_size // 2,
                                                   dtype=torch.uint8, device=device))
        if self.double_quant:
            n_padded = math.ceil(n_blocks / constants_block_size) * constants_block_size
            self.register_buffer("absmax_codes", torch.zeros(n_padded, dtype=torch.int8,
                                                             device=device))
            self.register_buffer("absmax_scales", torch.zeros(
                n_padded // constants_block_size, device=device))
            self.register_buffer("absmax_mean", torch.zeros((), device=device))
        else:
            self.register_buffer("absmax", torch.zeros(n_blocks, device=device))
        self.bias = (nn.Parameter(torch.zeros(out_features, device=device),
                                  requires_grad=False) if bias else None)

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, block_size: int = 64,
                    double_quant: bool = True, constants_block_size: int = 256,
                    compute_dtype: torch.dtype = torch.float32) -> NF4Linear:
        """Quantize ``linear``'s weight (on its device); its bias is copied in float32."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear; got {type(linear).__name__}")
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                    block_size=block_size, double_quant=double_quant,
                    constants_block_size=constants_block_size, compute_dtype=compute_dtype,
                    device=linear.weight.device)
        q = quantize_nf4(linear.weight, block_size=block_size, double_quant=double_quant,
                         constants_block_size=constants_block_size)
        with torch.no_grad():
            layer.packed.copy_(q.packed)
            if isinstance(q.absmax, QuantizedConstants):
                layer.absmax_codes.copy_(q.absmax.codes)
                layer.absmax_scales.copy_(q.absmax.scales)
                layer.absmax_mean.copy_(q.absmax.mean)
            else:
                layer.absmax.copy_(q.absmax)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias.detach().to(torch.float32))
        return layer

    @property
    def quantized(self) -> NF4Weight:
        """The stored weight as an :class:`NF4Weight` (views of the buffers, no copy)."""
        absmax: torch.Tensor | QuantizedConstants = (
            QuantizedConstants(self.absmax_codes, self.absmax_scales, self.absmax_mean,
                               self.constants_block_size,
                               math.ceil(self.in_features * self.out_features
                                         / self.block_size))
            if self.double_quant else self.absmax)
        return NF4Weight(self.packed, absmax, (self.out_features, self.in_features),
                         self.block_size)

    def dequantized_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The weight ``(d_out, d_in)`` in ``dtype`` (default: the compute dtype)."""
        return dequantize_nf4(self.quantized, dtype or self.compute_dtype)

    def bits_per_parameter(self) -> float:
        """Bits stored per weight (the bias not included): see :func:`bits_per_parameter`."""
        return bits_per_parameter(self.quantized)

    def to_linear(self, dtype: torch.dtype = torch.float32) -> nn.Linear:
        """An ordinary ``nn.Linear`` holding the dequantized weight (e.g. to merge LoRA into)."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device=self.packed.device, dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(self.dequantized_weight(dtype))
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"x must have shape (..., {self.in_features}) for this "
                             f"NF4Linear; got {tuple(x.shape)}")
        bias = None if self.bias is None else self.bias.to(self.compute_dtype)
        y = F.linear(x.to(self.compute_dtype), self.dequantized_weight(), bias)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, block_size={self.block_size}, "
                f"double_quant={self.double_quant}, compute_dtype={self.compute_dtype}")


def matches_target(name: str, targets: Sequence[str]) -> bool:
    """peft's rule, shared with :func:`course_lib.models.lora.apply_lora`: a target names
    the module (its full dotted name) or the last parts of that name."""
    return any(name == t or name.endswith("." + t) for t in targets)


def quantize_linears(model: nn.Module, *, target_modules: Sequence[str],
                     block_size: int = 64, double_quant: bool = True,
                     constants_block_size: int = 256,
                     compute_dtype: torch.dtype = torch.float32) -> nn.Module:
    """Replace each ``nn.Linear`` named by ``target_modules`` (:func:`matches_target`)
    with an :class:`NF4Linear`; changes ``model`` in place and returns it.

    Quantize first, then :func:`~course_lib.models.lora.apply_lora`: that is QLoRA.
    Raises ``ValueError`` when no layer matches, or when a match shares its weight with
    an embedding (quantizing it would silently untie the two).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    if isinstance(target_modules, str):
        target_modules = (target_modules,)
    _check_power_of_two("block_size", block_size)
    require_bool("double_quant", double_quant)
    _check_power_of_two("constants_block_size", constants_block_size)
    _check_compute_dtype(compute_dtype)
    untied = {name for name, _ in linear_layers(model)}
    names = [name for name, m in model.named_modules()
             if isinstance(m, nn.Linear) and matches_target(name, target_modules)]
    tied = [name for name in names if name not in untied]
    if tied:
        raise ValueError(f"target_modules {list(target_modules)} match {tied}, whose weight "
                         f"is tied to an embedding; leave them out")
    if not names:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                         if isinstance(m, nn.Linear)})
        raise ValueError(f"target_modules {list(target_modules)} match no nn.Linear of the "
                         f"model; its linear layers are named {linear}")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, NF4Linear.from_linear(
            getattr(parent, child), block_size=block_size, double_quant=double_quant,
            constants_block_size=constants_block_size, compute_dtype=compute_dtype))
    return model
