"""A key-value cache for fast autoregressive generation (chapter 13).

Generating token ``t`` needs the keys and values of every earlier position in every
layer. Without a cache the model recomputes them all at each step: generating ``n``
tokens after a prompt of ``T0`` costs ``sum_t O(t)`` token-forwards, quadratic in
length. With a cache each step runs the model on **one** new token, appends its keys
and values, and attends over the stored ones: linear in length, for a memory of

    2 (keys and values) x n_layer x B x T_max x d_model  numbers.

:class:`KVCache` preallocates that memory once, ``(B, nh, T_max, hs)`` per layer for
keys and for values, and tracks how many positions are filled (``length``). The model
reads ``length`` to know the position of the next token.
"""

from __future__ import annotations

import torch

from course_lib.core.validate import require_int

__all__ = ["KVCache"]


class KVCache:
    """Keys and values of ``n_layer`` attention layers for ``batch_size`` sequences.

    ``capacity`` is the largest number of positions it holds (usually the model's
    ``context_length``). Build it with :meth:`GPT.new_cache
    <course_lib.models.gpt.GPT.new_cache>`, pass it to ``GPT.forward(..., cache=)``,
    and the model fills it; :meth:`reset` empties it for reuse.
    """

    def __init__(self, n_layer: int, batch_size: int, n_head: int, capacity: int,
                 head_dim: int, *, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        n_layer, batch_size, n_head, capacity, head_dim = (
            require_int(name, value, 1, expected="a positive integer")
            for name, value in (("n_layer", n_layer), ("batch_size", batch_size),
                                ("n_head", n_head), ("capacity", capacity),
                                ("head_dim", head_dim)))
        shape = (batch_size, n_head, capacity, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.batch_size, self.capacity = batch_size, capacity
        self.length = 0  # positions filled; updated once per forward, after the last layer
        self._pending = 0

    def __repr__(self) -> str:
        return (f"KVCache(layers={len(self.keys)}, batch={self.batch_size}, "
                f"length={self.length}/{self.capacity})")

    @property
    def nbytes(self) -> int:
        """Bytes held by the preallocated keys and values (all layers)."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)

    def reset(self) -> None:
        """Forget every stored position (the memory is kept for the next sequence)."""
        self.length = self._pending = 0

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``, ``v`` ``(B, nh, T_new, hs)`` of ``layer`` after the filled positions.

        Returns all keys and values of that layer so far, ``(B, nh, length + T_new, hs)``.
        """
        B, _, T_new, _ = k.shape
        if B != self.batch_size:
            raise ValueError(f"the cache was built for batch_size={self.batch_size}; the "
                             f"input has batch size {B}. Build a new cache with "
                             f"model.new_cache({B})")
        end = self.length + T_new
        if end > self.capacity:
            raise ValueError(f"the cache holds {self.capacity} positions; {self.length} are "
                             f"filled and {T_new} more do not fit. Call cache.reset() and "
                             f"feed the last {self.capacity} tokens again")
        self.keys[layer][:, :, self.length:end] = k
        self.values[layer][:, :, self.length:end] = v
        self._pending = T_new
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def commit(self) -> None:
        """Advance ``length`` past the positions the last forward pass appended."""
        self.length += self._pending
        self._pending = 0
