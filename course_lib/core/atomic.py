"""Files and folders that are either complete or absent; locks that every writer shares.

``os.replace`` is atomic on POSIX and Windows when source and target are in the same
folder, so a reader never sees half a file, and a run interrupted while writing (Ctrl-C,
a killed job, a full disk) leaves the previous version, or nothing, behind. Everything
written here gets the mode a plain ``open`` would give (``0o666`` less the umask for
files, ``0o777`` less the umask for folders), not ``tempfile``'s owner-only ``0o600``.

* :func:`atomic_open`, :func:`atomic_write_text`, :func:`write_json_atomic` — one file;
* :func:`atomic_folder` — a whole folder (a checkpoint, a stored model), built under a
  temporary name beside its target and renamed into place;
* :func:`file_lock` — an exclusive lock on ``<path>.lock``, a file *next to* what it
  guards, so that processes with different temporary folders (cluster jobs) share it.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> with atomic_open(folder / "result.txt", "w") as handle:
...     _ = handle.write("done")
>>> (folder / "result.txt").read_text()
'done'
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: one writer at a time, unchecked
    fcntl = None

__all__ = ["atomic_open", "atomic_write_text", "write_json_atomic", "atomic_folder",
           "file_lock"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success fsync it and rename it to ``path``.

    ``mode`` is ``"wb"`` or ``"w"`` (UTF-8). If the block raises, or the process is
    interrupted, the temporary file is removed and ``path`` is left untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb'; got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        kwargs = {"encoding": "utf-8"} if mode == "w" else {}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, data: Any, *, indent: int | None = 1) -> Path:
    """Write ``data`` as JSON (no NaN or infinity: they are not JSON) to ``path`` atomically."""
    try:
        text = json.dumps(data, indent=indent, allow_nan=False)
    except ValueError as err:
        raise ValueError(f"data for {str(path)!r} holds NaN or infinity, which JSON cannot "
                         f"store ({err}); store None for a missing value") from None
    return atomic_write_text(path, text + "\n")


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path``.

    If the block raises (or the process dies) ``path`` is untouched and the temporary
    folder is removed (or, after a kill, left as ``.<name>.*.tmp`` for the next writer
    to clear). A folder already at ``path`` is moved aside, the new one renamed into
    place, then the old one deleted: a reader sees the old folder or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        if stale.is_dir() and not _held(stale, path.name):
            shutil.rmtree(stale, ignore_errors=True)
    # the writer's pid is in the name, so the folder holds only what the block writes
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _held(folder: Path, name: str) -> bool:
    """Whether the writer of ``.<name>.<pid>.<random>.tmp`` may still be running."""
    try:
        os.kill(int(folder.name[len(name) + 2:].split(".")[0]), 0)
    except (OSError, ValueError):
        return False
    return True


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``<path>.lock`` for the ``with`` block.

    The lock file lives next to ``path``, so every process that writes ``path`` takes
    turns on the same lock whatever its ``$TMPDIR``; ``fcntl`` locks also work on the
    shared filesystems of clusters (NFS v4, Lustre) where they are enabled. Where
    ``fcntl`` is missing (Windows) this is a no-op.
    """
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
