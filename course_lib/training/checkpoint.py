"""Training checkpoints that an interruption cannot corrupt (chapter 5).

A checkpoint is a folder ``step_000120/`` inside the run's checkpoint directory:

* ``model.safetensors``  — the weights (tied tensors stored once),
* ``state.safetensors``  — every other tensor: optimizer moments, random-number states,
* ``state.json``         — everything else: step, scheduler, histories, configs,
* ``manifest.json``      — the sha256 of the three files above.

The folder is written under a temporary name and renamed when complete
(:func:`course_lib.core.atomic.atomic_folder`), then the pointer file ``latest.json``
is replaced atomically. A run killed at any moment therefore leaves either the
previous checkpoint or the new one as "latest" — never a half-written one. Every file
is checked against the manifest before a resume reads it, so a flipped byte is an
error, not a silently different model; a damaged ``latest.json`` is an error that names
it, never a silent restart from step 0. safetensors files hold only tensors and cannot
run code when loaded, unlike pickles.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from course_lib.core.atomic import atomic_folder, write_json_atomic
from course_lib.core.store import MANIFEST, folder_digests, verify_folder

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint"]

LATEST = "latest.json"


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
    with atomic_folder(root / name) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        all_tensors = {f"extra.{k}": v.detach().cpu().contiguous() for k, v in (tensors or {}).items()}
        meta: dict[str, Any] = {"step": step, "state": state or {}}
        if optimizer is not None:
            opt_tensors, meta["optimizer"] = _split_optimizer_state(optimizer.state_dict())
            all_tensors.update({f"optimizer.{k}": v for k, v in opt_tensors.items()})
        if scheduler is not None:
            meta["scheduler"] = scheduler.state_dict()
        save_file(all_tensors, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        write_json_atomic(tmp / MANIFEST, {"sha256": folder_digests(tmp)})
    write_json_atomic(root / LATEST, {"checkpoint": name, "step": step})
    for old in sorted(root.glob("step_*"))[:-keep]:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return root / name


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The folder that ``latest.json`` names; ``None`` if no checkpoint was ever completed.

    A ``latest.json`` that cannot be read, or that names a folder that is not there, is a
    ``ValueError`` naming the file: resuming from step 0 would silently throw the run
    away (and the keep-``k`` rule would then delete the checkpoints it still has).
    """
    root = Path(directory)
    pointer = root / LATEST
    if not pointer.exists():
        return None
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
        if not isinstance(name, str) or not name.startswith("step_") or "/" in name:
            raise TypeError(f"'checkpoint' is {name!r}, expected a folder name step_NNNNNN")
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ValueError(f"{pointer} is damaged ({type(err).__name__}: {err}). Its folders "
                         f"are {sorted(p.name for p in root.glob('step_*'))}: write "
                         f"{{\"checkpoint\": \"step_NNNNNN\"}} into it to resume from one, "
                         f"or delete {root} to start again") from None
    folder = root / name
    if not (folder / "state.json").is_file():
        raise ValueError(f"{pointer} names {name}, but {folder} is not a checkpoint (no "
                         f"state.json); its folders are "
                         f"{sorted(p.name for p in root.glob('step_*'))}")
    return folder


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
    if not (folder / MANIFEST).is_file():
        raise ValueError(f"checkpoint {str(folder)!r} has no {MANIFEST}, so its files cannot "
                         f"be verified; delete it to start again")
    verify_folder(folder, json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["sha256"])
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
