"""Result files of a sweep: one JSON object per line (JSONL), appended, never rewritten.

Each line is the record of one finished training run (see :mod:`course_lib.scaling.sweep`).
:func:`append_record` adds one line with a single ``write`` to a file opened for
appending, while holding a lock on ``<file>.lock`` — a lock file *next to* the results,
so that every process that writes them, whatever its temporary folder (cluster jobs
each get their own), takes turns on the same lock. ``fcntl`` locks also work on the
shared filesystems of clusters (NFS v4, Lustre) where they are enabled. A writer killed
in the middle of its line leaves at most a partial last line without a newline; the
next append removes it first (that run was never recorded, so it is trained again), and
:func:`load_results` ignores it.

:func:`claim_run` lets two sweeps work on one file without training the same run twice:
a run is claimed (a file under ``<file>.claims/``, created exclusively) before training
and released when its record is appended; a claim whose process has died is taken over.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.jsonl"
>>> append_record(path, {"run_id": "a1", "result": {"final_val_loss": 1.5}})
>>> [r["run_id"] for r in load_results(path)]
['a1']
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from course_lib.core.atomic import file_lock

__all__ = ["append_record", "load_results", "finished_ids", "to_arrays", "claim_run",
           "release_run"]

def _encode(record: dict) -> bytes:
    if not isinstance(record, dict) or not isinstance(record.get("run_id"), str):
        raise ValueError(f"record must be a dict with a string 'run_id'; got "
                         f"{type(record).__name__} {str(record)[:80]}")
    try:
        line = json.dumps(record, allow_nan=False, sort_keys=True)
    except ValueError as err:
        raise ValueError(f"record {record['run_id']!r} holds NaN or infinity, which JSON "
                         f"cannot store ({err}); use None for a missing value") from None
    return line.encode("utf-8") + b"\n"


def _drop_partial_last_line(path: Path) -> None:
    """Cut a last line that has no newline (a writer died inside it). Caller holds the lock."""
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        tail = min(size, 1 << 20)
        while True:  # find the last newline, reading backwards in blocks
            handle.seek(size - tail)
            block = handle.read(tail)
            cut = block.rfind(b"\n")
            if cut >= 0 or tail == size:
                handle.truncate(size - tail + cut + 1 if cut >= 0 else 0)
                return
            tail = min(size, 2 * tail)


def append_record(path: str | os.PathLike, record: dict) -> None:
    """Append ``record`` as one JSON line to ``path`` (created if missing).

    ``record`` must have a string ``"run_id"`` and hold only JSON values; NaN and
    infinities are refused (they are not JSON), so a diverged run must record
    ``None`` for a loss it does not have.
    """
    line = _encode(record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        if path.exists():
            _drop_partial_last_line(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            written = os.write(fd, line)
            while written < len(line):  # a regular file takes it whole; be safe anyway
                written += os.write(fd, line[written:])
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_lines(path: Path) -> Iterator[dict]:
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1]:  # no final newline: a writer died inside this line
        lines = lines[:-1]
    for number, line in enumerate(lines, start=1):
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


# ----------------------------------------------------------------------- claims
def _claim_path(path: str | os.PathLike, run_id: str) -> Path:
    return Path(f"{path}.claims") / run_id


def _alive(claim: dict) -> bool:
    """Whether the process that wrote ``claim`` may still be running."""
    if claim.get("host") != socket.gethostname():
        return True  # another machine's process: we cannot tell, so respect it
    try:
        os.kill(int(claim["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    return True


def claim_run(path: str | os.PathLike, run_id: str) -> bool:
    """Claim ``run_id`` for this process before training it; ``False`` if it is taken.

    A run already recorded in ``path`` cannot be claimed. A claim left by a process
    on this machine that no longer runs is taken over (its run is trained again, or
    resumed from its checkpoint).
    """
    claim = _claim_path(path, run_id)
    claim.parent.mkdir(parents=True, exist_ok=True)
    mine = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                       "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    with file_lock(path):
        if run_id in finished_ids(path):
            return False
        try:
            fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            try:
                held = json.loads(claim.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                held = {}
            if _alive(held) and held.get("pid") != os.getpid():
                return False
            claim.write_text(mine, encoding="utf-8")
            return True
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(mine)
        return True


def release_run(path: str | os.PathLike, run_id: str) -> None:
    """Remove this process's claim on ``run_id`` (after its record is appended)."""
    _claim_path(path, run_id).unlink(missing_ok=True)


# ----------------------------------------------------------------------- columns
#: Columns of :func:`to_arrays`: name -> (section of the record, key).
COLUMNS = {
    "N": ("model", "non_embedding_params"),
    "N_total": ("model", "total_params"),
    "N_embedding": ("model", "embedding_params"),
    "D": ("result", "tokens"),
    "C": ("result", "flops_6nd"),
    "flops": ("result", "flops"),
    "flops_no_unembedding": ("result", "flops_no_unembedding"),
    "budget": ("spec", "budget"),
    "lr": ("spec", "lr"),
    "seed": ("spec", "seed"),
    "loss": ("result", "final_val_loss"),
    "train_loss": ("result", "final_train_loss"),
    "true_loss": ("result", "val_true_loss"),
    "wall_time_s": ("result", "wall_time_s"),
}


def to_arrays(records: Iterable[dict]) -> dict[str, np.ndarray]:
    """One float64 array per column of :data:`COLUMNS` (``(R,)``, NaN where missing).

    ``N`` non-embedding parameters, ``D`` training tokens, ``C = 6 N D`` FLOPs,
    ``flops`` the counted training FLOPs (attention and output layer included),
    ``budget`` the nominal IsoFLOP label, ``loss`` the final validation loss
    (nats/token; NaN for a diverged run), ``true_loss`` the true model's loss on
    the same validation tokens.
    """
    records = list(records)
    out = {}
    for name, (section, key) in COLUMNS.items():
        values = [(record.get(section) or {}).get(key) for record in records]
        out[name] = np.array([math.nan if v is None else float(v) for v in values])
    return out
