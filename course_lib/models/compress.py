"""Smaller and faster models for inference, each measured (chapter 13).

* :func:`symmetric_int8` — the arithmetic of int8 quantization, per tensor or per row;
* :func:`quantize_int8` — dynamic int8 quantization of the linear layers (weights
  stored as int8 with one scale per tensor, activations quantized on the fly);
* :func:`prune_magnitude` — global magnitude pruning of the linear layers with
  ``torch.nn.utils.prune``, made permanent;
* :func:`sparsity`, :func:`file_size` — what the pruning and quantization changed;
* :func:`time_generation` — seconds to generate tokens, the median of repeats.

Each function returns a new model and leaves its input untouched. The output layer
tied to the token embedding (the course's GPT) is left in float32 and unpruned: it
is the same matrix as the embedding, and changing one would silently change both.
"""

from __future__ import annotations

import copy
import io
import statistics
import time
import warnings
import zlib

import torch
import torch.nn as nn
from torch.nn.utils import prune

from course_lib.core.validate import require_finite, require_int, require_number

__all__ = ["symmetric_int8", "linear_layers", "quantize_int8", "prune_magnitude", "sparsity",
           "file_size", "time_generation"]

# torch 2.13 still ships eager-mode dynamic quantization (fast x86/ARM int8 kernels) but
# announces its move to the separate `torchao` package. These two notices are about
# that move, not about the result; everything else still warns.
_MOVED = (r"torch\.ao\.quantization is deprecated",
          r"torch\.quantize_per_tensor, torch\.quantize_per_channel")


def symmetric_int8(weight: torch.Tensor, *, per_row: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 quantization: ``(q, scale)`` with ``weight ≈ q * scale``.

    ``q`` is an int8 tensor of ``weight``'s shape; ``scale`` is a 0-d tensor, or
    ``(rows, 1)`` with ``per_row=True`` (one scale per output feature of an
    ``(out, in)`` weight). The scale maps the largest magnitude to 127.5, the
    half-width of int8's range [-128, 127], as PyTorch's weight observer does;
    rounding then makes an error of at most ``scale / 2`` per entry.
    """
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        raise TypeError(f"weight must be a floating-point tensor; got {type(weight).__name__}")
    if per_row and weight.ndim != 2:
        raise ValueError(f"per_row=True needs a 2-D (out, in) weight; got shape "
                         f"{tuple(weight.shape)}")
    if weight.numel() == 0:
        raise ValueError(f"weight is empty (shape {tuple(weight.shape)}); expected at least "
                         f"one value to quantize")
    w = require_finite("weight", weight.detach())  # an inf would make every scale inf
    peak = w.abs().amax(dim=1, keepdim=True) if per_row else w.abs().max()
    scale = torch.clamp(peak, min=torch.finfo(w.dtype).tiny) / 127.5
    q = torch.clamp(torch.round(w * (1.0 / scale)), -128, 127).to(torch.int8)
    return q, scale


def _tied_to_embedding(model: nn.Module) -> set[int]:
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return {id(m) for m in model.modules()
            if isinstance(m, nn.Linear) and id(m.weight) in embeddings}


def linear_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """``(name, module)`` of every ``nn.Linear`` whose weight is not tied to an embedding."""
    tied = _tied_to_embedding(model)
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and id(m) not in tied]


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (on the CPU) whose linear layers compute in int8.

    ``torch.ao.quantization.quantize_dynamic``: each weight matrix is stored as int8
    with one float scale (symmetric, per tensor); at run time each input is scaled to
    int8 with its own range, multiplied in integer arithmetic (int32 accumulators)
    and scaled back to float32. CPU only (x86 ``fbgemm``/``onednn``, ARM ``qnnpack``).
    """
    names = {name for name, _ in linear_layers(model)}
    if not names:
        raise ValueError("model has no nn.Linear layer to quantize (tied output layers "
                         "are left out)")
    source = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        for message in _MOVED:
            warnings.filterwarnings("ignore", message=message)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(source, names, dtype=torch.qint8)


def prune_magnitude(model: nn.Module, amount: float) -> nn.Module:
    """A copy of ``model`` with the ``amount`` smallest-magnitude linear weights set to zero.

    The threshold is global (one cut over all linear layers, L1 magnitude), so layers
    with many small weights lose more. Biases, norms and embeddings are kept. The zeros
    are made permanent (``prune.remove``): the copy is an ordinary dense model.
    """
    amount = require_number("amount", amount, 0, 1, closed=(True, False),
                            expected="the fraction of weights to remove, in [0, 1)")
    pruned = copy.deepcopy(model)
    targets = [(m, "weight") for _, m in linear_layers(pruned)]
    if not targets:
        raise ValueError("model has no nn.Linear layer to prune")
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
    for module, name in targets:
        prune.remove(module, name)
    return pruned


def sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero weights in the (untied) linear layers of ``model``."""
    weights = [m.weight for _, m in linear_layers(model)]
    total = sum(w.numel() for w in weights)
    if total == 0:
        raise ValueError("model has no nn.Linear weights")
    return sum((w == 0).sum().item() for w in weights) / total


def file_size(model: nn.Module, *, compressed: bool = False) -> int:
    """Bytes of ``torch.save(model.state_dict())``: the size of the model's file on disk.

    ``compressed=True`` gives the size after zlib compression (level 6, as gzip):
    runs of zeros left by pruning shrink, random-looking float bits hardly do.
    """
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    data = buffer.getvalue()
    return len(zlib.compress(data, 6)) if compressed else len(data)


def time_generation(model: nn.Module, prompt: torch.Tensor, new_tokens: int, *,
                    use_cache: bool, repeats: int = 5) -> float:
    """Median wall-clock seconds for ``model.generate(prompt, new_tokens)`` (greedy).

    ``prompt`` is ``(B, T0)`` token ids on the model's device. One untimed run comes
    first (memory allocation, kernel selection). On a GPU the clock waits for the device.
    """
    repeats = require_int("repeats", repeats, 1, expected="a positive integer")
    new_tokens = require_int("new_tokens", new_tokens, 0, expected="a non-negative integer")
    if not isinstance(prompt, torch.Tensor):
        raise TypeError(f"prompt must be a tensor of token ids (B, T0); got "
                        f"{type(prompt).__name__}")
    device = prompt.device

    def once() -> float:
        start = time.perf_counter()
        model.generate(prompt, new_tokens, temperature=0, use_cache=use_cache)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    once()
    return statistics.median(once() for _ in range(repeats))


