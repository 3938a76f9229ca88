"""Reproducible randomness: one call seeds Python, NumPy and PyTorch.

Notebooks call :func:`set_seed` at the top (through
:func:`course_lib.core.setup.setup_chapter`) so that re-running a chapter gives the same
numbers (on the same hardware and library versions), which is what lets nbval compare
stored outputs. Library code never reseeds the caller's global state: it takes a
``torch.Generator`` (:func:`make_generator`), or runs what must use torch's global
generator — initialising a module, dropout — inside :func:`seeded`, which restores the
caller's state afterwards.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["set_seed", "make_generator", "seeded"]


def _is_int(value: object) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def set_seed(seed: int, *, deterministic: bool = True) -> int:
    """Seed ``random``, ``numpy`` and ``torch`` (all devices); return ``seed``.

    With ``deterministic=True`` PyTorch is asked for deterministic kernels
    where they exist (``warn_only``: an op without one warns instead of failing).
    """
    if not _is_int(seed) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32); got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return seed


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` seeded with ``seed``, independent of the global state."""
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    seed = int(seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global generators seeded with ``seed``; then restore them.

    Inside, everything that draws from torch's global state (``nn.Linear``'s
    initialisation, dropout, ``torch.randn``) gives the numbers ``torch.manual_seed(seed)``
    would; after the block the caller's generators (CPU and every CUDA device) are as
    they were, so a library call leaves no trace in the caller's random numbers.

    >>> import torch
    >>> _ = torch.manual_seed(1); before = torch.rand(1)
    >>> _ = torch.manual_seed(1)
    >>> with seeded(7):
    ...     inside = torch.rand(1)
    >>> bool(torch.rand(1) == before)  # the caller's stream went on untouched
    True
    """
    if not _is_int(seed) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    seed = int(seed)
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
