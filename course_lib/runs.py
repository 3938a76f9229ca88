"""One run of a scaling sweep: its data, its spec, and the record it leaves (chapters 9–10).

* :class:`MarkovData` — samples of a :class:`~course_lib.synthetic.MarkovLanguage`, whose
  entropy rate (the true irreducible loss) is known; :class:`TokenData` — a tokenized
  corpus in a ``.npy`` file.
* :class:`RunSpec` — a model shape, a number of training tokens ``D`` and the training
  settings; ``compute()`` is its ``C = 6 N D``.
* :func:`run_one` — trains the run with :func:`course_lib.train.train` and returns its
  record: spec, data and model configs, parameter counts (non-embedding ``N`` as Kaplan
  et al. count it), tokens, FLOPs (counted, and ``6 N D``), final train and validation
  losses, the true language's loss on the same validation windows, a thinned training
  curve, wall time and provenance (versions, device, threads, time).

:mod:`course_lib.sweep` runs many of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import flops
from .atomic import atomic_open
from .budget import FlopBudget
from .data import default_cache_dir
from .device import get_device
from .models import GPT, GPTConfig
from .provenance import provenance
from .synthetic import MarkovLanguage
from .train import EVAL_SEED_OFFSET, TrainConfig, train

__all__ = ["MarkovData", "TokenData", "RunSpec", "run_id", "run_one"]

IGNORE_INDEX = -100


# ----------------------------------------------------------------------- data
@dataclass(frozen=True)
class MarkovData:
    """Samples of a :class:`~course_lib.synthetic.MarkovLanguage`: fresh, and with a known floor.

    ``train_tokens`` and ``val_tokens`` are drawn with seeds ``sample_seed`` and
    ``sample_seed + 1`` and cached as ``.npy`` files (written atomically). The first
    ``order - 1`` targets of every window are left out of the loss: they are predicted
    from fewer than ``order`` tokens, so their floor lies above the entropy rate.
    """

    vocab_size: int = 32
    order: int = 2
    branching: int = 8
    concentration: float = 1.0
    seed: int = 0
    train_tokens: int = 20_000_000
    val_tokens: int = 100_000
    sample_seed: int = 1
    kind: str = "markov"

    def language(self) -> MarkovLanguage:
        return MarkovLanguage(self.vocab_size, self.order, self.branching,
                              self.concentration, self.seed)

    @property
    def ignore_first(self) -> int:
        return self.order - 1

    def splits(self, cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(train, val)`` token arrays ``(n,)``, uint8 or uint16, loaded or generated."""
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        key = (f"markov-V{self.vocab_size}-k{self.order}-b{self.branching}-"
               f"c{self.concentration:g}-s{self.seed}")
        dtype = np.uint8 if self.vocab_size <= 256 else np.uint16
        arrays = []
        for n, seed in ((self.train_tokens, self.sample_seed),
                        (self.val_tokens, self.sample_seed + 1)):
            path = folder / f"{key}-n{n}-seed{seed}.npy"
            try:
                arrays.append(np.load(path, mmap_mode="r"))
                continue
            except (FileNotFoundError, ValueError, OSError):
                pass
            tokens = self.language().sample(n, seed=seed).numpy().astype(dtype)
            with atomic_open(path, "wb") as handle:
                np.save(handle, tokens)
            arrays.append(tokens)
        return arrays[0], arrays[1]

    def describe(self) -> dict:
        """The data config plus the exact floors (nats/token) the fits are compared with."""
        language = self.language()
        return asdict(self) | {
            "entropy_rate": language.entropy_rate(),
            "conditional_entropies": [language.conditional_entropy(k)
                                      for k in range(self.order)]}


@dataclass(frozen=True)
class TokenData:
    """A corpus already tokenized into a ``.npy`` file; the last ``val_fraction`` validates."""

    path: str
    val_fraction: float = 0.1
    vocab_size: int | None = None
    kind: str = "tokens"
    ignore_first: int = 0

    def splits(self, cache_dir=None) -> tuple[np.ndarray, np.ndarray]:
        tokens = np.load(self.path, mmap_mode="r")
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"data path {self.path!r} holds {tokens.dtype} of shape "
                             f"{tokens.shape}; expected a 1-D array of token ids")
        cut = int(len(tokens) * (1 - self.val_fraction))
        return tokens[:cut], tokens[cut:]

    def describe(self) -> dict:
        return asdict(self)


def _data_from_dict(spec: dict) -> MarkovData | TokenData:
    spec = dict(spec)
    kind = spec.pop("kind", "markov")
    classes = {"markov": MarkovData, "tokens": TokenData}
    if kind not in classes:
        raise ValueError(f"data kind must be 'markov' or 'tokens'; got {kind!r}")
    return classes[kind](**spec)


# ----------------------------------------------------------------------- runs
@dataclass(frozen=True)
class RunSpec:
    """One training run. ``tokens`` is the target number of training tokens ``D``.

    ``steps = round(tokens / (batch_size * context_length))`` optimizer steps; the
    learning rate warms up linearly over ``warmup_fraction`` of them, then follows
    a cosine down to ``min_lr_ratio * lr``. ``budget`` is the nominal compute
    ``6 N D`` (FLOPs) that labels IsoFLOP runs (``None`` for other runs).
    """

    name: str
    n_layer: int
    d_model: int
    n_head: int
    tokens: int
    lr: float
    d_ff: int | None = None
    batch_size: int = 64
    context_length: int = 32
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    eval_batches: int = 32
    seed: int = 0
    budget: float | None = None

    def __post_init__(self) -> None:
        batch = self.batch_size * self.context_length
        if isinstance(self.tokens, bool) or not isinstance(self.tokens, int) \
                or self.tokens < batch:
            raise ValueError(f"run {self.name!r}: tokens must be an integer of at least one "
                             f"batch ({batch}); got {self.tokens!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"run {self.name!r}: warmup_fraction must be in [0, 1); got "
                             f"{self.warmup_fraction!r}")

    @property
    def steps(self) -> int:
        return max(1, round(self.tokens / (self.batch_size * self.context_length)))

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(vocab_size=vocab_size, context_length=self.context_length,
                         n_layer=self.n_layer, n_head=self.n_head, d_model=self.d_model,
                         d_ff=self.d_ff)

    def train_config(self, **overrides) -> TrainConfig:
        return TrainConfig(
            max_steps=self.steps, lr=self.lr, min_lr_ratio=self.min_lr_ratio,
            warmup_steps=round(self.warmup_fraction * self.steps),
            weight_decay=self.weight_decay, grad_clip=self.grad_clip,
            eval_batches=self.eval_batches, seed=self.seed, **overrides)

    @property
    def trained_tokens(self) -> int:
        """Tokens the run actually trains on: ``steps x batch_size x context_length``."""
        return self.steps * self.batch_size * self.context_length

    def compute(self, vocab_size: int) -> float:
        """The run's compute as budgets count it, ``C = 6 N D`` (N non-embedding)."""
        n = flops.param_counts(self.model_config(vocab_size)).non_embedding
        return 6.0 * n * self.trained_tokens

    def planned_flops(self, vocab_size: int) -> float:
        """FLOPs training will count: weights and attention (:func:`flops.flops_per_token`)."""
        per_token = flops.flops_per_token(self.model_config(vocab_size))
        return float(per_token * self.trained_tokens)


def run_id(spec: RunSpec, data: MarkovData | TokenData) -> str:
    """12 hex digits identifying the run: a hash of its spec and data config."""
    text = json.dumps({"spec": asdict(spec), "data": asdict(data)}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _vocab(data: MarkovData | TokenData, train_tokens: np.ndarray | None = None) -> int:
    if data.vocab_size is not None:
        return data.vocab_size
    return int(np.max(train_tokens)) + 1


# ------------------------------------------------------------------ one run
def _batches(train_tokens, val_tokens, spec: RunSpec, ignore_first: int,
             device: torch.device) -> Callable:
    splits = {"train": train_tokens, "val": val_tokens}
    T, B = spec.context_length, spec.batch_size

    def get_batch(split: str, generator: torch.Generator):
        tokens = splits[split]
        starts = torch.randint(len(tokens) - T - 1, (B,), generator=generator).tolist()
        window = torch.from_numpy(np.stack([tokens[s:s + T + 1] for s in starts])
                                  .astype(np.int64))
        x, y = window[:, :-1], window[:, 1:].clone()
        y[:, :ignore_first] = IGNORE_INDEX
        return x.to(device), y.to(device)

    return get_batch


def _true_val_loss(data, val_tokens, spec: RunSpec) -> float | None:
    """Loss of the true language on exactly the validation windows the run was scored on."""
    if not isinstance(data, MarkovData):
        return None
    language = data.language()
    batches = _batches(np.asarray(val_tokens), np.asarray(val_tokens), spec,
                       data.ignore_first, torch.device("cpu"))
    generator = torch.Generator().manual_seed(spec.seed + EVAL_SEED_OFFSET)
    total = 0.0
    for _ in range(spec.eval_batches):
        x, y = batches("val", generator)
        window = torch.cat([x, y[:, -1:]], dim=1)  # (B, T + 1): the tokens read
        total += float(np.mean([-language.token_log_probs(row).mean() for row in window]))
    return total / spec.eval_batches


def _thin(curve: list[tuple[int, float]], points: int = 24) -> list[list[float]]:
    """About ``points`` (step, loss) pairs at log-spaced steps, each a window average."""
    if not curve:
        return []
    steps = np.array([s for s, _ in curve])
    losses = np.array([v for _, v in curve])
    edges = np.unique(np.geomspace(1, steps[-1] + 1, points + 1).astype(int))
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (steps >= lo) & (steps < hi)
        if inside.any():
            out.append([int(steps[inside][-1]), round(float(losses[inside].mean()), 5)])
    return out


def run_one(
    spec: RunSpec,
    data: MarkovData | TokenData,
    *,
    device: str | torch.device | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_interval: int = 0,
    progress: bool = True,
    budget: FlopBudget | None = None,
    splits: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Train the run and return its record (a JSON-ready dict; see the module docstring).

    With ``budget``, the run's compute ``6 N D`` is charged first: a run the budget
    cannot afford raises :class:`~course_lib.budget.BudgetExceededError` before any
    training. ``splits`` passes ``(train, val)`` tokens already loaded.
    """
    train_tokens, val_tokens = splits if splits is not None else data.splits()
    vocab = _vocab(data, train_tokens)
    identifier = run_id(spec, data)
    if budget is not None:
        budget.charge(spec.compute(vocab), spec.name)
    device = get_device(device)
    config = spec.model_config(vocab)
    torch.manual_seed(spec.seed)
    model = GPT(config)
    folder = Path(checkpoint_dir) / identifier if checkpoint_dir else None
    train_config = spec.train_config(
        progress=progress, checkpoint_dir=str(folder) if folder else None,
        checkpoint_interval=checkpoint_interval)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    result = train(model, _batches(train_tokens, val_tokens, spec, data.ignore_first, device),
                   train_config, device=device, resume=folder is not None, description=spec.name)
    counts = flops.param_counts(config)
    record = {
        "run_id": identifier,
        "spec": asdict(spec),
        "data": data.describe(),
        "model": {"config": config.to_dict(), "total_params": counts.total,
                  "embedding_params": counts.embedding,
                  "non_embedding_params": counts.non_embedding},
        "result": {
            "final_val_loss": result.final_val_loss,
            "final_train_loss": float(np.mean([v for _, v in result.train_loss[-20:]])),
            "val_true_loss": _true_val_loss(data, val_tokens, spec),
            "steps": result.steps, "tokens": result.tokens, "flops": result.flops,
            "flops_per_token": result.flops_per_token,
            "flops_6nd": 6.0 * counts.non_embedding * result.tokens,
            "wall_time_s": round(result.wall_time_s, 3),
            "train_loss_curve": _thin(result.train_loss),
        },
        "provenance": provenance(
            result.device, torch_threads=torch.get_num_threads(), precision=result.precision,
            started=started, resumed_from_step=result.resumed_from),
    }
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    return record
