"""One training loop for causal and masked language models (chapters 5, 9, 10).

:func:`train` does not know where tokens come from: it calls a batch function
``get_batch(split, generator) -> (x, y)`` with ``split`` in ``{"train", "val"}``
and a ``torch.Generator`` that the loop owns (so that a resumed run draws the
same batches as an uninterrupted one). ``x`` and ``y`` are ``(B, T)`` int64
tensors; ``y[b, t]`` is the token to predict at position ``t`` — the next token
for a causal LM, the original token at a masked position for a masked LM, and
-100 where nothing is predicted.

What the loop does, in order: AdamW with weight decay on matrices only; linear
warmup then cosine decay of the learning rate (``torch.optim.lr_scheduler.LambdaLR``;
or a linear decay, or warmup-stable-decay: ``TrainConfig.schedule``);
gradient accumulation and clipping; bf16 autocast on CUDA; a ``tqdm.auto``
progress bar; periodic evaluation on fixed validation batches; atomic checkpoints
(:mod:`course_lib.training.checkpoint`); ``resume=True`` continues from the latest one;
a non-finite loss stops the run with :class:`NonFiniteLossError`. Started by
``torchrun`` it trains data-parallel (:mod:`course_lib.training.distributed`).

``python -m course_lib.training.cli --help`` runs it from the command line.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_lib.core.device import get_device
from course_lib.core.losses import IGNORE_INDEX
from course_lib.core.validate import plain, require_bool, require_int, require_number
from course_lib.models import flops
from course_lib.models.gpt import GPT, weight_decay_groups
from course_lib.training import checkpoint, distributed

__all__ = [
    "TrainConfig", "TrainResult", "NonFiniteLossError", "WarmupCosine",
    "WarmupLinear", "WarmupStableDecay",
    "lm_loss", "train",
]

BatchFn = Callable[[str, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
LossFn = Callable[[torch.nn.Module, tuple[torch.Tensor, ...]], torch.Tensor]
EVAL_SEED_OFFSET = 1_000_003  # validation batches come from their own, fixed stream


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step.

    ``step`` is the optimizer step whose loss was not finite (1-based) and ``loss``
    that value (``None`` where the raiser did not say).
    """

    def __init__(self, message: str, step: int | None = None, loss: float | None = None):
        super().__init__(message)
        self.step, self.loss = step, loss


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a run. Steps count optimizer updates.

    ``eval_interval = 0`` evaluates only at the end; ``eval_steps`` adds evaluations
    after these steps; ``checkpoint_interval = 0`` saves only at the end (when
    ``checkpoint_dir`` is set), keeping the newest ``checkpoint_keep``.
    ``schedule_steps`` is the length the learning-rate schedule is laid out for
    (default ``max_steps``: the cosine ends with the run; a larger value stops the run
    part-way down a longer schedule). ``schedule`` is
    ``"cosine"`` (:class:`WarmupCosine`, for pretraining), ``"linear"``
    (:class:`WarmupLinear`, to 0, as BERT fine-tuning does) or ``"wsd"``
    (:class:`WarmupStableDecay`: constant after warmup, then a 1 − sqrt cooldown to
    ``min_lr_ratio`` over the last ``decay_fraction`` of the schedule's steps; only
    ``"wsd"`` reads ``decay_fraction``). ``precision="auto"`` is bf16 autocast on a CUDA
    device that supports it, float32 elsewhere.
    """

    max_steps: int
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 0
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    grad_accum_steps: int = 1
    eval_interval: int = 0
    eval_steps: tuple[int, ...] = ()
    eval_batches: int = 8
    schedule_steps: int | None = None
    checkpoint_dir: str | None = None
    checkpoint_interval: int = 0
    checkpoint_keep: int = 2
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    progress: bool = True
    schedule: Literal["cosine", "linear", "wsd"] = "cosine"
    decay_fraction: float = 0.2

    def __post_init__(self) -> None:
        # NumPy numbers are accepted and stored as Python ones (the config is written to
        # JSON with every checkpoint); Python values are stored as given.
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        for name in ("max_steps", "grad_accum_steps", "eval_batches", "checkpoint_keep"):
            put(name, require_int(name, getattr(self, name), 1, expected="a positive integer"))
        for name in ("warmup_steps", "eval_interval", "checkpoint_interval", "seed"):
            put(name, require_int(name, getattr(self, name), 0,
                                  expected="a non-negative integer"))
        put("lr", plain(self.lr, require_number("lr", self.lr, 0, closed=(False, True),
                                                expected="a positive number")))
        put("min_lr_ratio", plain(self.min_lr_ratio, require_number(
            "min_lr_ratio", self.min_lr_ratio, 0, 1)))
        put("weight_decay", plain(self.weight_decay, require_number(
            "weight_decay", self.weight_decay, 0,
            expected="a number >= 0 (0: no decay; a negative decay grows the weights)")))
        if isinstance(self.betas, (str, bytes)) or not hasattr(self.betas, "__len__") \
                or len(self.betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2) of numbers in [0, 1); got "
                             f"{self.betas!r}")
        betas = tuple(plain(b, require_number(f"betas[{i}]", b, 0, 1, closed=(True, False)))
                      for i, b in enumerate(self.betas))
        if any(b is not given for b, given in zip(betas, self.betas)):  # NumPy numbers only
            put("betas", betas)
        if self.schedule not in ("cosine", "linear", "wsd"):
            raise ValueError(f"schedule must be 'cosine', 'linear' or 'wsd'; got "
                             f"{self.schedule!r}")
        put("decay_fraction", plain(self.decay_fraction, require_number(
            "decay_fraction", self.decay_fraction, 0, 1, closed=(False, True))))
        if self.schedule_steps is not None:
            put("schedule_steps", require_int(
                "schedule_steps", self.schedule_steps, self.max_steps,
                expected=f"None or an integer >= max_steps ({self.max_steps})"))
        if self.warmup_steps > self.total_schedule_steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) exceeds the schedule's "
                             f"{self.total_schedule_steps} steps")
        if self.schedule == "wsd":  # the same checks, with the same words, as the class
            WarmupStableDecay(self.warmup_steps, self.total_schedule_steps,
                              self.decay_fraction, self.min_lr_ratio)
        steps = tuple(self.eval_steps)
        try:
            steps = tuple(require_int("eval_steps", s, 1, self.max_steps) for s in steps)
        except (TypeError, ValueError):
            raise ValueError(f"eval_steps must be integers in [1, max_steps={self.max_steps}]"
                             f"; got {list(steps)!r}") from None
        put("eval_steps", tuple(sorted(set(steps))))
        if self.grad_clip is not None:
            put("grad_clip", plain(self.grad_clip, require_number(
                "grad_clip", self.grad_clip, 0, closed=(False, True),
                expected="positive or None")))
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16'; got {self.precision!r}")
        put("progress", require_bool("progress", self.progress))

    def spec(self) -> dict:
        """The settings that decide a run's numbers, as JSON: those away from their defaults
        (so that a setting added to this class later, left at its default, changes no
        stored spec), less ``progress``, ``checkpoint_dir`` and ``checkpoint_interval``."""
        defaults = {f.name: f.default for f in fields(self) if f.default is not MISSING}
        return {k: v for k, v in json.loads(json.dumps(asdict(self))).items()
                if k not in _RESUMABLE_CHANGES
                and (k not in defaults or v != json.loads(json.dumps(defaults[k])))}

    @property
    def total_schedule_steps(self) -> int:
        """Steps the learning-rate schedule spans: ``schedule_steps`` or ``max_steps``."""
        return self.schedule_steps if self.schedule_steps is not None else self.max_steps


@dataclass
class TrainResult:
    """What a run produced. Losses are mean cross-entropies in nats per predicted token.

    ``tokens`` counts input tokens processed in training (all processes);
    ``flops`` is ``flops_per_token * tokens`` (training FLOPs, forward + backward).
    """

    steps: int
    tokens: int
    flops: float
    flops_per_token: float
    wall_time_s: float
    n_params: int
    train_loss: list[tuple[int, float]] = field(default_factory=list)
    val_loss: list[tuple[int, float]] = field(default_factory=list)
    lr: list[tuple[int, float]] = field(default_factory=list)
    device: str = "cpu"
    world_size: int = 1
    precision: str = "fp32"
    resumed_from: int | None = None

    @property
    def final_train_loss(self) -> float:
        return self.train_loss[-1][1] if self.train_loss else math.nan

    @property
    def final_val_loss(self) -> float:
        return self.val_loss[-1][1] if self.val_loss else math.nan

    def to_dict(self) -> dict:
        return asdict(self) | {"final_train_loss": self.final_train_loss,
                               "final_val_loss": self.final_val_loss}


class WarmupCosine:
    """Learning-rate factor for ``LambdaLR``: linear warmup, then cosine down to ``min_ratio``.

    Step ``s < warmup`` gives ``(s + 1) / warmup``; afterwards the factor follows
    half a cosine from 1 at the end of warmup to ``min_ratio`` at ``total``.
    """

    def __init__(self, warmup: int, total: int, min_ratio: float) -> None:
        self.warmup, self.total, self.min_ratio = warmup, total, min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class WarmupLinear:
    """Learning-rate factor for ``LambdaLR``: linear warmup, then linear decay to 0.

    Step ``s < warmup`` gives ``s / warmup``; afterwards ``(total - s) / (total - warmup)``
    — the schedule of BERT's fine-tuning, the same numbers as ``transformers``'
    ``get_linear_schedule_with_warmup`` (checked in ``tests/unit/test_train.py``).
    """

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return float(step) / float(max(1, self.warmup))
        return max(0.0, float(self.total - step) / float(max(1, self.total - self.warmup)))


class WarmupStableDecay:
    """Learning-rate factor for ``LambdaLR``: warmup, a long constant stretch, a short cooldown.

    Hägele et al. (2024) show that this warmup-stable-decay (WSD) schedule matches a
    cosine laid out for the same length, and that the stable stretch can be shared: a
    run stopped at any step can be cooled down from there, so one run serves several
    training lengths, where a cosine must be laid out for one length in advance. The
    cooldown spans the last ``decay_steps = round(decay_fraction * total)`` steps and
    follows their "1 − sqrt" shape, which did better than a linear one:

    * step ``s < warmup``: ``(s + 1) / warmup`` (as :class:`WarmupCosine`);
    * ``warmup <= s < total - decay_steps``: 1;
    * then ``min_ratio + (1 - min_ratio) * (1 - sqrt(p))``, with
      ``p = (s - total + decay_steps) / decay_steps`` clamped to 1: ``min_ratio`` at and
      after ``total``. Hägele et al. cool down to 0 (``min_ratio=0``).

    Raises ``ValueError`` naming the argument when ``warmup`` or ``total`` is not a
    count, ``decay_fraction`` is outside ``(0, 1]``, ``min_ratio`` outside ``[0, 1]``,
    or the warmup runs into the cooldown.
    """

    def __init__(self, warmup: int, total: int, decay_fraction: float = 0.2,
                 min_ratio: float = 0.0) -> None:
        self.warmup = require_int("warmup", warmup, 0, expected="a non-negative integer")
        self.total = require_int("total", total, 1, expected="a positive integer")
        self.decay_fraction = require_number("decay_fraction", decay_fraction, 0, 1,
                                             closed=(False, True))
        self.min_ratio = require_number("min_ratio", min_ratio, 0, 1)
        self.decay_steps = max(1, round(self.decay_fraction * self.total))
        self.decay_start = self.total - self.decay_steps
        if self.warmup > self.decay_start:
            raise ValueError(
                f"warmup ({self.warmup} steps) runs into the cooldown, which starts at step "
                f"{self.decay_start} (decay_fraction={decay_fraction!r} of {self.total} "
                f"steps); expected warmup <= {self.decay_start}")

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if step < self.decay_start:
            return 1.0
        progress = min(1.0, (step - self.decay_start) / self.decay_steps)
        return self.min_ratio + (1 - self.min_ratio) * (1 - math.sqrt(progress))


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def lm_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean cross-entropy (nats) of targets ``y`` given ``x``, ignoring targets of -100.

    Works for the course's :class:`~course_lib.models.GPT` and for ``transformers``
    models that return ``.logits`` (``BertForMaskedLM``, ``GPT2LMHeadModel``): the
    targets are used as given, never shifted again.
    """
    x, y = batch[0], batch[1]
    if isinstance(_unwrap(model), GPT):
        return model(x, y)[1]
    logits = model(input_ids=x).logits  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=IGNORE_INDEX)


def _flops_per_token(model: torch.nn.Module, seq_len: int) -> float:
    config = getattr(model, "config", None)
    try:
        return float(flops.flops_per_token(config, context_length=seq_len))
    except TypeError:  # a model the counter does not know: 6 x its trainable parameters
        return flops.FLOPS_PER_PARAM_TOKEN * sum(
            p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class _Run:
    """Everything a run updates, so the helpers below take one argument, not eight."""

    model: torch.nn.Module  # what the steps call: the DDP wrapper under torchrun
    base: torch.nn.Module  # the model itself: what checkpoints hold
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator  # draws the training batches
    info: distributed.DistInfo
    device: torch.device
    autocast: torch.autocast


def _lr_factor(config: TrainConfig) -> Callable[[int], float]:
    """The learning-rate factor of ``config.schedule`` over its steps."""
    total = config.total_schedule_steps
    if config.schedule == "cosine":
        return WarmupCosine(config.warmup_steps, total, config.min_lr_ratio)
    if config.schedule == "linear":
        return WarmupLinear(config.warmup_steps, total)
    return WarmupStableDecay(config.warmup_steps, total, config.decay_fraction,
                             config.min_lr_ratio)


def _setup(model: torch.nn.Module, config: TrainConfig, device) -> tuple[_Run, str]:
    device = get_device(device)
    info = distributed.init_from_env(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    if config.precision == "bf16" and device.type != "cuda":
        raise ValueError(f"precision='bf16' autocasts on CUDA only; the device is {device}")
    use_bf16 = device.type == "cuda" and (config.precision == "bf16" or (
        config.precision == "auto" and torch.cuda.is_bf16_supported()))
    base = model.to(device)
    wrapped = (torch.nn.parallel.DistributedDataParallel(
        base, device_ids=[info.local_rank] if device.type == "cuda" else None)
        if info.enabled else base)
    groups = (base.param_groups(config.weight_decay, config.lr) if isinstance(base, GPT)
              else weight_decay_groups(base, config.weight_decay))  # GPT: μP's rates too
    optimizer = torch.optim.AdamW(
        groups, lr=config.lr, betas=config.betas,
        fused=device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config))
    generator = torch.Generator().manual_seed(config.seed + info.rank)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)
    run = _Run(wrapped, base, optimizer, scheduler, generator, info, device, autocast)
    return run, "bf16" if use_bf16 else "fp32"


def _accumulate_gradients(run: _Run, get_batch: BatchFn, loss_fn: LossFn,
                          config: TrainConfig, result: TrainResult) -> float:
    """Forward and backward over ``grad_accum_steps`` micro-batches; the mean loss of all ranks."""
    loss_sum = 0.0
    for micro in range(config.grad_accum_steps):
        batch = tuple(t.to(run.device, non_blocking=True)
                      for t in get_batch("train", run.generator))
        if result.flops_per_token == 0.0:
            result.flops_per_token = _flops_per_token(run.base, batch[0].shape[1])
        last = micro == config.grad_accum_steps - 1
        # under DDP, gradients are averaged across processes on the last micro-batch only
        with run.model.no_sync() if run.info.enabled and not last else nullcontext():
            with run.autocast:
                loss = loss_fn(run.model, batch) / config.grad_accum_steps
            loss.backward()
        loss_sum += loss.item()
        result.tokens += batch[0].numel() * run.info.world_size
    return distributed.all_reduce_mean(loss_sum, run.info, run.device)


@torch.no_grad()
def _evaluate(run: _Run, get_batch: BatchFn, loss_fn: LossFn, config: TrainConfig) -> float:
    """Mean loss on ``eval_batches`` validation batches, the same ones at every evaluation."""
    run.model.eval()
    generator = torch.Generator().manual_seed(config.seed + EVAL_SEED_OFFSET + run.info.rank)
    total = 0.0
    for _ in range(config.eval_batches):
        batch = tuple(t.to(run.device) for t in get_batch("val", generator))
        with run.autocast:
            total += loss_fn(run.model, batch).item()
    run.model.train()
    return distributed.all_reduce_mean(total / config.eval_batches, run.info, run.device)


@torch.no_grad()
def _evaluate_with(run: _Run, evaluate: Callable[[torch.nn.Module], float]) -> float:
    run.base.eval()
    with run.autocast:
        value = float(evaluate(run.base))
    run.base.train()
    return value


def train(
    model: torch.nn.Module,
    get_batch: BatchFn,
    config: TrainConfig,
    *,
    device: torch.device | str | None = None,
    resume: bool = False,
    loss_fn: LossFn = lm_loss,
    flops_per_token: float | None = None,
    description: str = "train",
    evaluate: Callable[[torch.nn.Module], float] | None = None,
    stop: Callable[[TrainResult], bool] | None = None,
    branch_from: str | os.PathLike | None = None,
) -> TrainResult:
    """Train ``model`` in place on batches from ``get_batch``; return a :class:`TrainResult`.

    ``loss_fn(model, batch) -> scalar`` defaults to :func:`lm_loss`. ``flops_per_token``
    defaults to :func:`course_lib.models.flops.flops_per_token` of the model's config at the
    batch's sequence length. ``evaluate(model) -> loss`` replaces the evaluation on
    ``eval_batches`` validation batches (for example a pass over a fixed validation
    set); it is called in eval mode, without gradients. ``stop(result) -> bool``, asked
    after each evaluation, ends training early when it says so (early stopping: the
    fine-tuning of :mod:`course_lib.training.finetune`). With ``resume=True`` and a checkpoint in
    ``config.checkpoint_dir``, training continues from it; the result then covers the
    whole run. Under ``torchrun`` every process calls ``train`` with the same arguments.

    ``branch_from`` (a checkpoint folder, ``.../step_NNNNNN``) starts from another run's
    weights, optimizer state and batch stream, and follows this config's schedule from
    that step on: the config may differ from that run's in the schedule's length and
    shape only. One warmup-stable-decay run branched into short cooldowns at several
    steps gives the loss of several run lengths {Hägele et al. 2024} (chapter 11). With
    ``resume=True`` a branch interrupted after its own first checkpoint resumes from it.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig; got {type(config).__name__}")
    if resume and config.checkpoint_dir is None:
        raise ValueError("resume=True needs config.checkpoint_dir, the folder to resume from")
    run, precision = _setup(model, config, device)
    try:
        result = TrainResult(0, 0, 0.0, float(flops_per_token or 0.0), 0.0,
                             sum(p.numel() for p in run.base.parameters()),
                             device=str(run.device), world_size=run.info.world_size,
                             precision=precision)
        step, elapsed = 0, 0.0
        folder = checkpoint.latest_checkpoint(config.checkpoint_dir) if resume else None
        if folder is not None:
            step, elapsed = _restore(folder, run, result, config)
        elif branch_from is not None:
            step, elapsed = _restore(Path(branch_from), run, result, config, branch=True)
        start = time.perf_counter() - elapsed
        run.model.train()
        with tqdm(total=config.max_steps, initial=step, desc=description, dynamic_ncols=True,
                  disable=not (config.progress and run.info.is_main)) as bar:
            while step < config.max_steps:
                loss_value = _accumulate_gradients(run, get_batch, loss_fn, config, result)
                if not math.isfinite(loss_value):  # stop before the update
                    raise NonFiniteLossError(
                        f"the training loss is {loss_value} at step {step + 1} (learning "
                        f"rate {run.scheduler.get_last_lr()[0]:.3g}); training stopped before "
                        f"the update. Try a lower lr, more warmup or gradient clipping.",
                        step=step + 1, loss=loss_value)
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(run.base.parameters(), config.grad_clip)
                result.lr.append((step + 1, run.scheduler.get_last_lr()[0]))
                run.optimizer.step()
                run.scheduler.step()
                run.optimizer.zero_grad(set_to_none=True)
                step += 1
                result.train_loss.append((step, loss_value))
                final = step == config.max_steps
                if final or step in config.eval_steps or (
                        config.eval_interval and step % config.eval_interval == 0):
                    value = (_evaluate(run, get_batch, loss_fn, config) if evaluate is None
                             else _evaluate_with(run, evaluate))
                    result.val_loss.append((step, value))
                shown = {"loss": f"{loss_value:.3f}"}
                if result.val_loss:
                    shown["val"] = f"{result.final_val_loss:.3f}"
                bar.set_postfix(shown, refresh=False)
                bar.update(1)
                result.steps, result.wall_time_s = step, time.perf_counter() - start
                result.flops = result.flops_per_token * result.tokens
                if config.checkpoint_dir and (final or (
                        config.checkpoint_interval and step % config.checkpoint_interval == 0)):
                    _save(run, result, config)
                if stop is not None and result.val_loss and result.val_loss[-1][0] == step \
                        and stop(result):
                    break
        return result
    finally:
        distributed.leave(run.info)  # a process group train() created, it ends


def _rng_tensors(run: _Run) -> dict[str, torch.Tensor]:
    states = {"batches": run.generator.get_state(), "torch": torch.get_rng_state()}
    if run.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(run.device)
    return states


def _save(run: _Run, result: TrainResult, config: TrainConfig) -> None:
    """Checkpoint with every rank's random-number states; rank 0 writes it."""
    per_rank = distributed.all_gather_objects(_rng_tensors(run), run.info)
    if run.info.is_main:
        tensors = {f"rng.{rank}.{name}": t for rank, states in enumerate(per_rank)
                   for name, t in states.items()}
        model_config = getattr(run.base, "config", None)
        if model_config is not None:  # GPTConfig or a transformers config
            model_config = json.loads(json.dumps(model_config.to_dict(), default=str))
        state = {"result": result.to_dict(), "train_config": asdict(config),
                 "model_config": model_config}
        checkpoint.save_checkpoint(config.checkpoint_dir, result.steps, model=run.base,
                                   optimizer=run.optimizer, scheduler=run.scheduler,
                                   tensors=tensors, state=state, keep=config.checkpoint_keep)
    distributed.barrier(run.info)


# Settings that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = {"progress", "checkpoint_dir", "checkpoint_interval", "checkpoint_keep"}
# What a branch may change from the run it starts from: the schedule's length and shape.
_BRANCH_CHANGES = _RESUMABLE_CHANGES | {"max_steps", "schedule_steps", "schedule",
                                        "decay_fraction", "min_lr_ratio", "eval_steps",
                                        "eval_interval"}


def _restore(folder, run: _Run, result: TrainResult, config: TrainConfig,
             branch: bool = False) -> tuple[int, float]:
    """Load a checkpoint into ``run`` and ``result``; return the step and the elapsed time.

    With ``branch`` the checkpoint may come from a run with another schedule
    (``_BRANCH_CHANGES``); the learning-rate schedule is then this config's, picked up at
    the checkpoint's step."""
    state, tensors = checkpoint.load_checkpoint(
        folder, model=run.base, optimizer=run.optimizer, scheduler=run.scheduler,
        device=run.device)
    saved = state["train_config"]
    free = _BRANCH_CHANGES if branch else _RESUMABLE_CHANGES
    changed = [f.name for f in fields(config) if f.name not in free
               and saved.get(f.name) != _jsonable(getattr(config, f.name))]
    if changed:
        raise ValueError(f"cannot {'branch' if branch else 'resume'} from {str(folder)!r}: "
                         f"the config differs in {changed} (saved "
                         f"{[saved.get(n) for n in changed]}); "
                         + ("a branch may change only the schedule "
                            f"({sorted(_BRANCH_CHANGES - _RESUMABLE_CHANGES)})" if branch else
                            "resume with the same settings or start a new checkpoint_dir"))
    if branch and _saved_steps(state) > config.max_steps:
        raise ValueError(f"cannot branch from {str(folder)!r}: it is at step "
                         f"{_saved_steps(state)}, past this run's max_steps={config.max_steps}")
    rank = run.info.rank
    if f"rng.{rank}.batches" not in tensors:
        raise ValueError(f"checkpoint {str(folder)!r} was written by fewer processes than "
                         f"this run's world size {run.info.world_size}")
    run.generator.set_state(tensors[f"rng.{rank}.batches"])
    torch.set_rng_state(tensors[f"rng.{rank}.torch"])
    if run.device.type == "cuda" and f"rng.{rank}.cuda" in tensors:
        torch.cuda.set_rng_state(tensors[f"rng.{rank}.cuda"], run.device)
    saved_result = state["result"]
    for name in ("tokens", "flops", "flops_per_token"):
        setattr(result, name, saved_result[name])
    for name in ("train_loss", "val_loss", "lr"):
        setattr(result, name, [tuple(pair) for pair in saved_result[name]])
    result.steps = result.resumed_from = saved_result["steps"]
    if branch:  # this run's schedule, at the step the checkpoint reached
        result.val_loss = [(s, v) for s, v in result.val_loss if s < result.steps]
        run.scheduler = torch.optim.lr_scheduler.LambdaLR(
            run.optimizer, _lr_factor(config), last_epoch=result.steps - 1)
    return saved_result["steps"], saved_result["wall_time_s"]


def _saved_steps(state: dict) -> int:
    """The step a checkpoint's ``state.json`` says it reached."""
    return int(state["result"]["steps"])


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value

