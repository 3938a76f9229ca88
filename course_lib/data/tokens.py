"""Token arrays on disk and the batches a language model trains on.

* :func:`encode_corpus` tokenizes a text once and keeps the ids in a memory-mapped file
  (``uint16`` when the vocabulary fits, else ``uint32``) under the cache folder, keyed
  by corpus name + text hash + tokenizer fingerprint + format version. The file is
  written to a temporary name and renamed (``os.replace``), so an interrupted run leaves
  no half-written array: the next call simply encodes again.
* :func:`train_val_split` cuts a token array into two contiguous parts (no window can
  straddle them, so nothing leaks from validation into training).
* :func:`get_batch` samples ``(x, y)`` windows, ``y`` being ``x`` shifted by one token;
  :func:`train_val_batches` turns two splits into the batch function that
  :func:`course_lib.training.loop.train` calls; :func:`sequential_batches` walks a split once,
  for evaluation.

The cache folder is ``$COURSE_CACHE`` if set, else ``~/.cache/course_lib`` — outside
the repository, reused offline, safe to delete.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from course_lib import __version__
from course_lib.core.atomic import atomic_open, atomic_write_text
from course_lib.core.validate import require_int, require_number

__all__ = [
    "get_rows",
    "CACHE_ENV_VAR",
    "FORMAT_VERSION",
    "default_cache_dir",
    "token_dtype",
    "to_token_array",
    "encode_corpus",
    "token_file_info",
    "train_val_split",
    "get_batch",
    "train_val_batches",
    "sequential_batches",
]

CACHE_ENV_VAR = "COURSE_CACHE"
FORMAT_VERSION = 1  # bump when the file layout or the encoding changes
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Tokenizer(Protocol):
    """What :func:`encode_corpus` needs from a tokenizer (see ``course_lib.data.tokenizers``)."""

    vocab_size: int
    fingerprint: str

    def encode(self, text: str) -> list[int]: ...


def default_cache_dir() -> Path:
    """``$COURSE_CACHE`` if set, else ``~/.cache/course_lib`` (created on first use)."""
    configured = os.environ.get(CACHE_ENV_VAR, "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "course_lib"


def token_dtype(vocab_size: int) -> np.dtype:
    """``uint16`` for vocabularies up to 65,536 ids, else ``uint32``."""
    vocab_size = require_int("vocab_size", vocab_size, 1, 2**32,
                             expected="an integer in [1, 2**32]")
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def to_token_array(ids: object, vocab_size: int) -> np.ndarray:
    """Token ids as a 1-D array of :func:`token_dtype` ``(vocab_size)``: ``(n_tokens,)``.

    Every id is checked to lie in ``[0, vocab_size)`` first: a plain ``astype`` to an
    unsigned dtype would wrap an id that does not fit (70,000 stored as ``uint16`` reads
    back as 4,464) or a negative one (-1 becomes 65,535) without any error.
    """
    dtype = token_dtype(vocab_size)
    array = ids.detach().cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise TypeError(f"ids must be a 1-D sequence of integer token ids; got dtype "
                        f"{array.dtype} and shape {array.shape}")
    bad = (array < 0) | (array >= vocab_size)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"ids holds token id {int(array[i])} at position {i}, outside the "
                         f"vocabulary [0, {vocab_size}) of vocab_size={vocab_size}; it does "
                         f"not fit in {dtype.name} without wrapping around")
    return array.astype(dtype)


def _write_array(path: Path, ids: np.ndarray) -> None:
    """Write ``ids`` (raw, native byte order) to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        ids.tofile(handle)


def _cached(bin_path: Path, meta_path: Path) -> np.memmap | None:
    """The cached array if both files are present and consistent, else ``None``."""
    if not (bin_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        dtype = np.dtype(meta["dtype"])
        n = int(meta["n_tokens"])
    except (ValueError, KeyError, TypeError):
        return None
    if meta.get("format_version") != FORMAT_VERSION or bin_path.stat().st_size != n * dtype.itemsize:
        return None
    return np.memmap(bin_path, dtype=dtype, mode="r", shape=(n,))


def encode_corpus(
    text: str,
    tokenizer: Tokenizer,
    cache_dir: str | os.PathLike | None = None,
    name: str = "corpus",
) -> np.memmap:
    """Token ids of ``text`` as a read-only memory map ``(n_tokens,)``, uint16 or uint32.

    The first call encodes and writes ``<name>-<text hash>-<tokenizer>-v<version>.bin``
    (plus a ``.json`` with provenance: sizes in characters, bytes and tokens, versions,
    time) to ``cache_dir`` (default :func:`default_cache_dir`); later calls with the same
    text and tokenizer map the file without encoding. A missing, truncated or
    half-written file is detected and rewritten.
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f"text must be a non-empty string; got {type(text).__name__} "
                         f"of length {len(text) if isinstance(text, str) else 'n/a'}")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name must be 1-64 letters, digits, '_', '-' or '.' (it becomes a "
                         f"file name), starting with a letter or digit; got {name!r}")
    for attribute in ("vocab_size", "fingerprint", "encode"):
        if not hasattr(tokenizer, attribute):
            raise TypeError(f"tokenizer must have .{attribute} (a course_lib tokenizer); "
                            f"got {type(tokenizer).__name__}")
    dtype = token_dtype(tokenizer.vocab_size)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    key = f"{name}-{digest}-{tokenizer.fingerprint}-v{FORMAT_VERSION}"
    bin_path, meta_path = folder / f"{key}.bin", folder / f"{key}.json"
    cached = _cached(bin_path, meta_path)
    if cached is not None:
        return cached
    encode = getattr(tokenizer, "encode_array", tokenizer.encode)
    ids = np.asarray(encode(text), dtype=np.int64)
    try:
        stored = to_token_array(ids, tokenizer.vocab_size)
    except ValueError as err:
        raise ValueError(f"the tokenizer produced an id outside its vocabulary: {err}") from None
    meta_path.unlink(missing_ok=True)  # metadata last: it marks the array as complete
    _write_array(bin_path, stored)
    meta = {
        "format_version": FORMAT_VERSION, "name": name, "text_sha256_16": digest,
        "tokenizer": type(tokenizer).__name__, "tokenizer_fingerprint": tokenizer.fingerprint,
        "vocab_size": tokenizer.vocab_size, "dtype": dtype.name, "n_tokens": int(ids.size),
        "n_chars": len(text), "n_bytes": len(text.encode("utf-8")),
        "course_lib": __version__, "numpy": np.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    return np.memmap(bin_path, dtype=dtype, mode="r", shape=(ids.size,))


def token_file_info(tokens: np.memmap) -> dict:
    """The provenance stored next to an array returned by :func:`encode_corpus`."""
    filename = getattr(tokens, "filename", None)
    if not filename:
        raise ValueError("tokens must be the memory map returned by encode_corpus "
                         f"(it has a .filename); got {type(tokens).__name__}")
    return json.loads(Path(filename).with_suffix(".json").read_text(encoding="utf-8"))


def _check_tokens(tokens: object) -> None:
    if not isinstance(tokens, (np.ndarray, torch.Tensor)) or tokens.ndim != 1:
        raise TypeError(f"tokens must be a 1-D numpy array, memmap or tensor of token ids; "
                        f"got {type(tokens).__name__} with shape "
                        f"{getattr(tokens, 'shape', 'n/a')}")
    integral = (not (tokens.is_floating_point() or tokens.is_complex()
                     or tokens.dtype == torch.bool) if isinstance(tokens, torch.Tensor)
                else np.issubdtype(tokens.dtype, np.integer))
    if not integral:
        raise TypeError(f"tokens must hold integer token ids; got dtype {tokens.dtype} "
                        f"(a float array would be truncated to ids silently)")


def train_val_split(tokens: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous split: the first ``1 - val_fraction`` of the tokens, then the rest.

    Returns two views (no copy). Windows sampled from one part never include tokens
    of the other, so validation text is never trained on.
    """
    _check_tokens(tokens)
    val_fraction = require_number("val_fraction", val_fraction, 0, 1, closed=(False, False),
                                  expected="a number in (0, 1)")
    n_val = int(round(len(tokens) * val_fraction))
    if n_val < 2 or len(tokens) - n_val < 2:
        raise ValueError(f"tokens has {len(tokens)} tokens: val_fraction={val_fraction} leaves "
                         f"{len(tokens) - n_val} for training and {n_val} for validation; "
                         f"expected at least 2 in each")
    return tokens[: len(tokens) - n_val], tokens[len(tokens) - n_val:]


def _check_window(tokens: object, batch_size: int, context_length: int) -> tuple[int, int]:
    """``(batch_size, context_length)`` as Python ints, once the window fits in ``tokens``."""
    _check_tokens(tokens)
    batch_size, context_length = (
        require_int(arg, value, 1, expected="a positive integer")
        for arg, value in (("batch_size", batch_size), ("context_length", context_length)))
    if len(tokens) < context_length + 1:
        raise ValueError(f"tokens has {len(tokens)} tokens; context_length={context_length} "
                         f"needs at least {context_length + 1} (inputs plus the shifted target)")
    return batch_size, context_length


def _windows(
    tokens: np.ndarray | torch.Tensor, starts: list[int], T: int, device: str | torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``tokens[i : i+T]`` and targets ``tokens[i+1 : i+T+1]`` for each start ``i``."""
    if isinstance(tokens, torch.Tensor):
        buffer = torch.stack([tokens[i: i + T + 1] for i in starts]).long()
    else:
        buffer = torch.from_numpy(
            np.stack([np.asarray(tokens[i: i + T + 1]) for i in starts]).astype(np.int64))
    device = torch.device(device)
    if device.type == "cuda":
        buffer = buffer.pin_memory().to(device, non_blocking=True)
    else:
        buffer = buffer.to(device)
    return buffer[:, :-1], buffer[:, 1:]


def get_batch(
    tokens: np.ndarray | torch.Tensor,
    batch_size: int,
    context_length: int,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows for language modelling: ``x, y`` LongTensors ``(B, T)``.

    ``x[b] = tokens[i_b : i_b + T]`` and ``y[b] = tokens[i_b + 1 : i_b + T + 1]`` for start
    positions ``i_b`` drawn uniformly with ``generator`` (so batches are reproducible).
    """
    batch_size, context_length = _check_window(tokens, batch_size, context_length)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator (e.g. "
                        f"course_lib.core.seeding.make_generator(0)); got {type(generator).__name__}")
    T = context_length
    starts = torch.randint(len(tokens) - T, (batch_size,), generator=generator).tolist()
    return _windows(tokens, starts, T, device)


def get_rows(rows: torch.Tensor | tuple[torch.Tensor, ...], batch_size: int,
             generator: torch.Generator) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """``batch_size`` rows of ``rows`` ``(N, ...)`` drawn uniformly with replacement: the
    sampler for data already cut into windows (validation windows, packed sequences).

    A tuple of tensors with the same ``N`` (inputs and targets) gets the same rows of each.
    """
    batch_size = require_int("batch_size", batch_size, 1)
    tensors = rows if isinstance(rows, tuple) else (rows,)
    sizes = {len(t) for t in tensors}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"rows must be non-empty tensors with one first dimension; got "
                         f"lengths {[len(t) for t in tensors]}")
    index = torch.randint(sizes.pop(), (batch_size,), generator=generator)
    picked = tuple(t[index] for t in tensors)
    return picked if isinstance(rows, tuple) else picked[0]


def train_val_batches(
    train_tokens: np.ndarray | torch.Tensor,
    val_tokens: np.ndarray | torch.Tensor,
    batch_size: int,
    context_length: int,
    *,
    transform: Callable[[torch.Tensor, torch.Generator], tuple] | None = None,
) -> Callable[[str, torch.Generator], tuple[torch.Tensor, ...]]:
    """The batch function of :func:`course_lib.training.loop.train`: ``fn(split, generator)``.

    ``split`` is ``"train"`` or ``"val"``; the call returns :func:`get_batch` of that
    split, ``x, y`` ``(B, T)``. With ``transform(x, generator)`` it returns what the
    transform makes of ``x`` instead: the masked LM passes
    :func:`course_lib.training.masked.mask_tokens` here to get ``(inputs, labels)``.
    """
    splits = {"train": train_tokens, "val": val_tokens}
    for name, tokens in splits.items():
        try:
            _check_window(tokens, batch_size, context_length)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{name}_tokens: {err}") from None

    def batches(split: str, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        if split not in splits:
            raise ValueError(f"split must be 'train' or 'val'; got {split!r}")
        x, y = get_batch(splits[split], batch_size, context_length, generator)
        return transform(x, generator) if transform is not None else (x, y)

    return batches


def sequential_batches(
    tokens: np.ndarray | torch.Tensor,
    batch_size: int,
    context_length: int,
    device: str | torch.device = "cpu",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Non-overlapping windows covering ``tokens`` once, in order: for evaluation.

    Yields ``x, y`` LongTensors ``(b, T)`` with ``b <= batch_size`` (the last batch may be
    smaller); a tail shorter than ``T + 1`` tokens is left out. The arguments are
    checked when it is called, not when the first batch is asked for.
    """
    batch_size, context_length = _check_window(tokens, batch_size, context_length)
    T = context_length
    starts = list(range(0, len(tokens) - T, T))

    def windows() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for first in range(0, len(starts), batch_size):
            yield _windows(tokens, starts[first: first + batch_size], T, device)

    return windows()
