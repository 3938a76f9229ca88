"""Small character-level GPTs of Shakespeare, trained once and cached (chapters 11–12).

* :func:`shakespeare_chars` — the corpus as character ids, split into training and
  validation parts (the last 10 % of the text is never trained on);
* :data:`TEACHER` and :data:`STUDENT` — the two model sizes of chapter 11, trained
  with one recipe, :data:`RECIPE` on batches of :data:`BATCH_SIZE` windows;
* :func:`train_or_load` — load-if-present-else-train: a trained model is stored as
  ``NAME.safetensors`` plus ``NAME.json`` (configs, result, the SHA-256 of the weights,
  checked before every load, and :func:`~course_lib.core.provenance.provenance`);
* :func:`evaluate_lm` — mean validation loss in nats per character on fixed windows.

Files are written atomically (temporary name, then ``os.replace``), so an interrupted
run never leaves a half-written model: the next call trains again.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from course_lib import __version__
from course_lib.core.atomic import atomic_write_text
from course_lib.training.checkpoint import file_sha256
from course_lib.data.corpora import load_corpus
from course_lib.data.tokens import encode_corpus, sequential_batches, train_val_split
from course_lib.models.gpt import GPT, GPTConfig
from course_lib.core.provenance import provenance
from course_lib.data.tokenizers import CharTokenizer
from course_lib.training.loop import LossFn, TrainConfig, lm_loss, train

__all__ = ["CharData", "TEACHER", "STUDENT", "RECIPE", "BATCH_SIZE", "shakespeare_chars",
           "CONTEXT", "train_or_load", "evaluate_lm"]

CONTEXT = 128  # characters of context for every model of chapters 11-12
TEACHER = dict(context_length=CONTEXT, n_layer=4, n_head=4, d_model=128)
STUDENT = dict(context_length=CONTEXT, n_layer=2, n_head=4, d_model=64)
BATCH_SIZE = 32  # windows of CONTEXT characters per step
# 1,200 steps x 32 x 128 = 4.9 M characters, about one pass over the training text
RECIPE = TrainConfig(max_steps=1200, lr=3e-3, warmup_steps=60, eval_interval=100)


@dataclass(frozen=True)
class CharData:
    """Character ids of a corpus: ``train`` and ``val`` are 1-D uint16 arrays."""

    tokenizer: CharTokenizer
    train: np.ndarray
    val: np.ndarray

    def config(self, **shape) -> GPTConfig:
        """A :class:`GPTConfig` for this vocabulary, e.g. ``data.config(**TEACHER)``."""
        return GPTConfig(vocab_size=self.tokenizer.vocab_size, **shape)


def shakespeare_chars(val_fraction: float = 0.1) -> CharData:
    """Shakespeare's works (about 5.1 M characters) as character ids, cached on disk."""
    text = load_corpus("shakespeare")
    tokenizer = CharTokenizer.from_text(text)
    tokens = encode_corpus(text, tokenizer, name="shakespeare-char")
    train_part, val_part = train_val_split(tokens, val_fraction)
    return CharData(tokenizer, train_part, val_part)


def _load(model: GPT, train_config: TrainConfig, weights: Path, meta_path: Path) -> dict:
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("model_config") != model.config.to_dict():
        raise ValueError(f"{meta_path} holds a model with config {meta.get('model_config')}; "
                         f"expected {model.config.to_dict()}. Delete {weights.name} and "
                         f"{meta_path.name} to train again")
    wanted = json.loads(json.dumps(asdict(train_config)))
    stored = dict(meta.get("train_config") or {})
    stored.pop("progress", None), wanted.pop("progress")  # showing a bar changes nothing
    defaults = json.loads(json.dumps({f.name: f.default for f in fields(TrainConfig)
                                      if f.name in wanted and f.name not in stored}))
    for key in set(wanted) - set(stored):  # settings added to TrainConfig since the
        if wanted[key] == defaults.get(key):  # file was written, left at their defaults,
            wanted.pop(key)  # change nothing
    if stored != wanted:
        raise ValueError(f"{meta_path} was trained with {meta.get('train_config')}; this call "
                         f"asks for {asdict(train_config)}. Delete {weights.name} and "
                         f"{meta_path.name} to train again with the new settings")
    found = file_sha256(weights)
    if found != meta.get("sha256"):
        raise ValueError(f"{weights} has SHA-256 {found[:16]}…, but {meta_path.name} records "
                         f"{str(meta.get('sha256'))[:16]}…: the file changed. Delete both "
                         f"files to train again")
    load_model(model, str(weights), device=str(next(model.parameters()).device))
    return meta


def train_or_load(
    path: str | os.PathLike,
    config: GPTConfig,
    get_batch_fn: Callable,
    train_config: TrainConfig,
    *,
    loss_fn: LossFn = lm_loss,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> tuple[GPT, dict]:
    """A trained :class:`GPT` from ``PATH.safetensors`` if present, else train and save it.

    ``path`` is the stem (``notebooks/results/ch11_teacher``). Returns the model (on
    ``device``, in eval mode) and its provenance ``dict`` (``meta["result"]`` is the
    :class:`~course_lib.training.loop.TrainResult` as a dict; ``meta["loaded"]`` says whether
    it came from disk). A config that differs from the stored one is an error, never
    a silent reuse.
    """
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a GPTConfig; got {type(config).__name__}")
    stem = Path(path)
    weights, meta_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    torch.manual_seed(seed)
    model = GPT(config)
    if weights.is_file() and meta_path.is_file():
        model = model.to(device or "cpu")
        meta = _load(model, train_config, weights, meta_path)
        return model.eval(), meta | {"loaded": True}
    result = train(model, get_batch_fn, train_config, device=device, loss_fn=loss_fn,
                   description=stem.name)
    model = model.cpu()
    weights.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=weights.parent, prefix=f".{weights.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_model(model, tmp, metadata={"course_lib": __version__})
        os.chmod(tmp, 0o644)  # mkstemp creates files readable by their owner only
        os.replace(tmp, weights)
    finally:
        Path(tmp).unlink(missing_ok=True)
    meta = provenance(result.device, model_config=config.to_dict(),
                      train_config=asdict(train_config), result=result.to_dict(),
                      sha256=file_sha256(weights))
    atomic_write_text(meta_path, json.dumps(meta, indent=1, default=str))
    return model.to(device or "cpu").eval(), meta | {"loaded": False}


@torch.no_grad()
def evaluate_lm(model: torch.nn.Module, tokens: np.ndarray, *, n_windows: int = 64,
                context_length: int = CONTEXT, batch_size: int = 16) -> float:
    """Mean cross-entropy (nats per token) over the first ``n_windows`` windows of ``tokens``.

    Windows are consecutive and non-overlapping, so the number is the same on every
    call. Works for any model that maps ``(B, T)`` ids to ``(B, T, V)`` logits, either
    directly or as the first element of a tuple (the course's GPT, quantized copies).
    """
    if isinstance(n_windows, bool) or not isinstance(n_windows, int) or n_windows < 1:
        raise ValueError(f"n_windows must be a positive integer; got {n_windows!r}")
    was_training = model.training
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    total, count = 0.0, 0
    for x, y in sequential_batches(tokens, batch_size, context_length, device=device):
        x, y = x[: n_windows - count], y[: n_windows - count]
        out = model(x)
        logits = out[0] if isinstance(out, tuple) else out
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten(),
                                                 reduction="sum")
        total += loss.item()
        count += x.shape[0]
        if count >= n_windows:
            break
    model.train(was_training)
    if not math.isfinite(total):
        raise FloatingPointError("the evaluation loss is not finite")
    return total / (count * context_length)
