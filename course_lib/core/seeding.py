"""Reproducible randomness: one call seeds Python, NumPy and PyTorch.

Notebooks call :func:`set_seed` at the top so that re-running a chapter gives
the same numbers (on the same hardware and library versions), which is what
lets nbval compare stored outputs. Code that needs its own stream of random
numbers should take a ``torch.Generator`` from :func:`make_generator` rather
than touch the global state.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["set_seed", "make_generator"]


def set_seed(seed: int, *, deterministic: bool = True) -> int:
    """Seed ``random``, ``numpy`` and ``torch`` (all devices); return ``seed``.

    With ``deterministic=True`` PyTorch is asked for deterministic kernels
    where they exist (``warn_only``: an op without one warns instead of failing).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32); got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return seed


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` seeded with ``seed``, independent of the global state."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen
