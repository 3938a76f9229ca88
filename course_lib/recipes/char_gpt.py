"""Small character-level GPTs of Shakespeare, trained once and cached (chapters 13–14).

* :func:`shakespeare_chars` — the corpus as character ids, split into training and
  validation parts (the last 10 % of the text is never trained on);
* :data:`TEACHER` and :data:`STUDENT` — the two model sizes of chapter 13, trained
  with one recipe, :data:`RECIPE` on batches of :data:`BATCH_SIZE` windows;
  :data:`LADDER` — four sizes, the two and two more, for chapter 14's measurements
  as a function of model size (each with the folder it is stored in);
* :func:`train_or_load` — load-if-present-else-train through the course's store
  (:func:`course_lib.core.store.load_or_build`): a trained model is a folder ``NAME/``
  holding ``model.safetensors`` and ``manifest.json`` (spec, training result, the
  sha256 of the weights, checked before every load, and provenance);
* :func:`evaluate_lm` — mean validation loss in nats per character on fixed windows.

The folder is written under a temporary name and renamed into place, so an interrupted
run never leaves a half-written model: the next call trains again.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from course_lib import __version__
from course_lib.core import store
from course_lib.core.seeding import seeded
from course_lib.data.corpora import load_corpus
from course_lib.data.tokenizers import CharTokenizer
from course_lib.data.tokens import encode_corpus, sequential_batches, train_val_split
from course_lib.models.gpt import GPT, GPTConfig
from course_lib.training.loop import LossFn, TrainConfig, lm_loss, train

__all__ = ["CharData", "TEACHER", "STUDENT", "LADDER", "RECIPE", "BATCH_SIZE",
           "shakespeare_chars", "CONTEXT", "model_spec", "train_or_load", "evaluate_lm"]

CONTEXT = 128  # characters of context for every model of chapters 13-14
TEACHER = dict(context_length=CONTEXT, n_layer=4, n_head=4, d_model=128)
STUDENT = dict(context_length=CONTEXT, n_layer=2, n_head=4, d_model=64)
#: name -> (shape, folder under notebooks/): one recipe, four sizes, 32k to 820k parameters
LADDER = {
    "2 x 32": (dict(context_length=CONTEXT, n_layer=2, n_head=2, d_model=32),
               "results/ch12_ladder_2x32"),
    "2 x 64": (STUDENT, "results/ch11_student_ce"),
    "3 x 96": (dict(context_length=CONTEXT, n_layer=3, n_head=4, d_model=96),
               "results/ch12_ladder_3x96"),
    "4 x 128": (TEACHER, "results/ch11_teacher"),
}
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


def model_spec(config: GPTConfig, train_config: TrainConfig, seed: int) -> dict:
    """What decides a trained model: its config, :meth:`TrainConfig.spec` (the settings
    away from their defaults) and the seed."""
    return {"model_config": config.to_dict(), "train_config": train_config.spec(),
            "seed": seed}


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
    """A trained :class:`GPT` from the folder ``path`` if present, else train and store it.

    ``path`` is the folder (``notebooks/results/ch11_teacher``). Returns the model (on
    ``device``, in eval mode) and the store's manifest (``meta["result"]`` is the
    :class:`~course_lib.training.loop.TrainResult` as a dict; ``meta["loaded"]`` says
    whether it came from disk). A spec (:func:`model_spec`) that differs from the stored
    one, or weights whose sha256 changed, is an error, never a silent reuse. The global
    random state is left as it was: initialisation runs under :func:`seeded` ``(seed)``.
    """
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a GPTConfig; got {type(config).__name__}")
    folder = Path(path)
    spec = model_spec(config, train_config, seed)
    loaded = (folder / store.MANIFEST).is_file()

    def build(tmp: Path) -> dict:
        with seeded(seed):
            model = GPT(config)
            result = train(model, get_batch_fn, train_config, device=device,
                           loss_fn=loss_fn, description=folder.name)
        save_model(model.cpu(), str(tmp / "model.safetensors"),
                   metadata={"course_lib": __version__})
        return result.to_dict()

    manifest = store.load_or_build(folder, spec, build, device=device)
    with seeded(seed):
        model = GPT(config)
    load_model(model, str(folder / "model.safetensors"), device="cpu")
    return model.to(device or "cpu").eval(), manifest | {"loaded": loaded}


@torch.no_grad()
def evaluate_lm(model: torch.nn.Module, tokens: np.ndarray, *, n_windows: int = 64,
                context_length: int = CONTEXT, batch_size: int = 16) -> float:
    """Mean cross-entropy (nats per token) over the first ``n_windows`` windows of ``tokens``.

    Windows are consecutive and non-overlapping, so the number is the same on every
    call. Works for any model that maps ``(B, T)`` ids to ``(B, T, V)`` logits, either
    directly or as the first element of a tuple (the course's GPT, quantized copies).
    """
    if isinstance(n_windows, (bool, np.bool_)) or not isinstance(n_windows, (int, np.integer)) \
            or n_windows < 1:
        raise ValueError(f"n_windows must be a positive integer; got {n_windows!r}")
    n_windows = int(n_windows)
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
