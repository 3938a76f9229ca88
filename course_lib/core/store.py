"""Load an expensive run's results if they were computed before, else compute and store them.

Chapters that fine-tune real models keep their results in one small JSON file per
chapter under ``notebooks/results/``, one entry per run:

    {"run name": {"spec": {...}, "result": {...}, "provenance": {...}}, ...}

:func:`cached_run` returns the stored entry when its ``spec`` (every setting that
decides the result, weights fingerprints included) equals the one asked for;
otherwise it calls ``compute()``, adds provenance (versions, device, threads, wall
time, date: :func:`course_lib.core.provenance.provenance`) and rewrites the file atomically, so an interrupted sweep keeps every run
it finished and resumes with the next one. Deleting the file recomputes everything.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.json"
>>> cached_run(path, "square", {"x": 3}, lambda: {"y": 9})["result"]
{'y': 9}
>>> cached_run(path, "square", {"x": 3}, lambda: 1 / 0)["result"]  # not recomputed
{'y': 9}
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from course_lib.core.atomic import atomic_write_text
from course_lib.core.provenance import provenance

__all__ = ["load_runs", "cached_run", "compute_minutes"]


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
