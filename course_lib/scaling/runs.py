"""One run of a scaling sweep: its data, its spec, and the record it leaves (chapters 9–10).

Data (each knows its vocabulary, its batches and its validation set):

* :class:`KeyValueData` — the long-tailed :class:`~course_lib.data.keyvalue.KeyValueLanguage`,
  whose entropy rate is known exactly. Training batches are drawn fresh at every step
  (no token is seen twice, so ``D`` counts distinct tokens); validation is a fixed
  sample, scored whole.
* :class:`TokenData` — a tokenized corpus in a ``.npy`` file (the course's real text);
  its floor is unknown.
* :class:`MarkovData` — samples of a :class:`~course_lib.data.synthetic.MarkovLanguage`
  (the first, finite language of chapter 9's committed exhibit).

:class:`RunSpec` is a model shape, a number of training tokens ``D`` and the training
settings. :func:`run_one` trains it with :func:`course_lib.training.loop.train` and returns its
record: spec, data and model configs, parameter counts (non-embedding ``N`` as Kaplan et
al. count it), tokens, FLOPs (counted — attention and output layer included — and
``6 N D``), validation losses (at the end, along the run, by position), the true
language's loss on the same tokens, a thinned training curve, wall time and provenance.
A run whose loss becomes NaN or infinite is recorded as diverged, with the step.
:mod:`course_lib.scaling.sweep` runs many of them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model

from course_lib.core import store
from course_lib.core.atomic import atomic_open
from course_lib.core.device import get_device
from course_lib.core.losses import IGNORE_INDEX
from course_lib.core.provenance import provenance
from course_lib.core.seeding import seeded
from course_lib.data import tokens as token_arrays
from course_lib.data.keyvalue import KeyValueLanguage
from course_lib.data.synthetic import MarkovLanguage
from course_lib.models import GPT, GPTConfig, flops
from course_lib.scaling.budget import FlopBudget
from course_lib.training.loop import NonFiniteLossError, TrainConfig, train

__all__ = ["KeyValueData", "CorpusData", "TokenData", "MarkovData", "RunSpec", "run_id", "run_one",
           "data_from_dict", "evaluate_windows", "vocab_size_of", "load_run_model"]

#: Windows scored per forward pass when a validation set is evaluated whole.
_EVAL_CHUNK = 256


# ----------------------------------------------------------------------- data
@functools.lru_cache(maxsize=4)
def _keyvalue_language(*args) -> KeyValueLanguage:
    return KeyValueLanguage(*args)


@functools.lru_cache(maxsize=4)
def _repeated_pool(language: KeyValueLanguage, segments: int, seed: int) -> torch.Tensor:
    """The key ranks of a run's fixed training sample: LongTensor ``(segments,)``."""
    generator = torch.Generator().manual_seed(_POOL_SEED + seed)
    return language.sample_keys(segments, generator)


_POOL_SEED = 7_000_003


@functools.lru_cache(maxsize=4)
def _keyvalue_validation(data: KeyValueData) -> torch.Tensor:
    return data.language().sample(data.val_tokens + 1, seed=data.val_seed)


@dataclass(frozen=True)
class KeyValueData:
    """The long-tailed key–value language: fresh training tokens and a fixed validation set.

    Windows start at a segment boundary and hold whole segments, so the context length
    of a run must be a multiple of ``key_length + value_length``. ``val_tokens`` tokens
    drawn with ``val_seed`` are scored at every evaluation, the same for every run.
    """

    vocab_size: int = 64
    key_length: int = 4
    value_length: int = 4
    n_keys: int = 1_000_000
    zipf_exponent: float = 1.3
    seed: int = 0
    val_tokens: int = 131_072
    val_seed: int = 1_000_003
    kind: str = "keyvalue"

    def language(self) -> KeyValueLanguage:
        return _keyvalue_language(self.vocab_size, self.key_length, self.value_length,
                                  self.n_keys, self.zipf_exponent, self.seed)

    @property
    def segment_length(self) -> int:
        return self.key_length + self.value_length

    def check(self, spec: RunSpec) -> None:
        per_row = spec.context_length // self.segment_length + 1
        if spec.unique_tokens is not None and spec.unique_tokens < per_row * self.segment_length:
            raise ValueError(f"run {spec.name!r}: unique_tokens {spec.unique_tokens} holds "
                             f"fewer than the {per_row} segments one window needs")
        if spec.context_length % self.segment_length:
            raise ValueError(f"run {spec.name!r}: context_length {spec.context_length} must be "
                             f"a multiple of the segment length {self.segment_length} "
                             f"(windows hold whole segments)")

    def batch_fn(self, spec: RunSpec, device: torch.device):
        """Training windows drawn fresh from the language with the loop's generator.

        With ``spec.unique_tokens`` the windows come from one fixed sample of that many
        tokens (whole segments, drawn with the run's seed): each epoch visits its
        segments once, in a new order drawn from the loop's generator, and a window is
        ``T / segment_length`` consecutive segments of that order plus the next one's
        first token. (The position in the epoch lives in this function: a run resumed
        from a checkpoint starts a new epoch.)"""
        language, T, B = self.language(), spec.context_length, spec.batch_size
        per_row = T // self.segment_length + 1  # one more segment: the last target
        pool = None if spec.unique_tokens is None else _repeated_pool(
            language, spec.unique_tokens // self.segment_length, spec.seed)
        order, at = torch.empty(0, dtype=torch.long), [0]

        def repeated(generator: torch.Generator) -> torch.Tensor:
            nonlocal order
            rows = []
            for _ in range(B):
                if at[0] + per_row > len(order):  # a new epoch: a new order
                    order, at[0] = torch.randperm(len(pool), generator=generator), 0
                rows.append(pool[order[at[0]: at[0] + per_row]])
                at[0] += per_row - 1
            return torch.stack(rows)

        def get_batch(split: str, generator: torch.Generator):
            if split != "train":
                x, y = self.validation_windows(T)
                xb, yb = token_arrays.get_rows((x, y), B, generator)
                return xb.to(device), yb.to(device)
            if pool is None:
                ranks = language.sample_keys(B * per_row, generator)
            else:
                ranks = repeated(generator)
            window = language.segments(ranks).reshape(B, -1)[:, : T + 1]
            return window[:, :-1].to(device), window[:, 1:].to(device)

        return get_batch

    def validation_stream(self) -> torch.Tensor:
        """The fixed validation sample: LongTensor ``(val_tokens + 1,)`` (cached)."""
        return _keyvalue_validation(self)

    def validation_windows(self, context_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)``, each ``(W, T)``: consecutive whole windows of the validation sample."""
        return _consecutive_windows(self.validation_stream(), context_length)

    def true_loss(self, context_length: int) -> float:
        """The true language's mean loss on the validation targets (nats/token)."""
        stream = self.validation_stream()
        n = _consecutive_windows(stream, context_length)[1].numel()
        logp = self.language().token_log_probs(stream)[1: n + 1]
        return float(-logp.mean())

    @property
    def positions(self) -> int:
        return self.segment_length

    def describe(self) -> dict:
        """The data config plus the exact floors (nats/token) the fits are compared with."""
        language = self.language()
        return asdict(self) | {"entropy_rate": language.entropy_rate(),
                               "key_entropy": language.key_entropy(),
                               "position_entropies": language.position_entropies().tolist()}


class _HeldOutTokens:
    """Shared by the token-array kinds: random training windows from ``splits()[0]``,
    validation on ``splits()[1]`` cut into consecutive windows (at most ``val_windows``);
    no known floor."""

    val_windows: int
    positions = None

    def splits(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def batch_fn(self, spec: RunSpec, device: torch.device):
        return _window_batches(self.splits()[0], self.validation_windows(spec.context_length),
                               spec, device)

    def validation_windows(self, context_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = _consecutive_windows(self.splits()[1], context_length)
        return x[: self.val_windows], y[: self.val_windows]

    def true_loss(self, context_length: int) -> None:
        return None


@dataclass(frozen=True)
class TokenData(_HeldOutTokens):
    """A corpus already tokenized into a ``.npy`` file; the last ``val_fraction`` validates.

    Training windows start at random positions of the training part (a corpus is
    finite: a run longer than it repeats tokens — its record says how many epochs);
    validation is the whole held-out part, cut into consecutive windows (at most
    ``val_windows`` of them).
    """

    path: str
    val_fraction: float = 0.1
    vocab_size: int | None = None
    val_windows: int = 2048
    sha256: str | None = None
    kind: str = "tokens"

    def splits(self) -> tuple[np.ndarray, np.ndarray]:
        tokens = np.load(self.path, mmap_mode="r")
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"data path {self.path!r} holds {tokens.dtype} of shape "
                             f"{tokens.shape}; expected a 1-D array of token ids")
        cut = int(len(tokens) * (1 - self.val_fraction))
        return tokens[:cut], tokens[cut:]

    def vocab(self) -> int:
        if self.vocab_size is not None:
            return self.vocab_size
        return int(np.max(np.load(self.path, mmap_mode="r"))) + 1

    def check(self, spec: RunSpec) -> None:
        _fresh_only(spec, "a token file")
        if self.sha256 is not None:
            found = store.file_sha256(self.path)
            if found != self.sha256:
                raise ValueError(f"data path {self.path!r} has sha256 {found}; the grid "
                                 f"expects {self.sha256}: the token file changed")

    def describe(self) -> dict:
        train_tokens, val = self.splits()
        return asdict(self) | {"train_tokens": len(train_tokens), "val_tokens": len(val)}


@functools.lru_cache(maxsize=2)
def _corpus_arrays(bpe_vocab: int, val_every: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Train the BPE tokenizer on the training text (cached), encode both parts (cached)."""
    from course_lib.data.corpora import scaling_corpus
    from course_lib.data.tokenizers import BPETokenizer, train_bpe
    from course_lib.data.tokens import encode_corpus

    train_text, val_text = scaling_corpus(val_every)
    digest = hashlib.sha256(train_text.encode("utf-8")).hexdigest()[:16]
    path = token_arrays.default_cache_dir() / f"scaling-bpe{bpe_vocab}-{digest}.json"
    try:
        tokenizer = BPETokenizer.load(path)
    except (FileNotFoundError, ValueError):
        tokenizer = train_bpe(train_text, bpe_vocab)
        tokenizer.save(path)
    train_ids = encode_corpus(train_text, tokenizer, name=f"scaling-train-{bpe_vocab}")
    val_ids = encode_corpus(val_text, tokenizer, name=f"scaling-val-{bpe_vocab}")
    info = {"tokenizer_fingerprint": tokenizer.fingerprint, "train_tokens": len(train_ids),
            "val_tokens": len(val_ids), "train_bytes": len(train_text.encode("utf-8")),
            "val_bytes": len(val_text.encode("utf-8"))}
    return train_ids, val_ids, info


@dataclass(frozen=True)
class CorpusData(_HeldOutTokens):
    """The course's real text — Shakespeare and WordNet — in byte-level BPE tokens.

    The tokenizer is trained on the training part only (:func:`course_lib.data.corpora.
    scaling_corpus` holds out whole works and blocks of definitions); token arrays are
    cached. Training windows start at random positions, so a run longer than the
    corpus repeats it (its record gives the epochs); validation is the held-out part in
    consecutive windows (at most ``val_windows``). Its floor is unknown.
    """

    bpe_vocab: int = 1024
    val_every: int = 8
    val_windows: int = 2048
    kind: str = "corpus"

    def arrays(self) -> tuple[np.ndarray, np.ndarray, dict]:
        return _corpus_arrays(self.bpe_vocab, self.val_every)

    @property
    def vocab_size(self) -> int:
        return self.bpe_vocab

    def check(self, spec: RunSpec) -> None:
        _fresh_only(spec, type(self).__name__)

    def splits(self) -> tuple[np.ndarray, np.ndarray]:
        return self.arrays()[:2]

    def describe(self) -> dict:
        return asdict(self) | self.arrays()[2]


@dataclass(frozen=True)
class MarkovData:
    """Samples of a :class:`~course_lib.data.synthetic.MarkovLanguage`, cached as ``.npy`` files.

    The first ``order - 1`` targets of every window are left out of the loss: they are
    predicted from fewer than ``order`` tokens, so their floor lies above the entropy rate.
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
        """``(train, val)`` token arrays ``(n,)``, loaded or generated (the smallest unsigned
        dtype that holds ``vocab_size`` ids: uint8, uint16 or uint32)."""
        folder = Path(cache_dir) if cache_dir is not None else token_arrays.default_cache_dir()
        key = (f"markov-V{self.vocab_size}-k{self.order}-b{self.branching}-"
               f"c{self.concentration:g}-s{self.seed}")
        dtype = np.uint8 if self.vocab_size <= 256 else token_arrays.token_dtype(self.vocab_size)
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

    def check(self, spec: RunSpec) -> None:
        _fresh_only(spec, type(self).__name__)

    def batch_fn(self, spec: RunSpec, device: torch.device):
        return _window_batches(self.splits()[0], self.validation_windows(spec.context_length),
                               spec, device, ignore_first=self.ignore_first)

    def validation_windows(self, context_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = _consecutive_windows(self.splits()[1], context_length)
        y = y.clone()
        y[:, : self.ignore_first] = IGNORE_INDEX
        return x, y

    def true_loss(self, context_length: int) -> float:
        x, y = self.validation_windows(context_length)
        language = self.language()
        window = torch.cat([x, y[:, -1:]], dim=1)
        per_window = [-language.token_log_probs(row)[: context_length - self.ignore_first]
                      .mean() for row in window]
        return float(torch.stack(per_window).mean())

    positions = None

    def describe(self) -> dict:
        language = self.language()
        return asdict(self) | {
            "entropy_rate": language.entropy_rate(),
            "conditional_entropies": [language.conditional_entropy(k)
                                      for k in range(self.order)]}


DATA_KINDS = {"keyvalue": KeyValueData, "corpus": CorpusData, "tokens": TokenData,
              "markov": MarkovData}
Data = KeyValueData | CorpusData | TokenData | MarkovData


def data_from_dict(spec: dict, where: str = "data") -> Data:
    """The data object a grid's ``"data"`` entry describes; errors name the entry."""
    if not isinstance(spec, dict):
        raise ValueError(f"{where} must be a JSON object; got {spec!r}")
    spec = dict(spec)
    kind = spec.pop("kind", "keyvalue")
    if kind not in DATA_KINDS:
        raise ValueError(f"{where}: kind must be one of {sorted(DATA_KINDS)}; got {kind!r}")
    cls = DATA_KINDS[kind]
    known = {f.name for f in fields(cls)} - {"kind"}
    if set(spec) - known:
        raise ValueError(f"{where}: unknown key(s) {sorted(set(spec) - known)} for kind "
                         f"{kind!r}; expected some of {sorted(known)}")
    try:
        return cls(**spec)
    except TypeError as err:
        raise ValueError(f"{where}: {err}") from None


def _fresh_only(spec: RunSpec, what: str) -> None:
    if spec.unique_tokens is not None:
        raise ValueError(f"run {spec.name!r}: unique_tokens is for the key-value language; "
                         f"{what} trains on its own fixed corpus")


def _window_batches(train_tokens: np.ndarray, validation: tuple[torch.Tensor, torch.Tensor],
                    spec: RunSpec, device: torch.device, ignore_first: int = 0):
    """The batch function of a token array: training windows ``(B, T)`` start anywhere in
    ``train_tokens`` (drawn with the loop's generator); validation batches are rows of the
    fixed ``validation`` windows. The first ``ignore_first`` targets are left out."""
    x_val, y_val = validation
    T, B = spec.context_length, spec.batch_size

    def get_batch(split: str, generator: torch.Generator):
        if split != "train":
            xb, yb = token_arrays.get_rows((x_val, y_val), B, generator)
            return xb.to(device), yb.to(device)
        x, y = token_arrays.get_batch(train_tokens, B, T, generator, device)
        y = y.clone()
        y[:, :ignore_first] = IGNORE_INDEX
        return x, y

    return get_batch


def _consecutive_windows(stream, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping windows of ``T`` inputs and their ``T`` next-token targets."""
    if not isinstance(stream, torch.Tensor):
        stream = torch.from_numpy(np.asarray(stream, dtype=np.int64))
    n = (len(stream) - 1) // T
    if n < 1:
        raise ValueError(f"the validation sample has {len(stream)} tokens; expected more than "
                         f"one window of {T}")
    x = stream[: n * T].reshape(n, T)
    y = stream[1: n * T + 1].reshape(n, T)
    return x, y


@torch.no_grad()
def evaluate_windows(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                     positions: int | None = None) -> tuple[float, list[float] | None]:
    """Mean loss (nats/token) of ``model`` on windows ``x, y`` ``(W, T)``, targets -100 skipped.

    With ``positions`` (a segment length), also the mean loss at each position of a
    segment — targets ``1 … T`` of a window read positions ``1, 2, …`` modulo it.
    """
    device = next(model.parameters()).device
    total = torch.zeros(y.shape[1], dtype=torch.float64)
    count = torch.zeros(y.shape[1], dtype=torch.float64)
    for start in range(0, len(x), _EVAL_CHUNK):
        xb, yb = x[start: start + _EVAL_CHUNK].to(device), y[start: start + _EVAL_CHUNK]
        logits = model(xb)[0].float().cpu()
        nll = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), ignore_index=IGNORE_INDEX,
                              reduction="none").view(yb.shape).double()
        keep = yb != IGNORE_INDEX
        total += (nll * keep).sum(0)
        count += keep.sum(0)
    mean = float(total.sum() / count.sum())
    if positions is None:
        return mean, None
    position = (torch.arange(1, y.shape[1] + 1)) % positions
    by_position = [float(total[position == p].sum() / count[position == p].sum())
                   for p in range(positions)]
    return mean, by_position


# ----------------------------------------------------------------------- runs
def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class RunSpec:
    """One training run. ``tokens`` is the number of training tokens ``D``.

    ``steps = round(tokens / (batch_size * context_length))`` optimizer steps. The
    learning rate warms up linearly over ``warmup_fraction`` of the schedule, then
    follows a cosine down to ``min_lr_ratio * lr``. The schedule spans the run, or
    ``schedule_tokens`` when that is larger (the run then stops part-way down a longer
    schedule, as in Kaplan et al.'s fixed-length runs). The validation set is scored at
    the end and after each of ``eval_tokens`` tokens. ``budget`` labels IsoFLOP runs
    with their nominal ``6 N D`` (FLOPs; ``None`` for other runs). ``norm``, ``mlp``,
    ``position``, ``bias`` and ``mup_base_width`` (μP) are the model's options, as in
    :class:`~course_lib.models.gpt.GPTConfig`; ``min_lr_ratio=1`` holds the rate constant
    after warmup. ``unique_tokens`` limits the data (key-value language only): the run
    trains on one fixed sample of that many tokens, repeated for ``tokens /
    unique_tokens`` epochs (``None``: fresh tokens at every step).
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
    schedule_tokens: int | None = None
    eval_tokens: tuple[int, ...] = field(default=())
    eval_points: int = 0
    norm: str = "layernorm"
    mlp: str = "gelu"
    position: str = "learned"
    bias: bool = True
    mup_base_width: int | None = None
    unique_tokens: int | None = None

    def __post_init__(self) -> None:
        def bad(what: str, value: object) -> ValueError:
            return ValueError(f"run {self.name!r}: {what}; got {value!r}")

        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a run's name must be a non-empty string; got {self.name!r}")
        for name in ("n_layer", "d_model", "n_head", "batch_size", "context_length",
                     "eval_batches"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise bad(f"{name} must be a positive integer", value)
        if self.d_ff is not None and (not _is_int(self.d_ff) or self.d_ff < 1):
            raise bad("d_ff must be a positive integer or None", self.d_ff)
        if self.d_model % self.n_head:
            raise bad(f"d_model ({self.d_model}) must be divisible by n_head", self.n_head)
        if not _is_int(self.seed) or self.seed < 0:
            raise bad("seed must be a non-negative integer", self.seed)
        batch = self.batch_size * self.context_length
        if not _is_int(self.tokens):
            raise bad("tokens must be an integer", self.tokens)
        if self.tokens < batch:
            raise bad(f"tokens must be at least one batch ({batch})", self.tokens)
        if not _is_number(self.lr) or self.lr <= 0:
            raise bad("lr must be a positive, finite number", self.lr)
        if not _is_number(self.warmup_fraction) or not 0 <= self.warmup_fraction < 1:
            raise bad("warmup_fraction must be in [0, 1)", self.warmup_fraction)
        if not _is_number(self.min_lr_ratio) or not 0 <= self.min_lr_ratio <= 1:
            raise bad("min_lr_ratio must be in [0, 1]", self.min_lr_ratio)
        if not _is_number(self.weight_decay) or self.weight_decay < 0:
            raise bad("weight_decay must be a non-negative, finite number", self.weight_decay)
        if self.grad_clip is not None and (not _is_number(self.grad_clip) or self.grad_clip <= 0):
            raise bad("grad_clip must be a positive number or None", self.grad_clip)
        if self.budget is not None and (not _is_number(self.budget) or self.budget <= 0):
            raise bad("budget must be a positive, finite number of FLOPs or None", self.budget)
        if self.schedule_tokens is not None and (
                not _is_int(self.schedule_tokens) or self.schedule_tokens < self.tokens):
            raise bad(f"schedule_tokens must be an integer >= tokens ({self.tokens}) or None",
                      self.schedule_tokens)
        if self.unique_tokens is not None and (
                not _is_int(self.unique_tokens) or not batch <= self.unique_tokens):
            raise bad(f"unique_tokens must be an integer >= one batch ({batch}) or None",
                      self.unique_tokens)
        if not _is_int(self.eval_points) or self.eval_points < 0:
            raise bad("eval_points must be a non-negative integer", self.eval_points)
        points = tuple(self.eval_tokens)
        if any(not _is_int(t) or not batch <= t <= self.tokens for t in points):
            raise bad(f"eval_tokens must be integers in [{batch}, tokens={self.tokens}]",
                      list(points))
        object.__setattr__(self, "eval_tokens", tuple(sorted({int(t) for t in points})))
        try:  # the block's options, checked by the model's own config (any vocabulary)
            self.model_config(1)
        except (ValueError, TypeError) as err:
            raise ValueError(f"run {self.name!r}: {err}") from None
        for f in fields(self):  # NumPy integers and floats become plain Python numbers
            value = getattr(self, f.name)
            if isinstance(value, np.integer):
                object.__setattr__(self, f.name, int(value))
            elif isinstance(value, np.floating):
                object.__setattr__(self, f.name, float(value))

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.context_length

    @property
    def steps(self) -> int:
        return max(1, round(self.tokens / self.tokens_per_step))

    @property
    def schedule_steps(self) -> int:
        if self.schedule_tokens is None:
            return self.steps
        return max(self.steps, round(self.schedule_tokens / self.tokens_per_step))

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(vocab_size=vocab_size, context_length=self.context_length,
                         n_layer=self.n_layer, n_head=self.n_head, d_model=self.d_model,
                         d_ff=self.d_ff, norm=self.norm, mlp=self.mlp,
                         position=self.position, bias=self.bias,
                         mup_base_width=self.mup_base_width)

    def train_config(self, **overrides) -> TrainConfig:
        halves = [self.steps // 2**j for j in range(1, self.eval_points + 1)]
        eval_steps = tuple(sorted({min(self.steps, max(1, round(t / self.tokens_per_step)))
                                   for t in self.eval_tokens} | {h for h in halves if h >= 1}))
        return TrainConfig(
            max_steps=self.steps, schedule_steps=self.schedule_steps, lr=self.lr,
            min_lr_ratio=self.min_lr_ratio,
            warmup_steps=round(self.warmup_fraction * self.schedule_steps),
            weight_decay=self.weight_decay, grad_clip=self.grad_clip,
            eval_batches=self.eval_batches, eval_steps=eval_steps, seed=self.seed,
            **overrides)

    @property
    def trained_tokens(self) -> int:
        """Tokens the run actually trains on: ``steps x batch_size x context_length``."""
        return self.steps * self.tokens_per_step

    def compute(self, vocab_size: int) -> float:
        """The run's nominal compute ``C = 6 N D`` (N non-embedding), as budgets label it."""
        n = flops.param_counts(self.model_config(vocab_size)).non_embedding
        return flops.training_flops(n, self.trained_tokens)

    def planned_flops(self, vocab_size: int, *, include_unembedding: bool = True) -> float:
        """FLOPs training will count: weights, attention and (by default) the output layer."""
        per_token = flops.flops_per_token(self.model_config(vocab_size),
                                          include_unembedding=include_unembedding)
        return float(per_token * self.trained_tokens)


def _non_default(obj) -> dict:
    """The fields of a dataclass that differ from their defaults (JSON-ready)."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else MISSING)
        if default is MISSING or value != default:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def run_id(spec: RunSpec, data: Data) -> str:
    """12 hex digits identifying the run: a hash of its spec and data config.

    Fields left at their defaults are not hashed, so a new option added to
    :class:`RunSpec` later leaves the identity of earlier runs unchanged.
    """
    text = json.dumps({"spec": _non_default(spec), "data": _non_default(data)},
                      sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def vocab_size_of(data: Data) -> int:
    """The vocabulary size of ``data`` (read from the token file for a corpus)."""
    return data.vocab() if isinstance(data, TokenData) else data.vocab_size


# ------------------------------------------------------------------ one run
def _save_weights(model: GPT, folder: Path, record: dict) -> str:
    """Store the trained model as an artifact folder; return the folder's name."""
    def build(tmp: Path) -> dict:
        save_model(model.cpu(), str(tmp / "model.safetensors"))
        return {"final_val_loss": record["result"]["final_val_loss"]}

    spec = {"run_id": record["run_id"], "model_config": record["model"]["config"]}
    store.load_or_build(folder, spec, build, rebuild=True)
    return folder.name


def load_run_model(folder: str | os.PathLike) -> GPT:
    """The model a sweep stored with ``--save-weights`` (every file's sha256 verified)."""
    manifest = store.load_manifest(folder)
    model = GPT(GPTConfig(**manifest["spec"]["model_config"]))
    load_model(model, str(Path(folder) / "model.safetensors"))
    return model.eval()


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
    data: Data,
    *,
    device: str | torch.device | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_interval: int = 0,
    progress: bool = True,
    budget: FlopBudget | None = None,
    weights_dir: str | os.PathLike | None = None,
) -> dict:
    """Train the run and return its record (a JSON-ready dict; see the module docstring).

    With ``weights_dir`` the trained weights are kept in ``weights_dir/<run_id>/`` (a
    store artifact: safetensors weights, the model config in its manifest, every file's
    sha256), for :func:`load_run_model`; the record names the folder.

    With ``budget``, the run's counted FLOPs are charged first: a run the budget cannot
    afford raises :class:`~course_lib.scaling.budget.BudgetExceededError` before any training.
    A run whose loss stops being finite is recorded with ``"status": "diverged"``, the
    step, and the FLOPs it spent; its losses are ``None``.
    """
    data.check(spec)
    vocab = vocab_size_of(data)
    identifier = run_id(spec, data)
    if budget is not None:
        budget.charge(spec.planned_flops(vocab), spec.name)
    device = get_device(device)
    config = spec.model_config(vocab)
    with seeded(spec.seed):  # the initial weights; the caller's RNG is left alone
        model = GPT(config)
    x_val, y_val = data.validation_windows(spec.context_length)
    by_position: list[list[float] | None] = []

    def evaluate(m: torch.nn.Module) -> float:
        mean, positions = evaluate_windows(m, x_val, y_val, data.positions)
        by_position.append(positions)
        return mean

    folder = Path(checkpoint_dir) / identifier if checkpoint_dir else None
    train_config = spec.train_config(
        progress=progress, checkpoint_dir=str(folder) if folder else None,
        checkpoint_interval=checkpoint_interval)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    counts = flops.param_counts(config)
    per_token = flops.flops_per_token(config, include_unembedding=True)
    record = {
        "run_id": identifier, "spec": asdict(spec), "data": data.describe(),
        "model": {"config": config.to_dict(), "total_params": counts.total,
                  "embedding_params": counts.embedding,
                  "non_embedding_params": counts.non_embedding},
    }
    try:
        result = train(model, data.batch_fn(spec, device), train_config, device=device,
                       resume=folder is not None, description=spec.name,
                       flops_per_token=per_token, evaluate=evaluate)
    except NonFiniteLossError as err:
        step = err.step or 0
        tokens = step * spec.tokens_per_step
        record["status"] = "diverged"
        record["result"] = {
            "diverged_at_step": step, "message": str(err), "final_val_loss": None,
            "final_train_loss": None, "val_true_loss": None, "steps": step,
            "tokens": tokens, "flops": float(per_token * tokens),
            "flops_6nd": flops.training_flops(counts.non_embedding, max(tokens, 1)),
            "flops_per_token": per_token}
        record["provenance"] = provenance(device, torch_threads=torch.get_num_threads(),
                                          started=started)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return record
    tokens_per_step = spec.tokens_per_step
    record["status"] = "finished"
    record["result"] = {
        "final_val_loss": result.final_val_loss,
        "final_train_loss": float(np.mean([v for _, v in result.train_loss[-20:]])),
        "val_true_loss": data.true_loss(spec.context_length),
        "val_loss_by_position": by_position[-1] if by_position else None,
        "val_curve": [[step * tokens_per_step, round(loss, 6)]
                      for step, loss in result.val_loss],
        "steps": result.steps, "tokens": result.tokens, "flops": result.flops,
        "flops_per_token": result.flops_per_token,
        "flops_no_unembedding": float(flops.flops_per_token(config) * result.tokens),
        "flops_6nd": flops.training_flops(counts.non_embedding, result.tokens),
        "wall_time_s": round(result.wall_time_s, 3),
        "train_loss_curve": _thin(result.train_loss),
    }
    record["provenance"] = provenance(
        result.device, torch_threads=torch.get_num_threads(), precision=result.precision,
        started=started, resumed_from_step=result.resumed_from)
    if weights_dir is not None:
        record["weights"] = _save_weights(model, Path(weights_dir) / identifier, record)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    return record
