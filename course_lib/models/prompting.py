"""Scoring a language model's answers to prompts (chapter 14).

:func:`score_answer` runs the model once on ``prompt + answer`` and reads off two
numbers: the log-probability of the answer (a continuous measure, in nats), and
whether greedy decoding from the prompt would produce exactly the answer. The second
needs no generation: greedy decoding yields the answer if and only if, at every
position of the answer, the most likely next token is the answer's token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course_lib.core.validate import require_token_ids

__all__ = ["AnswerScore", "score_answer"]


@dataclass(frozen=True)
class AnswerScore:
    """``logprob``: log p(answer | prompt) in nats; ``greedy``: greedy decoding gives it."""

    logprob: float
    n_tokens: int
    greedy: bool

    @property
    def nats_per_token(self) -> float:
        """Mean surprisal of the answer's tokens, in nats."""
        return -self.logprob / self.n_tokens


@torch.no_grad()
def score_answer(model: torch.nn.Module, prompt_ids: list[int], answer_ids: list[int]
                 ) -> AnswerScore:
    """Score ``answer_ids`` as the continuation of ``prompt_ids`` (one forward pass).

    ``model`` maps ``(1, T)`` ids to logits ``(1, T, V)`` (or a tuple starting with
    them). Both id lists must be non-empty; together they must fit the model's context.
    """
    if not prompt_ids or not answer_ids:
        raise ValueError(f"prompt_ids and answer_ids must be non-empty; got "
                         f"{len(prompt_ids)} and {len(answer_ids)} ids")
    device = next(model.parameters()).device
    ids = torch.tensor([list(prompt_ids) + list(answer_ids)])
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is not None:  # the last answer id is only a target: check it here too
        require_token_ids("prompt_ids + answer_ids", ids, vocab)
    ids = ids.to(device)
    was_training = model.training
    model.eval()
    out = model(ids[:, :-1])
    model.train(was_training)
    logits = (out[0] if isinstance(out, tuple) else out)[0, len(prompt_ids) - 1:]  # (A, V)
    target = ids[0, len(prompt_ids):]  # (A,)
    logprob = F.log_softmax(logits.float(), dim=-1).gather(1, target[:, None]).sum().item()
    greedy = bool((logits.argmax(dim=-1) == target).all())
    return AnswerScore(logprob, len(answer_ids), greedy)
