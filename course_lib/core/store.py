"""The course's one store: what was computed once is kept with proof of what it is.

Two containers, one schema — ``{"spec", "result", "provenance"}`` plus, for a folder,
the sha256 of every file in it:

* **a record** (:func:`cached_run`): results of a run, one entry of a JSON file;
* **an artifact folder** (:func:`load_or_build`): weights, configs, tokenizers and a
  ``manifest.json`` that lists every other file of the folder with its sha256. Loading
  verifies every file, every time (no size or date shortcut), and refuses a folder with
  a file the manifest does not list; writing builds the folder under a temporary name
  and renames it into place (:func:`course_lib.core.atomic.atomic_folder`).

Records: chapters that fine-tune real models keep their results in one small JSON file
per chapter under ``notebooks/results/``, one entry per run:

    {"run name": {"spec": {...}, "result": {...}, "provenance": {...}}, ...}

:func:`cached_run` returns the stored entry when its ``spec`` (every setting that decides
the result, weights fingerprints included) equals the one asked for; otherwise it calls
``compute()``, adds provenance (versions, device, threads, wall time, date) and rewrites
the file atomically, so an interrupted sweep keeps every run it finished and resumes with
the next one. Deleting the file recomputes everything.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.json"
>>> cached_run(path, "square", {"x": 3}, lambda: {"y": 9})["result"]
{'y': 9}
>>> cached_run(path, "square", {"x": 3}, lambda: 1 / 0)["result"]  # not recomputed
{'y': 9}
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from course_lib.core.atomic import atomic_folder, atomic_write_text, file_lock, write_json_atomic
from course_lib.core.provenance import provenance

__all__ = ["load_runs", "cached_run", "compute_minutes", "file_sha256", "verify_sha256",
           "spec_key", "folder_digests", "verify_folder", "load_manifest", "load_or_build",
           "MANIFEST"]

#: The file of an artifact folder that lists every other file with its sha256.
MANIFEST = "manifest.json"


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
    and both digests for a mismatch: files that changed after they were recorded are
    corrupted or substituted, and are not loaded.
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


def spec_key(spec: dict) -> str:
    """16 hex digits naming ``spec``: the sha256 of its canonical JSON (sorted keys)."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _file_names(folder: Path) -> list[str]:
    """Relative POSIX paths of the files under ``folder``, less the manifest, sorted."""
    names = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return sorted(n for n in names if n != MANIFEST)


def folder_digests(folder: str | os.PathLike) -> dict[str, str]:
    """``{relative/posix/path: sha256}`` of every file under ``folder`` but the manifest."""
    folder = Path(folder)
    return {name: file_sha256(folder / name) for name in _file_names(folder)}


def verify_folder(folder: str | os.PathLike, expected: dict[str, str]) -> None:
    """Every file of ``expected`` present with its digest, and no file it does not list."""
    verify_sha256(folder, expected)
    extra = sorted(set(_file_names(Path(folder))) - set(expected))
    if extra:
        raise ValueError(f"{str(folder)!r} holds files its {MANIFEST} does not list: "
                         f"{extra[:5]}; an artifact's folder holds only what was recorded")


def load_manifest(folder: str | os.PathLike, spec: dict | None = None) -> dict:
    """The verified manifest of the artifact ``folder`` (every file's sha256 checked).

    With ``spec``, the stored spec must equal it. Raises ``FileNotFoundError`` when the
    folder holds no manifest, ``ValueError`` for a damaged manifest, a changed file or
    another spec.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{str(folder)!r} holds no {MANIFEST}: not a stored artifact")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is damaged ({type(err).__name__}: {err}); delete the "
                         f"folder to build it again") from None
    verify_folder(folder, files)
    if spec is not None:
        wanted = json.loads(json.dumps(spec))
        if manifest.get("spec") != wanted:
            raise ValueError(f"{str(folder)!r} was built from spec {manifest.get('spec')}, "
                             f"not {wanted}; delete it to build it again with this spec")
    return manifest


def load_or_build(folder: str | os.PathLike, spec: dict,
                  build: Callable[[Path], dict[str, Any]], *, device: Any = None,
                  rebuild: bool = False, **provenance_extra: Any) -> dict:
    """The verified manifest of ``folder``; built first by ``build(tmp)`` if it is missing.

    ``build`` writes its files into the empty folder ``tmp`` and returns the JSON
    ``result``; the store adds ``manifest.json`` — ``spec``, its key, the result, the
    sha256 of every file, provenance (versions, ``device``, wall time) — and renames
    the folder into place. A stored folder with another spec is an error, not a
    silent rebuild (``rebuild=True`` builds again).
    """
    folder = Path(folder)
    spec = json.loads(json.dumps(spec))
    if (folder / MANIFEST).is_file() and not rebuild:
        return load_manifest(folder, spec)
    with file_lock(folder):
        if (folder / MANIFEST).is_file() and not rebuild:  # built meanwhile by another
            return load_manifest(folder, spec)
        start = time.perf_counter()
        with atomic_folder(folder) as tmp:
            result = build(tmp)
            manifest = {"spec": spec, "key": spec_key(spec), "result": result,
                        "files": folder_digests(tmp),
                        "provenance": provenance(device, wall_time_s=round(
                            time.perf_counter() - start, 1), **provenance_extra)}
            write_json_atomic(tmp / MANIFEST, manifest)
    return load_manifest(folder, spec)


def load_runs(path: str | os.PathLike) -> dict[str, dict]:
    """Every stored run of the file ``path`` (an empty dict if it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        runs = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a results file (invalid JSON: {err}); delete it to "
                         f"recompute its runs") from None
    if not isinstance(runs, dict):
        raise ValueError(f"{path} holds {type(runs).__name__}, expected an object of runs")
    return runs


def compute_minutes(path: str | os.PathLike) -> float:
    """Wall time, in minutes, that the stored runs of ``path`` took when they were computed.

    The sum of each run's recorded ``wall_time_s``: what deleting the file would cost to
    recompute on the machine that wrote it (chapters quote it in their budgets).
    """
    return sum(run["provenance"]["wall_time_s"] for run in load_runs(path).values()) / 60


def cached_run(path: str | os.PathLike, name: str, spec: dict, compute: Callable[[], dict],
               *, recompute: bool = False, device: torch.device | str | None = None) -> dict:
    """The entry ``{"spec", "result", "provenance"}`` of run ``name`` in the file ``path``.

    ``spec`` and the dict returned by ``compute()`` must be JSON (no NaN: a run that
    has no value stores ``None``). With ``recompute=True`` the run is computed again.
    ``device`` (default: :func:`course_lib.core.device.get_device`) is recorded in the
    provenance with the versions, the threads and the wall time.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string; got {name!r}")
    spec = json.loads(json.dumps(spec))  # tuples -> lists, as they will be read back
    runs = load_runs(path)
    stored = runs.get(name)
    if stored is not None and stored.get("spec") == spec and not recompute:
        return stored
    start = time.perf_counter()
    result = compute()
    seconds = round(time.perf_counter() - start, 1)
    entry = {"spec": spec, "result": result, "provenance": provenance(
        device, wall_time_s=seconds, threads=torch.get_num_threads())}
    try:
        text = json.dumps(entry, allow_nan=False)
    except ValueError as err:
        raise ValueError(f"run {name!r} returned NaN or infinity, which JSON cannot store "
                         f"({err}); store None instead") from None
    runs = load_runs(path)  # re-read: keep runs another process added meanwhile
    runs[name] = json.loads(text)
    atomic_write_text(path, json.dumps(runs, indent=1, sort_keys=True) + "\n")
    return runs[name]
