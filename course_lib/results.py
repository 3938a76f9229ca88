"""Result files of a sweep: one JSON object per line (JSONL), appended atomically.

Each line is the record of one finished training run (see :mod:`course_lib.sweep`).
:func:`append_record` never edits the file in place: it writes the old lines plus the
new one to a temporary file and renames it over the old one (``os.replace``), so a
sweep killed at any moment leaves either the file before the append or the file
after it — never half a line. Concurrent writers on one machine take turns through
a lock file (``fcntl``, where the platform has it); processes on different machines
(cluster array jobs) should each write their own file, and :func:`load_results`
reads several files as one.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.jsonl"
>>> append_record(path, {"run_id": "a1", "result": {"final_val_loss": 1.5}})
>>> [r["run_id"] for r in load_results(path)]
['a1']
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .atomic import atomic_open

__all__ = ["append_record", "load_results", "finished_ids", "to_arrays"]

try:  # POSIX: serialise writers on one machine
    import fcntl
except ImportError:  # pragma: no cover - Windows: one writer per file
    fcntl = None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for ``path`` (a no-op where ``fcntl`` is missing).

    The lock file lives in the system's temporary folder, named after the results
    file's absolute path, so that no lock files are left beside the results.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    key = hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"course_lib-results-{key}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_record(path: str | os.PathLike, record: dict) -> None:
    """Append ``record`` as one JSON line to ``path`` (created if missing), atomically.

    ``record`` must have a string ``"run_id"`` and hold only JSON values; NaN and
    infinities are refused (they are not JSON), so a diverged run must be
    recorded with ``None`` instead.
    """
    if not isinstance(record, dict) or not isinstance(record.get("run_id"), str):
        raise ValueError(f"record must be a dict with a string 'run_id'; got "
                         f"{type(record).__name__} {str(record)[:80]}")
    try:
        line = json.dumps(record, allow_nan=False, sort_keys=True)
    except ValueError as err:
        raise ValueError(f"record {record['run_id']!r} holds NaN or infinity, which JSON "
                         f"cannot store ({err}); use None for a missing value") from None
    path = Path(path)
    with _locked(path):
        old = path.read_bytes() if path.exists() else b""
        if old and not old.endswith(b"\n"):
            raise ValueError(f"{str(path)!r} does not end with a newline: it was not written "
                             f"by append_record; refusing to append to it")
        with atomic_open(path, "wb") as handle:
            handle.write(old + line.encode("utf-8") + b"\n")


def _read_lines(path: Path) -> Iterator[dict]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{str(path)!r}, line {number}: not valid JSON ({err.msg}); "
                             f"expected one run record per line") from None
        if not isinstance(record, dict) or "run_id" not in record:
            raise ValueError(f"{str(path)!r}, line {number}: expected a JSON object with a "
                             f"'run_id'; got {line[:60]!r}")
        yield record


def load_results(*paths: str | os.PathLike) -> list[dict]:
    """All records of one or more JSONL files, in file order, each run once.

    A ``run_id`` that appears twice (two shards wrote the same run) is kept once
    when both records agree on their ``"spec"``; records that disagree raise.
    Missing files raise ``FileNotFoundError``.
    """
    if not paths:
        raise ValueError("load_results needs at least one path")
    seen: dict[str, dict] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"no results file at {str(path)!r}")
        for record in _read_lines(path):
            first = seen.setdefault(record["run_id"], record)
            if first is not record and first.get("spec") != record.get("spec"):
                raise ValueError(f"run_id {record['run_id']!r} appears twice with different "
                                 f"specs (second time in {str(path)!r})")
    return list(seen.values())


def finished_ids(path: str | os.PathLike) -> set[str]:
    """The ``run_id`` of every run recorded in ``path`` (empty if the file is missing)."""
    path = Path(path)
    return {r["run_id"] for r in _read_lines(path)} if path.is_file() else set()


#: Columns of :func:`to_arrays`: name -> (section of the record, key).
COLUMNS = {
    "N": ("model", "non_embedding_params"),
    "N_total": ("model", "total_params"),
    "N_embedding": ("model", "embedding_params"),
    "D": ("result", "tokens"),
    "C": ("result", "flops_6nd"),
    "flops": ("result", "flops"),
    "budget": ("spec", "budget"),
    "lr": ("spec", "lr"),
    "loss": ("result", "final_val_loss"),
    "train_loss": ("result", "final_train_loss"),
    "true_loss": ("result", "val_true_loss"),
    "wall_time_s": ("result", "wall_time_s"),
}


def to_arrays(records: Iterable[dict]) -> dict[str, np.ndarray]:
    """One float64 array per column of :data:`COLUMNS` (``(R,)``, NaN where missing).

    ``N`` non-embedding parameters, ``D`` training tokens, ``C = 6 N D`` FLOPs,
    ``flops`` the counted training FLOPs (attention included), ``budget`` the
    nominal IsoFLOP label, ``loss`` the final validation loss (nats/token),
    ``true_loss`` the true model's loss on the same validation tokens.
    """
    records = list(records)
    out = {}
    for name, (section, key) in COLUMNS.items():
        values = [record.get(section, {}).get(key) for record in records]
        out[name] = np.array([math.nan if v is None else float(v) for v in values])
    return out
