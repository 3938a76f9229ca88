"""Knowledge distillation: a small student learns from a large teacher's predictions (chapter 13).

Hinton et al. (2015) train the student on the teacher's whole output distribution,
softened by a temperature ``T``, besides the true labels:

    loss = (1 - alpha) * CE(y, student) + alpha * T**2 * KL(p_T(teacher) || p_T(student)),

where ``p_T(z) = softmax(z / T)``. The KL term is chapter 1's divergence; its gradient
with respect to the student's logits is ``(p_T(student) - p_T(teacher)) / T``, so the
factor ``T**2`` keeps its size comparable to the cross-entropy's as ``T`` changes.
All losses are means over predicted tokens, in nats.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.core.losses import IGNORE_INDEX
from course_lib.core.validate import require_number, require_token_ids
from course_lib.training.loop import LossFn

__all__ = ["distillation_loss", "distillation_loss_fn"]


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 2.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """Hinton's distillation loss, a scalar in nats per predicted token.

    ``student_logits`` and ``teacher_logits`` are ``(..., V)``; ``targets`` ``(...)``
    holds class indices, -100 where nothing is predicted (those positions count in
    neither term). ``alpha = 0`` is plain cross-entropy; ``alpha = 1`` ignores the labels.

    A class that the teacher rules out (logit ``-inf``, probability 0) adds exactly 0 to
    the divergence: its term ``p log(p / q)`` is masked before the multiplication,
    which would otherwise give ``0 * (-inf) = NaN``.
    """
    for name, value in (("student_logits", student_logits), ("teacher_logits", teacher_logits),
                        ("targets", targets)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a tensor; got {type(value).__name__}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student_logits has shape {tuple(student_logits.shape)} and "
                         f"teacher_logits {tuple(teacher_logits.shape)}; expected the same "
                         f"shape (..., V): do the two models share a vocabulary?")
    if targets.shape != student_logits.shape[:-1]:
        raise ValueError(f"targets has shape {tuple(targets.shape)}; expected "
                         f"{tuple(student_logits.shape[:-1])} (the logits without V)")
    temperature = require_number("temperature", temperature, 0, closed=(False, True),
                                 expected="a positive number")
    alpha = require_number("alpha", alpha, 0, 1, expected="a number in [0, 1]")
    if student_logits.ndim < 1 or student_logits.numel() == 0:
        raise ValueError(f"student_logits is empty (shape {tuple(student_logits.shape)}); "
                         f"expected logits (..., V) for at least one position")
    if targets.is_floating_point() or targets.dtype == torch.bool:
        raise TypeError(f"targets must hold integer class indices; got dtype {targets.dtype}")
    require_token_ids("targets", targets, student_logits.shape[-1], ignore_index=IGNORE_INDEX)
    student = student_logits.flatten(0, -2).float()  # (n, V)
    teacher = teacher_logits.flatten(0, -2).float().detach()
    y = targets.flatten()
    keep = y != IGNORE_INDEX
    if not bool(keep.any()):
        raise ValueError(f"targets is {IGNORE_INDEX} (ignored) at all {y.numel()} positions; "
                         f"expected at least one position to predict")
    ce = F.cross_entropy(student, y, ignore_index=IGNORE_INDEX)
    log_p_student = F.log_softmax(student[keep] / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher[keep] / temperature, dim=-1)
    # KL(p_T || p_S) = sum p_T (log p_T - log p_S), the sum over kept positions divided by
    # their number (F.kl_div's "batchmean"); masked where p_T = 0 before multiplying
    terms = torch.exp(log_p_teacher) * (log_p_teacher - log_p_student)
    terms = torch.where(log_p_teacher == float("-inf"), torch.zeros_like(terms), terms)
    kl = terms.sum() / log_p_student.size(0)
    return (1 - alpha) * ce + alpha * temperature**2 * kl


def distillation_loss_fn(teacher: torch.nn.Module, *, temperature: float = 2.0,
                         alpha: float = 0.5) -> LossFn:
    """A ``loss_fn(model, (x, y))`` for :func:`course_lib.training.loop.train` that distills ``teacher``.

    The teacher runs in eval mode without gradients, on the batch's device; it must
    return logits ``(B, T, V)`` (or a tuple whose first element they are), as the
    student does.
    """
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch[0], batch[1]
        with torch.no_grad():
            t_out = teacher(x)
        s_out = model(x)
        t_logits = t_out[0] if isinstance(t_out, tuple) else t_out
        s_logits = s_out[0] if isinstance(s_out, tuple) else s_out
        return distillation_loss(s_logits, t_logits, y, temperature=temperature, alpha=alpha)

    return loss_fn
