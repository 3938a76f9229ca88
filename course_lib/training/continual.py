"""Learning a new task without forgetting the old one: replay (chapter 14).

:func:`replay_batches` mixes a fraction of each training batch from the old task's
data into the new task's batches, the simplest defence against catastrophic
forgetting (and the one used to continue pretraining large models). Validation
batches come from the split named by ``val_from``, so that ``course_lib.training.loop``'s
periodic evaluation can follow the *old* task's loss while the model learns the new.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["replay_batches"]

BatchFn = Callable[[str, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def replay_batches(new: BatchFn, old: BatchFn, replay_fraction: float, *,
                   val_from: str = "old") -> BatchFn:
    """A batch function whose training batches hold ``replay_fraction`` old-task rows.

    ``new`` and ``old`` are ``get_batch(split, generator) -> (x, y)`` functions with the
    same batch shape ``(B, T)``. Of each training batch, ``round(replay_fraction * B)``
    rows are the first rows of an old-task batch and the rest the first rows of a
    new-task batch (both drawn with the same generator, so runs are reproducible).
    ``replay_fraction = 0`` is plain fine-tuning. ``val_from`` (``"old"`` or
    ``"new"``) says which task the ``"val"`` split evaluates.
    """
    if isinstance(replay_fraction, (bool, np.bool_)) or not isinstance(
            replay_fraction, (int, float, np.integer, np.floating)) \
            or not 0.0 <= replay_fraction < 1.0:
        raise ValueError(f"replay_fraction must be a number in [0, 1); got {replay_fraction!r}")
    if val_from not in ("old", "new"):
        raise ValueError(f"val_from must be 'old' or 'new'; got {val_from!r}")

    def get(split: str, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if split != "train":
            return (old if val_from == "old" else new)(split, generator)
        x_new, y_new = new("train", generator)
        n_old = round(replay_fraction * x_new.shape[0])
        if n_old == 0:
            return x_new, y_new
        x_old, y_old = old("train", generator)
        if x_old.shape[1:] != x_new.shape[1:]:
            raise ValueError(f"old batches have shape {tuple(x_old.shape)} and new ones "
                             f"{tuple(x_new.shape)}; expected the same sequence length")
        keep = x_new.shape[0] - n_old
        return (torch.cat([x_old[:n_old], x_new[:keep]]),
                torch.cat([y_old[:n_old], y_new[:keep]]))

    return get
