"""Training checkpoints that an interruption cannot corrupt (chapter 5).

A checkpoint is a folder ``step_000120/`` inside the run's checkpoint directory:

* ``model.safetensors``  — the weights (tied tensors stored once),
* ``state.safetensors``  — every other tensor: optimizer moments, random-number states,
* ``state.json``         — everything else: step, scheduler, histories, configs.

The folder is written under a temporary name and renamed when complete, then the
pointer file ``latest.json`` is replaced atomically (``os.replace``). A run killed
at any moment therefore leaves either the previous checkpoint or the new one as
"latest" — never a half-written one. safetensors files hold only tensors and
cannot run code when loaded, unlike pickles.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "write_json_atomic",
           "file_sha256", "verify_sha256"]

LATEST = "latest.json"


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as JSON to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 digest of a file, as 64 hex digits (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(folder: str | os.PathLike, expected: dict[str, str]) -> None:
    """Check that each file ``folder / name`` has the digest ``expected[name]``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file
    and both digests for a mismatch: weights that changed after they were recorded
    are corrupted or substituted, and are not loaded.
    """
    for name, digest in expected.items():
        path = Path(folder) / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (its sha256 is recorded as {digest})")
        got = file_sha256(path)
        if got != digest:
            raise ValueError(f"{path} has sha256 {got}, but {digest} was recorded: the file "
                             f"is corrupted or was replaced. Restore it (git checkout) or "
                             f"delete it to produce it again")


def _split_optimizer_state(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors of an optimizer ``state_dict`` as flat ``state.{param}.{name}`` keys, the rest as JSON."""
    tensors, scalars = {}, {}
    for index, values in state_dict["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    # JSON turned tuples such as AdamW's betas into lists: turn them back
    groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v
               for k, v in group.items()} for group in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    directory: str | os.PathLike,
    step: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
    state: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Save a checkpoint for ``step`` and make it the latest; keep the newest ``keep``.

    ``tensors`` (for example random-number-generator states) go to
    ``state.safetensors``, ``state`` (JSON-serialisable) to ``state.json``.
    Returns the checkpoint's folder.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1; got {keep!r}")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:06d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.", suffix=".tmp"))
    try:
        save_model(model, str(tmp / "model.safetensors"))
        all_tensors = {f"extra.{k}": v.detach().cpu().contiguous() for k, v in (tensors or {}).items()}
        meta: dict[str, Any] = {"step": step, "state": state or {}}
        if optimizer is not None:
            opt_tensors, meta["optimizer"] = _split_optimizer_state(optimizer.state_dict())
            all_tensors.update({f"optimizer.{k}": v for k, v in opt_tensors.items()})
        if scheduler is not None:
            meta["scheduler"] = scheduler.state_dict()
        save_file(all_tensors, str(tmp / "state.safetensors"))
        write_json_atomic(tmp / "state.json", meta)
        final = root / name
        if final.exists():  # the same step saved again (after a resume): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_json_atomic(root / LATEST, {"checkpoint": name, "step": step})
    for old in sorted(root.glob("step_*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".step_*.tmp"):  # left behind by a run killed while saving
        shutil.rmtree(stale, ignore_errors=True)
    return final


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The folder that ``latest.json`` names, or ``None`` if there is no complete checkpoint."""
    root = Path(directory)
    try:
        name = json.loads((root / LATEST).read_text(encoding="utf-8"))["checkpoint"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None
    folder = root / name
    return folder if (folder / "state.json").is_file() else None


def load_checkpoint(
    folder: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore ``model`` (and ``optimizer``, ``scheduler``) from ``folder``, in place.

    Returns the JSON ``state`` and the extra ``tensors`` given to :func:`save_checkpoint`.
    """
    folder = Path(folder)
    if not (folder / "state.json").is_file():
        raise FileNotFoundError(f"folder {str(folder)!r} is not a checkpoint (no state.json)")
    meta = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    missing, unexpected = load_model(model, str(folder / "model.safetensors"), strict=False,
                                     device=str(device))
    if missing or unexpected:
        raise ValueError(f"checkpoint {str(folder)!r} does not fit the model: missing "
                         f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    stored = load_file(str(folder / "state.safetensors"))
    if optimizer is not None:
        opt_tensors = {k[len("optimizer."):]: v for k, v in stored.items()
                       if k.startswith("optimizer.")}
        optimizer.load_state_dict(_join_optimizer_state(opt_tensors, meta["optimizer"]))
    if scheduler is not None:
        scheduler.load_state_dict(meta["scheduler"])
    extra = {k[len("extra."):]: v for k, v in stored.items() if k.startswith("extra.")}
    return meta["state"], extra
