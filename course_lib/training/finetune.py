"""Fine-tuning a pretrained encoder for text classification, done right (chapter 6).

:func:`finetune` trains a ``transformers`` sequence classifier on ``(text, label)``
pairs:

* texts are tokenized once and padded per batch to the longest text of the batch
  (**dynamic padding**); with ``group_by_length`` texts of similar length share a
  batch, so there is little padding to compute on;
* ``torch.optim.AdamW`` (no decay on biases and LayerNorm gains) with a linear warmup
  over ``warmup_ratio`` of the steps, then linear decay to zero, as for BERT;
* after every ``eval_every`` epochs (and after the last) the model is evaluated on the
  validation set; with ``patience`` set, training stops when validation macro-F1 has not
  improved for ``patience`` evaluations and the weights of the best evaluation are
  restored (**early stopping**). An evaluation before ``max(min_steps, warmup steps)``
  steps is recorded but neither kept nor counted: early stopping cannot pick a model
  that is still warming up;
* with ``mlm_alpha > 0`` and an ``mlm_head``, the loss is
  ``L_classification + mlm_alpha * L_mlm``, the second term a masked-LM loss (BERT's
  80/10/10 rule, :func:`course_lib.training.masked.mask_tokens`) on the same batch of texts;
* a ``tqdm.auto`` progress bar; a non-finite loss stops the run.

Metrics come from scikit-learn (:func:`classification_metrics`). Losses are mean
cross-entropies in nats per example (classification) or per masked token (MLM).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.core.device import get_device
from course_lib.core.losses import IGNORE_INDEX
from course_lib.core.seeding import seeded
from course_lib.core.validate import plain, require_bool, require_int, require_number
from course_lib.training.loop import TrainConfig, train
from course_lib.training.masked import mask_tokens

__all__ = ["FinetuneConfig", "FinetuneResult", "EncodedExamples", "encode_examples",
           "length_grouped_batches", "pad_batch", "predict_logits", "mean_pooled_features",
           "classification_metrics", "evaluate", "finetune"]

Example = tuple[str, int]


@dataclass
class FinetuneConfig:
    """Settings of :func:`finetune`; the defaults suit a BERT-size encoder."""

    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    patience: int | None = 1  # None: train every epoch and keep the last weights
    min_steps: int = 0  # no early stopping before max(min_steps, warmup steps)
    eval_every: int = 1  # epochs between evaluations (the last epoch is always one)
    max_length: int = 64  # tokens per text, [CLS] and [SEP] included
    grad_clip: float | None = 1.0
    group_by_length: bool = True
    mlm_alpha: float = 0.0
    mlm_probability: float = 0.15
    eval_batch_size: int = 128
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        # NumPy numbers are accepted and stored as Python ones (the result is saved as
        # JSON); Python values are stored as given.
        for name in ("epochs", "batch_size", "max_length", "eval_batch_size",
                     "eval_every"):
            setattr(self, name, require_int(name, getattr(self, name), 1,
                                            expected="a positive integer"))
        self.seed = require_int("seed", self.seed, 0, expected="a non-negative integer")
        self.min_steps = require_int("min_steps", self.min_steps, 0,
                                     expected="a non-negative integer")
        if self.patience is not None:
            self.patience = require_int("patience", self.patience, 1,
                                        expected="a positive integer or None")
        self.lr = plain(self.lr, require_number("lr", self.lr, 0, closed=(False, True),
                                                expected="a positive number"))
        for name in ("warmup_ratio", "mlm_probability"):
            value = getattr(self, name)
            setattr(self, name, plain(value, require_number(name, value, 0, 1)))
        for name in ("weight_decay", "mlm_alpha"):  # finite: inf would make every step NaN
            value = getattr(self, name)
            setattr(self, name, plain(value, require_number(name, value, 0)))
        if self.grad_clip is not None:
            self.grad_clip = plain(self.grad_clip, require_number(
                "grad_clip", self.grad_clip, 0, closed=(False, True),
                expected="positive or None"))
        for name in ("group_by_length", "progress"):
            setattr(self, name, require_bool(name, getattr(self, name)))


@dataclass
class FinetuneResult:
    """What a run did. ``history`` has one dict per epoch: ``epoch``, ``step``,
    ``train_loss`` (and ``train_mlm_loss``), and the validation metrics of
    :func:`evaluate` prefixed ``val_``. ``best_epoch`` is the epoch whose weights the
    model holds at the end (1-based). ``first_candidate_epoch`` is the first evaluated
    epoch that early stopping may keep (at or after ``max(min_steps, warmup steps)``).
    One history row per evaluation (every ``eval_every`` epochs); ``train_loss`` is the
    mean over the steps since the previous row."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val_macro_f1: float = math.nan
    first_candidate_epoch: int = 1
    steps: int = 0
    stopped_early: bool = False
    wall_time_s: float = 0.0
    n_trainable: int = 0
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EncodedExamples:
    """Token ids of labelled texts, unpadded: ``ids[i]`` is a list of ints."""

    ids: list[list[int]]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)


def _check_examples(name: str, examples: Sequence[Example], num_labels: int) -> None:
    if examples is None or len(examples) == 0:
        raise ValueError(f"{name} is empty; expected a non-empty list of (text, label) pairs")
    for i, item in enumerate(examples):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(f"{name}[{i}] is {item!r}; expected a (text, label) pair")
        text, label = item
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{name}[{i}] has text {text!r}; expected a non-empty string")
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)) \
                or not 0 <= label < num_labels:
            raise ValueError(f"{name}[{i}] has label {label!r}; expected an integer class "
                             f"index in [0, {num_labels}) for this {num_labels}-class model")


def encode_examples(tokenizer, examples: Sequence[Example], *, num_labels: int,
                    max_length: int = 64, name: str = "examples") -> EncodedExamples:
    """Tokenize ``(text, label)`` pairs once, truncated to ``max_length`` tokens, unpadded.

    Raises ``ValueError`` naming ``name`` and the position of the first bad example
    (empty list, empty text, a label that is not an integer in ``[0, num_labels)``).
    """
    _check_examples(name, examples, num_labels)
    encoded = tokenizer([t for t, _ in examples], truncation=True, max_length=max_length)
    return EncodedExamples(list(encoded["input_ids"]), [int(y) for _, y in examples])


def length_grouped_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator,
                           *, group: bool = True, mega: int = 16) -> list[list[int]]:
    """A shuffled epoch of index batches.

    With ``group``, the shuffled indices are cut into chunks of ``mega * batch_size``,
    each chunk is sorted by length and split into batches, and the batches are
    shuffled: batches stay random but hold texts of similar length.
    """
    batch_size = require_int("batch_size", batch_size, 1)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if not group:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches = []
    for start in range(0, len(order), mega * batch_size):
        chunk = sorted(order[start:start + mega * batch_size], key=lambda i: -lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad token-id lists to the longest: ``input_ids`` and ``attention_mask``, both ``(B, T)``."""
    if len(ids) == 0:
        raise ValueError("ids is empty: pad_batch needs at least one list of token ids")
    longest = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), longest), dtype=torch.long)
    for i, row in enumerate(ids):
        input_ids[i, :len(row)] = torch.as_tensor(row, dtype=torch.long)
        attention_mask[i, :len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def _by_length(model: nn.Module, tokenizer, texts: Sequence[str], batch_size: int,
               max_length: int, device, encode) -> torch.Tensor:
    """``encode(batch) -> (B, k)`` over ``texts`` in batches of similar length (little
    padding), in eval mode without gradients; rows back in input order, float32, CPU."""
    if len(texts) == 0:
        raise ValueError("texts is empty; expected at least one text")
    device = next(model.parameters()).device if device is None else get_device(device)
    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    was_training = model.training
    model.eval()
    rows: list[torch.Tensor] = []
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = pad_batch([ids[i] for i in order[start:start + batch_size]],
                              tokenizer.pad_token_id)
            rows.append(encode({k: v.to(device) for k, v in batch.items()}).float().cpu())
    model.train(was_training)
    out = torch.empty(len(ids), rows[0].shape[1])
    out[order] = torch.cat(rows)
    return out


def predict_logits(model: nn.Module, tokenizer, texts: Sequence[str], *, batch_size: int = 128,
                   max_length: int = 64, device=None) -> torch.Tensor:
    """Class logits ``(len(texts), num_labels)`` (float32, on the CPU), in eval mode.

    Texts are batched in order of length (little padding) and returned in input order.
    """
    return _by_length(model, tokenizer, texts, batch_size, max_length, device,
                      lambda batch: model(**batch).logits)


def mean_pooled_features(model: nn.Module, tokenizer, texts: Sequence[str], *,
                         batch_size: int = 128, max_length: int = 64,
                         device=None) -> torch.Tensor:
    """Frozen sentence features ``(len(texts), d)`` (float32, on the CPU): the mean of the
    encoder's last hidden states over each text's real tokens (padding masked out).

    ``model`` is a ``transformers`` encoder or a model built on one (``model.base_model``
    gives the hidden states: a sequence classifier or a masked LM). Texts are batched in
    order of length and returned in input order; the model is run in eval mode and left
    in the mode it was in. These are the features of a *linear probe*.
    """
    def pooled(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = model.base_model(**batch).last_hidden_state  # (B, T, d)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * mask).sum(1) / mask.sum(1)  # (B, d)

    return _by_length(model, tokenizer, texts, batch_size, max_length, device, pooled)


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int],
                           num_labels: int) -> dict[str, float]:
    """Accuracy and macro-averaged precision, recall and F1 (scikit-learn), all in [0, 1].

    Macro averages weigh every class equally, whatever its size; a class never
    predicted has precision 0 (``zero_division=0``).
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    labels = list(range(num_labels))
    p, r, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                  average="macro", zero_division=0)
    return {"accuracy": float(accuracy_score(y_true, y_pred)), "macro_precision": float(p),
            "macro_recall": float(r), "macro_f1": float(f1)}


def evaluate(model: nn.Module, tokenizer, examples: Sequence[Example], *, max_length: int = 64,
             batch_size: int = 128, device=None) -> dict:
    """Metrics of :func:`classification_metrics`, plus ``loss`` (nats per example) and
    ``predictions`` (a list of class indices in the order of ``examples``)."""
    num_labels = model.config.num_labels
    _check_examples("examples", examples, num_labels)
    logits = predict_logits(model, tokenizer, [t for t, _ in examples], batch_size=batch_size,
                            max_length=max_length, device=device)
    labels = torch.tensor([y for _, y in examples])
    predictions = logits.argmax(-1)
    metrics = classification_metrics(labels.tolist(), predictions.tolist(), num_labels)
    return metrics | {"loss": F.cross_entropy(logits, labels).item(),
                      "predictions": predictions.tolist()}


def _mlm_loss(model: nn.Module, mlm_head: nn.Module, inputs: torch.Tensor,
              attention_mask: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Masked-LM loss (nats per masked token) of ``mlm_head`` on the encoder's states of the
    BERT-masked ``inputs`` ``(B, T)`` (:func:`~course_lib.training.masked.mask_tokens`)."""
    hidden = model.base_model(input_ids=inputs,
                              attention_mask=attention_mask).last_hidden_state
    logits = mlm_head(hidden)  # (B, T, V)
    if not (targets != IGNORE_INDEX).any():  # nothing selected in this batch
        return logits.sum() * 0.0
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)


def _params(model: nn.Module, mlm_head: nn.Module | None) -> list[nn.Parameter]:
    """Trainable parameters of the model and the head, each once (tied weights)."""
    seen, params = set(), []
    for module in (model, mlm_head) if mlm_head is not None else (model,):
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


def finetune(model: nn.Module, tokenizer, train: Sequence[Example],
             validation: Sequence[Example], config: FinetuneConfig | None = None, *,
             mlm_head: nn.Module | None = None, device=None,
             description: str = "fine-tune") -> FinetuneResult:
    """Fine-tune ``model`` in place on ``train``; return a :class:`FinetuneResult`.

    ``model`` is a ``transformers`` sequence classifier (``.logits`` of shape
    ``(B, num_labels)``) and ``tokenizer`` its tokenizer. Runs are reproducible: batch
    order, dropout and masking come from ``config.seed``, and the caller's global random
    state is left as it was. Only parameters with ``requires_grad`` are trained (a LoRA
    model trains its adapters and head only).
    """
    config = config or FinetuneConfig()
    if not isinstance(config, FinetuneConfig):
        raise TypeError(f"config must be a FinetuneConfig; got {type(config).__name__}")
    if config.mlm_alpha > 0 and mlm_head is None:
        raise ValueError(f"mlm_alpha={config.mlm_alpha} needs an mlm_head (see "
                         f"course_lib.recipes.pretrained.tied_mlm_head)")
    num_labels = model.config.num_labels
    data = encode_examples(tokenizer, train, num_labels=num_labels,
                           max_length=config.max_length, name="train")
    _check_examples("validation", validation, num_labels)
    device = get_device(device)
    model.to(device)
    if mlm_head is not None:
        mlm_head.to(device)
    with seeded(config.seed):  # dropout and new weights; the caller's RNG is left alone
        return _run(model, tokenizer, data, validation, config, mlm_head, device, description)


class _WithHead(nn.Module):
    """The classifier and the masked-LM head as one module: what the loop optimises."""

    def __init__(self, model: nn.Module, mlm_head: nn.Module | None) -> None:
        super().__init__()
        self.model, self.mlm_head = model, mlm_head


def _run(model, tokenizer, data: EncodedExamples, validation, config: FinetuneConfig,
         mlm_head, device, description: str) -> FinetuneResult:
    """Fine-tuning as an objective of :func:`course_lib.training.loop.train`: epochs of
    length-grouped batches, cross-entropy (plus the auxiliary masked-LM loss), a linear
    schedule, evaluation every ``eval_every`` epochs and early stopping on validation
    macro-F1, never before ``max(min_steps, warmup steps)``."""
    steps_per_epoch = math.ceil(len(data) / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = round(config.warmup_ratio * total)
    if config.min_steps > total:
        raise ValueError(
            f"min_steps={config.min_steps} exceeds the run's {total} steps ({config.epochs} "
            f"epochs of {steps_per_epoch} batches); expected min_steps <= {total}")
    first_step = max(config.min_steps, warmup)  # early stopping may act from here
    eval_epochs = sorted({*range(config.eval_every, config.epochs + 1, config.eval_every),
                          config.epochs})
    lengths = [len(row) for row in data.ids]
    both = _WithHead(model, mlm_head)
    result = FinetuneResult(n_trainable=sum(p.numel() for p in _params(model, mlm_head)),
                            device=str(device))
    result.first_candidate_epoch = next(e for e in eval_epochs
                                        if e * steps_per_epoch >= first_step)
    queue: list[list[int]] = []
    sums = {"train_loss": 0.0, "train_mlm_loss": 0.0, "steps": 0}
    best = {"state": None, "since": 0}

    def get_batch(split: str, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """The next batch of the epoch (a new shuffled epoch when one ends): ids, mask,
        labels, and — with the auxiliary loss — BERT-masked ids and their targets."""
        if not queue:
            queue.extend(length_grouped_batches(lengths, config.batch_size, generator,
                                                group=config.group_by_length))
        index = queue.pop(0)
        batch = pad_batch([data.ids[i] for i in index], tokenizer.pad_token_id)
        labels = torch.tensor([data.labels[i] for i in index])
        out = (batch["input_ids"], batch["attention_mask"], labels)
        if config.mlm_alpha > 0:
            out += mask_tokens(batch["input_ids"], mask_token_id=tokenizer.mask_token_id,
                               vocab_size=model.config.vocab_size, generator=generator,
                               mlm_probability=config.mlm_probability,
                               special_token_ids=tokenizer.all_special_ids)
        return out

    def loss_fn(_: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        input_ids, attention_mask, labels = batch[:3]
        loss = F.cross_entropy(model(input_ids=input_ids, attention_mask=attention_mask)
                               .logits.float(), labels)
        sums["train_loss"] += loss.item()
        sums["steps"] += 1
        if config.mlm_alpha == 0:
            return loss
        mlm = _mlm_loss(model, mlm_head, batch[3], attention_mask, batch[4])
        sums["train_mlm_loss"] += mlm.item()
        return loss + config.mlm_alpha * mlm

    def evaluate_epoch(_: nn.Module) -> float:
        epoch = eval_epochs[len(result.history)]
        val = evaluate(model, tokenizer, validation, max_length=config.max_length,
                       batch_size=config.eval_batch_size, device=device)
        row = {"epoch": epoch, "step": epoch * steps_per_epoch,
               "train_loss": sums["train_loss"] / sums["steps"]}
        if config.mlm_alpha > 0:
            row["train_mlm_loss"] = sums["train_mlm_loss"] / sums["steps"]
        row |= {f"val_{k}": v for k, v in val.items() if k != "predictions"}
        result.history.append(row)
        sums.update(train_loss=0.0, train_mlm_loss=0.0, steps=0)
        if config.patience is None:  # keep the last weights
            result.best_epoch, result.best_val_macro_f1 = epoch, val["macro_f1"]
        elif epoch >= result.first_candidate_epoch:  # warmed up: a candidate
            improved = math.isnan(result.best_val_macro_f1) or (
                val["macro_f1"] > result.best_val_macro_f1)
            if improved:
                result.best_epoch, result.best_val_macro_f1 = epoch, val["macro_f1"]
                best["since"] = 0
                if epoch < config.epochs:
                    best["state"] = {k: v.detach().cpu().clone()
                                     for k, v in model.state_dict().items()}
            else:
                best["since"] += 1
        return float(val.get("loss", math.nan))  # the loop's record; F1 decides here

    def stop(_: object) -> bool:
        if config.patience is not None and best["since"] >= config.patience:
            result.stopped_early = result.history[-1]["epoch"] < config.epochs
            return True
        return False

    loop_config = TrainConfig(
        max_steps=total, lr=config.lr, warmup_steps=warmup,
        weight_decay=config.weight_decay, betas=(0.9, 0.999), grad_clip=config.grad_clip,
        eval_steps=tuple(steps_per_epoch * e for e in eval_epochs),
        seed=config.seed, precision="fp32", progress=config.progress, schedule="linear")
    start = time.perf_counter()
    trained = train(both, get_batch, loop_config, device=device, loss_fn=loss_fn,
                    description=description, evaluate=evaluate_epoch,
                    stop=stop)
    result.steps = trained.steps
    if best["state"] is not None and result.best_epoch != result.history[-1]["epoch"]:
        model.load_state_dict(best["state"])
    model.eval()
    result.wall_time_s = time.perf_counter() - start
    return result
