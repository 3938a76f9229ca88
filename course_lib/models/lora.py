"""LoRA, low-rank adaptation, from scratch (chapter 7), checked against the ``peft`` library.

A frozen linear layer ``y = W x + b`` (``W`` of shape ``(d_out, d_in)``) gets a trainable
low-rank update (Hu et al. 2022):

    y = W x + b + (alpha / r) * B A dropout(x),   A: (r, d_in),  B: (d_out, r).

``A`` starts random (Kaiming-uniform, as in ``peft``) and ``B`` at zero, so the adapted
model starts exactly where the pretrained one is. Only ``r (d_in + d_out)`` numbers
per layer are trained instead of ``d_in d_out``. After training, :func:`merge_lora`
folds the update into ``W`` (``W <- W + (alpha/r) B A``), so inference costs what the
original model costs; :func:`unmerge_lora` takes it out again.

QLoRA (Dettmers et al. 2023): the frozen layer may be an
:class:`~course_lib.models.nf4.NF4Linear` (a 4-bit weight, see
:func:`~course_lib.models.nf4.quantize_linears`); ``A`` and ``B`` are then kept in its
compute dtype. Such a layer cannot be merged: ``W + (alpha/r) B A`` is not on the NF4
grid, and re-quantizing it would throw most of the small update away. Merge into
``NF4Linear.to_linear()`` instead (a dequantized copy).

``tests/unit/test_lora.py`` checks that :func:`apply_lora` and ``peft.get_peft_model``
configured alike train the same number of parameters and, given the same ``A`` and
``B``, compute the same outputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from course_lib.core.validate import plain, require_int, require_number
from course_lib.models.nf4 import NF4Linear, matches_target

_NO_NF4_MERGE = ("cannot merge LoRA into an NF4Linear base: W + (alpha/r) B A is not on "
                 "the 4-bit grid; merge into base.to_linear() (a dequantized copy) instead")

__all__ = ["LoRALinear", "apply_lora", "lora_layers", "merge_lora", "unmerge_lora",
           "count_parameters", "copy_lora_weights_from_peft"]


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` (or ``NF4Linear``) plus a trainable rank-``r`` update
    scaled by ``alpha / r``.

    Input ``(..., d_in)``, output ``(..., d_out)``, like the wrapped layer.
    """

    def __init__(self, base: nn.Linear | NF4Linear, r: int, alpha: float,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, (nn.Linear, NF4Linear)):
            raise TypeError(f"base must be an nn.Linear or an NF4Linear; got "
                            f"{type(base).__name__}")
        r = require_int("r (the rank)", r, 1, expected="a positive integer")
        # alpha = inf would make the update inf * 0 = NaN at the start (B is zero)
        checked = require_number("alpha", alpha, 0, closed=(False, True),
                                 expected="a positive number")
        alpha = plain(alpha, checked)  # NumPy -> float; 16 stays 16 (in the repr)
        dropout = plain(dropout, require_number("dropout", dropout, 0, 1, closed=(True, False)))
        self.base, self.r, self.alpha = base, r, alpha
        self.scaling = alpha / r
        for p in base.parameters():
            p.requires_grad_(False)
        factory = ({"device": base.packed.device, "dtype": base.compute_dtype}
                   if isinstance(base, NF4Linear)
                   else {"device": base.weight.device, "dtype": base.weight.dtype})
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # peft's default for A
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """The update ``(alpha / r) B A``, shape ``(d_out, d_in)``: at most rank ``r``."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:
            return y
        # (..., d_in) -> (..., r) -> (..., d_out): never forms the d_out x d_in matrix
        update = self.dropout(x).to(self.lora_A.dtype) @ self.lora_A.T @ self.lora_B.T
        return y + (update * self.scaling).to(y.dtype)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the frozen weight; the forward pass is then one matmul."""
        if self.merged:
            raise RuntimeError("this LoRA layer is already merged; unmerge it first")
        if isinstance(self.base, NF4Linear):
            raise TypeError(_NO_NF4_MERGE)
        self.base.weight += self.delta_weight().to(self.base.weight.dtype)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update out of the weight again (exact up to float rounding)."""
        if not self.merged:
            raise RuntimeError("this LoRA layer is not merged")
        self.base.weight -= self.delta_weight().to(self.base.weight.dtype)
        self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, merged={self.merged}"


def apply_lora(model: nn.Module, *, r: int = 8, alpha: float = 16, dropout: float = 0.0,
               target_modules: Sequence[str] = ("query", "value"),
               modules_to_save: Sequence[str] = ()) -> nn.Module:
    """Freeze ``model`` and wrap each ``nn.Linear`` or ``NF4Linear`` named by
    ``target_modules`` (:func:`~course_lib.models.nf4.matches_target`) in a
    :class:`LoRALinear`; modules named by ``modules_to_save`` (e.g. ``"classifier"``)
    stay fully trainable. Changes ``model`` in place and returns it.

    Raises ``ValueError`` when no linear layer matches ``target_modules``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    if isinstance(target_modules, str):
        target_modules = (target_modules,)
    if isinstance(modules_to_save, str):
        modules_to_save = (modules_to_save,)
    # checked before the model is frozen, so that a bad setting leaves it untouched
    require_int("r (the rank)", r, 1, expected="a positive integer")
    require_number("alpha", alpha, 0, closed=(False, True), expected="a positive number")
    require_number("dropout", dropout, 0, 1, closed=(True, False))
    for p in model.parameters():
        p.requires_grad_(False)
    targets = [name for name, module in model.named_modules()
               if isinstance(module, (nn.Linear, NF4Linear))
               and matches_target(name, target_modules)]
    if not targets:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                         if isinstance(m, (nn.Linear, NF4Linear))})
        raise ValueError(f"target_modules {list(target_modules)} match no nn.Linear of the "
                         f"model; its linear layers are named {linear}")
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), r, alpha, dropout))
    saved = [name for name, _ in model.named_modules() if matches_target(name, modules_to_save)]
    if len(saved) < len(modules_to_save):
        raise ValueError(f"modules_to_save {list(modules_to_save)}: some name no module")
    for name in saved:
        for p in model.get_submodule(name).parameters():
            p.requires_grad_(True)
    return model


def lora_layers(model: nn.Module) -> Iterator[tuple[str, LoRALinear]]:
    """The model's LoRA layers with their dotted names."""
    return ((n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear))


def merge_lora(model: nn.Module) -> nn.Module:
    """Merge every LoRA layer (see :meth:`LoRALinear.merge`); returns ``model``.

    Refused (``TypeError``, nothing merged) when a LoRA layer's base is an ``NF4Linear``.
    """
    quantized = [name for name, layer in lora_layers(model)
                 if isinstance(layer.base, NF4Linear)]
    if quantized:
        raise TypeError(f"{_NO_NF4_MERGE} (layers {quantized[:3]}"
                        f"{'...' if len(quantized) > 3 else ''})")
    for _, layer in lora_layers(model):
        layer.merge()
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo :func:`merge_lora`; returns ``model``."""
    for _, layer in lora_layers(model):
        layer.unmerge()
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` numbers of parameters, each shared tensor counted once."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


@torch.no_grad()
def copy_lora_weights_from_peft(model: nn.Module, peft_model: nn.Module) -> int:
    """Copy ``A`` and ``B`` of every LoRA layer of a ``peft`` model into ``model``'s
    matching :class:`LoRALinear`; return the number of layers copied.

    ``peft`` keeps ``A`` as ``lora_A.default.weight`` ``(r, d_in)`` and ``B`` as
    ``lora_B.default.weight`` ``(d_out, r)``: the same layout as ours.
    """
    theirs = {}
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and hasattr(module.lora_A, "default"):
            key = name.split("base_model.model.", 1)[-1]
            theirs[key] = (module.lora_A["default"].weight, module.lora_B["default"].weight)
    copied = 0
    for name, layer in lora_layers(model):
        if name not in theirs:
            raise ValueError(f"the peft model has no LoRA layer named {name!r}")
        layer.lora_A.copy_(theirs[name][0])
        layer.lora_B.copy_(theirs[name][1])
        copied += 1
    return copied
