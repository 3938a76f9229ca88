"""A synthetic language whose entropy rate is known exactly: a random sparse Markov chain.

The next token depends on the previous ``order`` tokens (the *context*). Each of the
``vocab_size ** order`` contexts allows ``branching`` next tokens, with probabilities
drawn from a symmetric Dirichlet distribution (``concentration``: small → peaked, easy;
large → near-uniform, hard). The **entropy rate**, the loss of the true model and hence
the floor that no language model of this text can beat, is

    H = sum_c pi(c) * H(P(. | c))      (nats per token),

with ``pi`` the stationary distribution of the chain over contexts
(Cover & Thomas, *Elements of Information Theory*, theorem 4.2.4). It is exact up to floating-point rounding,
not estimated from samples. The scaling chapters train models on samples and compare
their fitted irreducible loss with it.

Irreducibility is built in: every context allows the token after its last one (mod
``vocab_size``), so from any context the chain reaches the cycle of "runs"
``(c, c+1, …, c+order-1)``; it therefore has one closed class and one stationary
distribution, and a long sample's average surprisal converges to ``H``.

Difficulty knobs: ``order`` (how much context a model must use), ``vocab_size ** order
* branching`` (how many probabilities it must learn), ``concentration`` (how
predictable each step is).
"""

from __future__ import annotations

import bisect
import math

import numpy as np
import scipy.sparse
import torch

from course_lib.core.validate import log_base, require_int, require_positive
from course_lib.data.tokenizers import CharTokenizer

__all__ = ["SYMBOLS", "MarkovLanguage"]

#: One printable, non-space character per token id, in code-point order (ASCII first), so
#: that a ``CharTokenizer`` over these characters gives every token its own id back.
SYMBOLS = "".join(chr(c) for c in [*range(0x21, 0x7F), *range(0xA1, 0x180)] if c != 0xAD)
_MAX_CONTEXTS = 2**20
#: At most this many transition probabilities (``n_contexts * branching``): 128 MiB per array.
_MAX_TRANSITIONS = 2**24
#: Random numbers drawn at once while choosing successors (32 MiB of float64).
_DRAW_CHUNK = 2**22



def _xlogx(p: np.ndarray) -> np.ndarray:
    """``p log p`` elementwise, with ``0 log 0 = 0`` (the limit) instead of NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(p), 0.0)


class MarkovLanguage:
    """A random order-``order`` Markov chain over ``vocab_size`` tokens, built from ``seed``.

    Attributes: ``successors`` (int64, ``(n_contexts, branching)``) the tokens each
    context allows; ``probs`` (float64, same shape) their probabilities; ``stationary``
    (float64, ``(n_contexts,)``) the stationary distribution over contexts. A context is
    the base-``vocab_size`` number formed by the last ``order`` tokens, oldest first.
    """

    def __init__(
        self,
        vocab_size: int = 64,
        order: int = 2,
        branching: int = 8,
        concentration: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.vocab_size = require_int("vocab_size", vocab_size, 2)
        self.order = require_int("order", order, 1)
        self.branching = require_int("branching", branching, 1, self.vocab_size)
        self.concentration = require_positive("concentration", concentration)
        self.seed = require_int("seed", seed, 0)
        self.n_contexts = self.vocab_size**self.order
        if self.n_contexts > _MAX_CONTEXTS:
            raise ValueError(
                f"vocab_size ** order = {self.vocab_size}**{self.order} = {self.n_contexts:,} "
                f"contexts; expected at most {_MAX_CONTEXTS:,} (use a smaller vocabulary or order)")
        if self.n_contexts * self.branching > _MAX_TRANSITIONS:
            raise ValueError(
                f"n_contexts * branching = {self.n_contexts:,} * {self.branching} = "
                f"{self.n_contexts * self.branching:,} transition probabilities; expected at "
                f"most {_MAX_TRANSITIONS:,} (several arrays of that size are held in memory): "
                f"use a smaller vocabulary, order or branching")
        rng = np.random.default_rng(self.seed)
        self.successors, self.probs = self._draw_transitions(rng)
        self.stationary = self._stationary_distribution()

    def __repr__(self) -> str:
        return (f"MarkovLanguage(vocab_size={self.vocab_size}, order={self.order}, "
                f"branching={self.branching}, concentration={self.concentration:g}, "
                f"seed={self.seed})")

    # --- construction ----------------------------------------------------------------

    def _draw_transitions(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        V, S, b = self.vocab_size, self.n_contexts, self.branching
        backbone = (np.arange(S) % V + 1) % V  # the token after the context's last one
        succ = np.empty((S, b), dtype=np.int64)
        succ[:, 0] = backbone
        # b-1 other distinct tokens, in row chunks of at most _DRAW_CHUNK numbers (the draws
        # are the same for any chunk size: the generator's stream is consumed in row order)
        chunk = max(1, min(4096, _DRAW_CHUNK // max(V - 1, 1)))
        for start in range(0, S, chunk):
            rows = slice(start, min(start + chunk, S))
            others = rng.random((rows.stop - start, V - 1)).argsort(axis=1)[:, : b - 1]
            succ[rows, 1:] = others + (others >= backbone[rows, None])  # skip the backbone
        probs = rng.gamma(self.concentration, size=(S, b))
        totals = probs.sum(axis=1, keepdims=True)
        if not (totals > 0).all():
            c = int(np.flatnonzero(totals[:, 0] == 0)[0])
            raise ValueError(
                f"concentration={self.concentration:g} is so small that every Dirichlet draw "
                f"of context {c} underflowed to 0 (no distribution to normalise); expected a "
                f"larger concentration (0.05 or more is safe)")
        probs /= totals
        order = succ.argsort(axis=1)
        return np.take_along_axis(succ, order, 1), np.take_along_axis(probs, order, 1)

    def _next_context(self, context: np.ndarray, token: np.ndarray) -> np.ndarray:
        return (context * self.vocab_size + token) % self.n_contexts

    def transition_matrix(self) -> scipy.sparse.csr_matrix:
        """Sparse ``(n_contexts, n_contexts)`` matrix ``P[c, c']`` of context transitions."""
        rows = np.repeat(np.arange(self.n_contexts), self.branching)
        cols = self._next_context(rows, self.successors.ravel())
        return scipy.sparse.csr_matrix((self.probs.ravel(), (rows, cols)),
                                       shape=(self.n_contexts,) * 2)

    def _stationary_distribution(self, tol: float = 1e-14, max_iter: int = 100_000) -> np.ndarray:
        """Power iteration on the lazy chain ``(I + P) / 2`` (same ``pi``, never periodic)."""
        PT = self.transition_matrix().T.tocsr()
        pi = np.full(self.n_contexts, 1.0 / self.n_contexts)
        for _ in range(max_iter):
            new = 0.5 * (pi + PT @ pi)
            new /= new.sum()
            if np.abs(new - pi).sum() < tol:
                return new
            pi = new
        raise RuntimeError(f"the stationary distribution did not converge in {max_iter} "
                           f"iterations (residual {np.abs(new - pi).sum():.2e})")

    # --- exact quantities --------------------------------------------------------------

    def entropy_rate(self, base: float = math.e) -> float:
        """Exact entropy rate ``sum_c pi(c) H(P(.|c))``: nats/token, or bits with ``base=2``."""
        row_entropy = -_xlogx(self.probs).sum(axis=1)
        return float(self.stationary @ row_entropy) / log_base(base)

    def conditional_entropy(self, context_length: int, base: float = math.e) -> float:
        """Exact ``H(X_t | previous context_length tokens)`` under the stationary chain.

        The best loss a model that sees only ``context_length`` tokens can reach:
        ``0`` gives the unigram entropy, ``order`` (or more) the entropy rate.
        """
        m = require_int("context_length", context_length, 0)
        if m >= self.order:
            return self.entropy_rate(base)
        V = self.vocab_size
        weight = (self.stationary[:, None] * self.probs).ravel()
        suffix = np.repeat(np.arange(self.n_contexts) % V**m, self.branching)
        joint = np.bincount(suffix * V + self.successors.ravel(), weights=weight,
                            minlength=V**m * V).reshape(V**m, V)
        marginal = joint.sum(axis=1, keepdims=True)
        mask = joint > 0
        h = -(joint[mask] * np.log((joint / np.where(marginal > 0, marginal, 1))[mask])).sum()
        return float(h) / log_base(base)

    def unigram(self) -> np.ndarray:
        """Stationary frequency of each token, float64 ``(vocab_size,)``."""
        return np.bincount(np.arange(self.n_contexts) % self.vocab_size,
                           weights=self.stationary, minlength=self.vocab_size)

    # --- samples -----------------------------------------------------------------------

    def sample(self, n_tokens: int, seed: int = 0) -> torch.Tensor:
        """A stationary sample: LongTensor ``(n_tokens,)`` of token ids.

        The first ``order`` tokens are a context drawn from ``pi``; each later token is
        drawn given the ``order`` before it. Same ``seed`` → same sample. About a
        million tokens per second on one CPU core.
        """
        n = require_int("n_tokens", n_tokens, 1)
        rng = np.random.default_rng(require_int("seed", seed, 0))
        V, k = self.vocab_size, self.order
        context = int(rng.choice(self.n_contexts, p=self.stationary))
        start = [(context // V ** (k - 1 - j)) % V for j in range(k)]
        out = np.empty(max(n, k), dtype=np.int64)
        out[:k] = start
        cum = np.cumsum(self.probs, axis=1)
        cum[:, -1] = 1.0
        cum_rows, succ_rows = cum.tolist(), self.successors.tolist()
        uniforms = rng.random(max(n - k, 0)).tolist()
        S, right = self.n_contexts, bisect.bisect_right
        for t, u in enumerate(uniforms, start=k):
            token = succ_rows[context][right(cum_rows[context], u)]
            out[t] = token
            context = (context * V + token) % S
        return torch.from_numpy(out[:n])

    def token_log_probs(self, tokens: object) -> torch.Tensor:
        """``log P(x_t | x_{t-order..t-1})`` for ``t >= order``: float64 ``(n - order,)``.

        ``-inf`` where a token is impossible after its context.
        """
        x = self._as_tokens(tokens)
        V, k = self.vocab_size, self.order
        context = np.zeros(len(x) - k, dtype=np.int64)
        for j in range(k):
            context = context * V + x[j: len(x) - k + j]
        target = x[k:]
        hit = self.successors[context] == target[:, None]
        probs = self.probs[context]
        # mask before summing: a successor of probability 0 has log p = -inf, and
        # -inf * False would be NaN
        with np.errstate(divide="ignore"):
            logp = np.where(hit, np.log(probs), 0.0).sum(axis=1)
        out = np.where(hit.any(axis=1), logp, -np.inf)
        return torch.from_numpy(out)

    def cross_entropy(self, tokens: object, base: float = math.e) -> float:
        """Mean surprisal of ``tokens`` under the true model: nats/token (bits with base=2).

        Averaged over positions ``t >= order`` (each scored given its full context); for
        a long sample it converges to :meth:`entropy_rate`.
        """
        return float(-self.token_log_probs(tokens).mean()) / log_base(base)

    def _as_tokens(self, tokens: object) -> np.ndarray:
        x = tokens.detach().cpu().numpy() if isinstance(tokens, torch.Tensor) else np.asarray(tokens)
        if x.ndim != 1 or not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"tokens must be a 1-D array of integer token ids; got shape "
                             f"{x.shape} and dtype {x.dtype}")
        if len(x) <= self.order:
            raise ValueError(f"tokens has {len(x)} token(s); expected more than order = "
                             f"{self.order} (the first {self.order} only form the context)")
        bad = (x < 0) | (x >= self.vocab_size)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"tokens has id {int(x[i])} at position {i}; expected ids in "
                             f"[0, {self.vocab_size})")
        return x.astype(np.int64)

    # --- text --------------------------------------------------------------------------

    def to_text(self, tokens: object) -> str:
        """One character per token (``SYMBOLS[id]``): a sample as a string."""
        if self.vocab_size > len(SYMBOLS):
            raise ValueError(f"vocab_size {self.vocab_size} has no text form; "
                             f"expected at most {len(SYMBOLS)} tokens")
        x = tokens.detach().cpu().numpy() if isinstance(tokens, torch.Tensor) else np.asarray(tokens)
        if x.size == 0:
            return ""
        if x.ndim != 1 or not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"tokens must be a 1-D array of integer token ids; got shape "
                             f"{x.shape} and dtype {x.dtype}")
        bad = (x < 0) | (x >= self.vocab_size)
        if bad.any():  # a negative id would index SYMBOLS from the end, silently
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"tokens has id {int(x[i])} at position {i}; expected ids in "
                             f"[0, {self.vocab_size})")
        return "".join(SYMBOLS[i] for i in x.tolist())

    def tokenizer(self) -> CharTokenizer:
        """The character tokenizer of :meth:`to_text`'s output: its ids are the token ids."""
        if self.vocab_size > len(SYMBOLS):
            raise ValueError(f"vocab_size {self.vocab_size} has no text form; "
                             f"expected at most {len(SYMBOLS)} tokens")
        return CharTokenizer(SYMBOLS[: self.vocab_size])

    def from_text(self, text: str) -> torch.Tensor:
        """Inverse of :meth:`to_text`: LongTensor ``(len(text),)``."""
        index = {c: i for i, c in enumerate(SYMBOLS[: self.vocab_size])}
        try:
            return torch.tensor([index[c] for c in text], dtype=torch.long)
        except KeyError as err:
            raise ValueError(f"text has character {err.args[0]!r}, which is not one of this "
                             f"language's {self.vocab_size} symbols") from None

