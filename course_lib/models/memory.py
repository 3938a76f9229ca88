"""How much memory training a GPT takes: an estimate, and two ways to measure (chapter 4).

Training with AdamW keeps, per parameter, the weight, its gradient and two moment
estimates; on top come the **activations** that the forward pass saves for the
backward pass, which grow with batch size and sequence length rather than with
the parameter count. :func:`training_memory` estimates each part for the
:class:`~course_lib.models.GPT` of this course; :func:`saved_activation_bytes` and
:func:`measure_peak_memory` measure what PyTorch actually holds, on any device.

All sizes are in bytes. The activation count is exact for this GPT in float32
with dropout 0 and the fused (flash) attention kernel, which stores no
``T x T`` attention matrix; with dropout, masks and an attention matrix per head
are saved as well.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from course_lib.core.validate import require_int
from course_lib.models.flops import param_counts

__all__ = [
    "TrainingMemory",
    "activation_bytes",
    "training_memory",
    "saved_activation_bytes",
    "measure_peak_memory",
]

MiB = 2**20


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes needed by one training step, by kind.

    ``loss_buffers`` are the two ``(B, T, V)`` gradient tensors that the backward
    pass of the softmax cross-entropy creates before anything else is freed.
    """

    weights: int
    gradients: int
    optimizer: int
    activations: int
    loss_buffers: int

    @property
    def total(self) -> int:
        """Everything at once: the simple upper bound."""
        return sum(getattr(self, f.name) for f in fields(self))

    @property
    def peak(self) -> int:
        """The expected peak when gradients are freed between steps (``set_to_none=True``).

        Gradients are then allocated during the backward pass while activations
        are released, so the two never all coexist: the peak is the larger of
        the start of the backward pass (activations + loss buffers) and its end
        (all gradients). Not counted: temporaries of the optimizer update (on a
        CPU, AdamW holds two arrays the size of the largest parameter tensor).
        """
        return self.weights + self.optimizer + max(
            self.activations + self.loss_buffers, self.gradients)

    def __str__(self) -> str:
        rows = [f"{f.name:12s} {getattr(self, f.name) / MiB:10.2f} MiB" for f in fields(self)]
        rows.append(f"{'peak':12s} {self.peak / MiB:10.2f} MiB")
        return "\n".join(rows)


def _positive_int(name: str, value: object) -> int:
    return require_int(name, value, 1, expected="a positive integer")


def activation_bytes(config, batch_size: int, seq_len: int | None = None,
                     bytes_per_value: int = 4) -> int:
    """Bytes the forward pass of a :class:`GPT` saves for backward (dropout 0).

    Per token and layer: the block input, the first LayerNorm's output, Q/K/V
    (``3 d``), the attention output, the residual after attention, the second
    LayerNorm's output (``8 d`` in all), the MLP's hidden layer before and after the
    GELU (``2 d_ff``), two mean/inverse-std pairs (4 values) and one log-sum-exp
    per head. Then the final LayerNorm's input and output (``2 d`` + 2) and the
    log-probabilities (``V``); the int64 inputs and targets add 16 bytes per token,
    the learned positions' int64 indices ``8 T`` bytes and the loss's normaliser one
    value. The modern block's options change the count: an RMSNorm saves its
    normalised input and one inverse RMS (``d + 1`` per norm, for LayerNorm's 2); a
    SwiGLU saves the gate, its SiLU, the up projection and their product (``4 d_ff``);
    RoPE saves the rotated queries and keys (``2 d`` per layer) and the cosine and
    sine rows of the ``T`` positions (``2 T h_s`` values, once); fixed positions
    (sinusoidal, RoPE) save no indices. Checked against
    :func:`saved_activation_bytes` for every combination in ``tests/unit/test_memory.py``.
    """
    batch_size = _positive_int("batch_size", batch_size)
    T = config.context_length if seq_len is None else _positive_int("seq_len", seq_len)
    bytes_per_value = _positive_int("bytes_per_value", bytes_per_value)
    d, L = config.d_model, config.n_layer
    rms, rope = config.norm == "rmsnorm", config.position == "rope"
    norm = d + 1 if rms else 2  # values one norm saves besides its input and output
    mlp = (4 if config.mlp == "swiglu" else 2) * config.d_ff
    per_layer = 8 * d + mlp + 2 * norm + config.n_head + (2 * d if rope else 0)
    per_token = L * per_layer + 2 * d + norm + config.vocab_size
    once = 2 * T * config.head_dim * bytes_per_value if rope else 0  # cos, sin rows
    indices = 8 * T if config.position == "learned" else 0
    return (batch_size * T * (per_token * bytes_per_value + 16) + indices + once
            + bytes_per_value)


def training_memory(config, batch_size: int, seq_len: int | None = None, *,
                    bytes_per_value: int = 4, optimizer_states: int = 2) -> TrainingMemory:
    """Estimate the memory of one training step of a :class:`GPT` built from ``config``.

    ``optimizer_states`` is 2 for Adam/AdamW (first and second moments), 1 for SGD
    with momentum, 0 for plain SGD. ``bytes_per_value`` is 4 for float32.
    """
    batch_size = _positive_int("batch_size", batch_size)
    T = config.context_length if seq_len is None else _positive_int("seq_len", seq_len)
    bytes_per_value = _positive_int("bytes_per_value", bytes_per_value)
    optimizer_states = require_int("optimizer_states", optimizer_states, 0,
                                   expected="a non-negative integer (2 for AdamW)")
    n = param_counts(config).total
    return TrainingMemory(
        weights=n * bytes_per_value,
        gradients=n * bytes_per_value,
        optimizer=optimizer_states * n * bytes_per_value,
        activations=activation_bytes(config, batch_size, T, bytes_per_value),
        loss_buffers=2 * batch_size * T * config.vocab_size * bytes_per_value,
    )


def saved_activation_bytes(loss_fn: Callable[[], torch.Tensor],
                           exclude: Iterable[torch.Tensor] = ()) -> int:
    """Run ``loss_fn()`` and count the bytes autograd saves for the backward pass.

    Each saved tensor's storage is counted once (views share storage); storages
    of the tensors in ``exclude`` (pass the model's parameters) are not counted.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss_fn()
    return sum(seen.values())


class _LiveBytes(TorchDispatchMode):
    """Tracks the bytes of live tensor storages created by PyTorch operations.

    Every operator's outputs are registered once per storage, and a finaliser
    subtracts their size when the storage is freed: the running total is what
    ``torch.cuda.memory_allocated`` reports on a GPU, for any device.
    """

    def __init__(self, existing: Iterable[torch.Tensor]) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = self.peak = 0
        for t in existing:
            self._register(t)

    def _register(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or key in self.live:
            return
        self.live[key] = size
        self.current += size
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._release, key)

    def _release(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._register(t)
        return out


def measure_peak_memory(step: Callable[[], object], existing: Iterable[torch.Tensor] = (),
                        device: torch.device | str = "cpu") -> int:
    """Peak bytes of tensors alive while ``step()`` runs.

    ``existing`` are the tensors already alive that count towards the peak (the
    weights and optimizer state). On CUDA this is ``torch.cuda.max_memory_allocated``
    (which sees every tensor already); elsewhere a dispatch mode tracks each
    storage that an operation creates, until it is freed.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    tracker = _LiveBytes(existing)
    with tracker:
        step()
    return tracker.peak
