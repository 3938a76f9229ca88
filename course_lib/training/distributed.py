"""Data-parallel training across processes: the few calls ``train`` needs (chapter 5).

``torchrun --nproc_per_node K script.py`` starts K copies of a script and sets
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in each one's environment.
:func:`init_from_env` reads them and joins the process group — ``gloo`` on CPUs,
``nccl`` on NVIDIA GPUs — so the same training code runs alone or data-parallel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_from_env", "leave", "all_reduce_mean", "all_gather_objects",
           "barrier"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: its rank among ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # init_from_env created the process group: leave() ends it

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and shows progress; the others stay quiet."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"${name} must be an integer (torchrun sets it); got {value!r}") from None


def init_from_env(device_type: str = "cpu") -> DistInfo:
    """Join the process group described by torchrun's environment variables.

    Without them (``WORLD_SIZE`` unset or 1) nothing happens: a single process.
    An already initialised group is reused (and left to its creator); a group created
    here is ended by :func:`leave`. The backend is ``nccl`` when ``device_type`` is
    ``"cuda"`` and ``gloo`` otherwise.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    info = DistInfo(_env_int("RANK", 0), world_size, _env_int("LOCAL_RANK", 0))
    if not info.enabled:
        return info
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend, rank=info.rank, world_size=world_size)
        info = DistInfo(info.rank, info.world_size, info.local_rank, owns_group=True)
    return info


def leave(info: DistInfo) -> None:
    """End the process group if :func:`init_from_env` created it for ``info``."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: float, info: DistInfo, device: torch.device) -> float:
    """The mean of ``value`` over all processes (``value`` itself when alone)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.item() / info.world_size


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process (``[obj]`` when alone)."""
    if not info.enabled:
        return [obj]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(info: DistInfo) -> None:
    """Wait until every process gets here (no-op when alone)."""
    if info.enabled:
        dist.barrier()
