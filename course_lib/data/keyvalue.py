"""A long-tailed synthetic language whose entropy rate is known exactly (chapters 9–10).

Text is a stream of **segments**, each a *key* of ``key_length`` tokens followed by its
*value* of ``value_length`` tokens. There are ``n_keys`` distinct keys, random strings
over ``vocab_size`` tokens, and every key has one fixed value, also random: the language
is a dictionary of facts. Segments are independent; the key of each is drawn with
probability ``p_r ∝ r**(-zipf_exponent)`` by its rank ``r = 1 … n_keys``.

Why this gives scaling laws. A model that has stored the values of the ``K`` most
frequent keys predicts their values at no loss, and must guess the values of the rest;
the loss it leaves is proportional to the probability of the keys it has not stored,

    tail(K) = sum_{r > K} p_r  ∝  K**(1 - s)      (s = zipf_exponent > 1, K << n_keys),

a power law in ``K``. If a model's capacity, or the data it has seen, sets ``K``, the
loss follows a power law in ``N`` or ``D`` (Hutter 2021; Michaud et al. 2023). The
frequencies are imposed on the keys directly, so the tail is exactly a power law, and
``n_keys`` is far larger than any course model can store.

The **entropy rate** is exact: the value is a function of the key, so all uncertainty
sits in the key, and

    H = H(key) / segment_length = -(sum_r p_r log p_r) / (key_length + value_length)

nats per token (a stream of independent segments, read from a segment boundary). Each
position of a segment has its own exact floor, :meth:`position_entropies`; they add up
to ``H(key)``. Windows that start at a segment boundary and span whole segments score
every position equally often, so a perfect model's mean loss on them is ``H``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from course_lib.core.validate import log_base, require_int, require_positive

__all__ = ["KeyValueLanguage"]

_MAX_KEY_SPACE = 2**62



class KeyValueLanguage:
    """Independent key–value segments with Zipf-distributed keys, built from ``seed``.

    Attributes: ``keys`` (``(n_keys, key_length)``, uint8 or uint16) the key strings in
    rank order (most frequent first); ``values`` (``(n_keys, value_length)``) their values;
    ``key_probs`` (float64, ``(n_keys,)``) the probability of each key, decreasing.

    >>> lang = KeyValueLanguage(vocab_size=8, key_length=2, value_length=1, n_keys=20,
    ...                         zipf_exponent=1.5)
    >>> lang.segment_length, round(lang.entropy_rate() * 3, 6) == round(lang.key_entropy(), 6)
    (3, True)
    """

    def __init__(
        self,
        vocab_size: int = 64,
        key_length: int = 4,
        value_length: int = 4,
        n_keys: int = 1_000_000,
        zipf_exponent: float = 1.3,
        seed: int = 0,
    ) -> None:
        self.vocab_size = require_int("vocab_size", vocab_size, 2, 65_536)
        self.key_length = require_int("key_length", key_length, 1)
        self.value_length = require_int("value_length", value_length, 1)
        space = self.vocab_size ** self.key_length
        if space > _MAX_KEY_SPACE:
            raise ValueError(f"vocab_size ** key_length = {self.vocab_size}**{self.key_length}"
                             f" is too large; expected at most 2**62 possible keys")
        self.n_keys = require_int("n_keys", n_keys, 1, min(space, 50_000_000))
        self.zipf_exponent = require_positive("zipf_exponent", zipf_exponent)
        self.seed = require_int("seed", seed, 0)
        rng = np.random.default_rng(self.seed)
        codes = rng.choice(space, size=self.n_keys, replace=False)  # distinct, random order
        powers = self.vocab_size ** np.arange(self.key_length - 1, -1, -1)
        small = np.uint8 if self.vocab_size <= 256 else np.uint16
        self.keys = ((codes[:, None] // powers) % self.vocab_size).astype(small)
        self.values = rng.integers(0, self.vocab_size, size=(self.n_keys, self.value_length)
                                   ).astype(small)
        ranks = np.arange(1, self.n_keys + 1, dtype=np.float64)
        weights = ranks ** -self.zipf_exponent
        self.key_probs = weights / weights.sum()
        self._cumulative = np.cumsum(self.key_probs)
        self._cumulative[-1] = 1.0
        self._codes = codes
        self._prefix_tables = self._build_prefix_tables()

    def __repr__(self) -> str:
        return (f"KeyValueLanguage(vocab_size={self.vocab_size}, key_length={self.key_length},"
                f" value_length={self.value_length}, n_keys={self.n_keys:,}, "
                f"zipf_exponent={self.zipf_exponent:g}, seed={self.seed})")

    @property
    def segment_length(self) -> int:
        """Tokens per segment: ``key_length + value_length``."""
        return self.key_length + self.value_length

    # --- exact quantities --------------------------------------------------------------

    def _build_prefix_tables(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """For j = 0 … key_length: the distinct j-token key prefixes (as sorted codes) and
        the total probability of the keys that start with each."""
        tables = []
        for j in range(self.key_length + 1):
            prefix = self._codes // self.vocab_size ** (self.key_length - j)
            unique, inverse = np.unique(prefix, return_inverse=True)
            tables.append((unique, np.bincount(inverse, weights=self.key_probs)))
        return tables

    def key_entropy(self, base: float = math.e) -> float:
        """Exact entropy of the key distribution, ``-sum_r p_r log p_r`` (nats by default)."""
        p = self.key_probs
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 log 0 = 0: a steep Zipf
            terms = np.where(p > 0, p * np.log(p), 0.0)  # law underflows the rarest to 0
        return float(-terms.sum()) / log_base(base)

    def entropy_rate(self, base: float = math.e) -> float:
        """Exact entropy rate, ``H(key) / segment_length``: nats/token, bits with ``base=2``."""
        return self.key_entropy(base) / self.segment_length

    def position_entropies(self, base: float = math.e) -> np.ndarray:
        """Exact floor of each position of a segment, float64 ``(segment_length,)``.

        Entry ``j < key_length`` is ``H(key token j | key tokens before it)``; the value
        positions have floor 0 (a value is a function of its key). They sum to ``H(key)``.
        """
        def prefix_entropy(masses: np.ndarray) -> float:
            masses = masses[masses > 0]
            return float(-(masses * np.log(masses)).sum())

        h = [prefix_entropy(self._prefix_tables[j][1]) for j in range(self.key_length + 1)]
        keys = np.diff(h) / log_base(base)
        return np.concatenate([keys, np.zeros(self.value_length)])

    def tail_mass(self, K: object) -> np.ndarray:
        """Probability of the keys ranked beyond ``K``: ``sum_{r > K} p_r``, for each ``K``.

        The loss a model leaves on the values is proportional to this when it has stored
        the ``K`` most frequent keys: the power law ``∝ K**(1 - s)`` behind the chapter.
        """
        k = np.asarray(K)
        if not np.issubdtype(k.dtype, np.integer) or np.any(k < 0):
            raise ValueError(f"K must be non-negative integer key counts; got {K!r}")
        k = np.minimum(k, self.n_keys)
        cumulative = np.concatenate([[0.0], self._cumulative])
        return 1.0 - cumulative[k]

    # --- samples -----------------------------------------------------------------------

    def sample_keys(self, n_segments: int, generator: torch.Generator | None = None
                    ) -> torch.Tensor:
        """Ranks (0-based) of ``n_segments`` keys drawn from the Zipf law: LongTensor."""
        n = require_int("n_segments", n_segments, 1)
        u = torch.rand(n, generator=generator, dtype=torch.float64).numpy()
        ranks = np.searchsorted(self._cumulative, u, side="right")
        return torch.from_numpy(np.minimum(ranks, self.n_keys - 1))

    def segments(self, ranks: torch.Tensor) -> torch.Tensor:
        """The tokens of the keys with these ranks: LongTensor ``(*ranks.shape, segment_length)``."""
        r = ranks.detach().cpu().numpy() if isinstance(ranks, torch.Tensor) else np.asarray(ranks)
        if not np.issubdtype(r.dtype, np.integer):
            raise TypeError(f"ranks must hold integer key ranks; got dtype {r.dtype}")
        bad = (r < 0) | (r >= self.n_keys)
        if bad.any():  # a negative rank would index from the end, silently
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"ranks has {int(r[where])} at position {where}; expected key "
                             f"ranks in [0, n_keys={self.n_keys})")
        tokens = np.concatenate([self.keys[r], self.values[r]], axis=-1).astype(np.int64)
        return torch.from_numpy(tokens)

    def sample(self, n_tokens: int, seed: int = 0) -> torch.Tensor:
        """A sample that starts at a segment boundary: LongTensor ``(n_tokens,)``.

        Same ``seed`` → same sample. Whole segments are drawn and the last one cut at
        ``n_tokens``.
        """
        n = require_int("n_tokens", n_tokens, 1)
        generator = torch.Generator().manual_seed(require_int("seed", seed, 0))
        ranks = self.sample_keys(-(-n // self.segment_length), generator)
        return self.segments(ranks).reshape(-1)[:n]

    def token_log_probs(self, tokens: object) -> torch.Tensor:
        """``log P(x_t | the tokens of its segment before it)`` for every ``t``: float64 ``(n,)``.

        ``tokens`` must start at a segment boundary. A key prefix that no key has, or
        a wrong value token, gets ``-inf``.
        """
        x = self._as_tokens(tokens)
        L, k, V = self.segment_length, self.key_length, self.vocab_size
        n_seg = -(-len(x) // L)
        padded = np.zeros(n_seg * L, dtype=np.int64)
        padded[: len(x)] = x
        seg = padded.reshape(n_seg, L)
        out = np.empty((n_seg, L))
        code = np.zeros(n_seg, dtype=np.int64)
        mass = np.ones(n_seg)
        for j in range(k):  # key token j: mass of the (j+1)-prefix over that of the j-prefix
            code = code * V + seg[:, j]
            unique, masses = self._prefix_tables[j + 1]
            at = np.clip(np.searchsorted(unique, code), 0, len(unique) - 1)
            found = unique[at] == code
            new_mass = np.where(found, masses[at], 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[:, j] = np.where(mass > 0, np.log(new_mass) - np.log(mass), -np.inf)
            mass = new_mass
        rank = np.full(n_seg, -1)
        valid = mass > 0
        order = np.argsort(self._codes)
        at = np.searchsorted(self._codes[order], code[valid])
        rank[valid] = order[np.clip(at, 0, len(order) - 1)]
        for i in range(self.value_length):
            right = valid & (self.values[np.maximum(rank, 0), i] == seg[:, k + i])
            out[:, k + i] = np.where(right, 0.0, -np.inf)
        return torch.from_numpy(out.reshape(-1)[: len(x)])

    def cross_entropy(self, tokens: object, base: float = math.e) -> float:
        """Mean surprisal of ``tokens`` under the true model: nats/token (bits with base=2).

        For a long sample, or for whole segments scored equally, it converges to
        :meth:`entropy_rate`.
        """
        return float(-self.token_log_probs(tokens).mean()) / log_base(base)

    def _as_tokens(self, tokens: object) -> np.ndarray:
        x = tokens.detach().cpu().numpy() if isinstance(tokens, torch.Tensor) else np.asarray(tokens)
        if x.ndim != 1 or not np.issubdtype(x.dtype, np.integer) or len(x) == 0:
            raise ValueError(f"tokens must be a non-empty 1-D array of integer token ids; got "
                             f"shape {x.shape} and dtype {x.dtype}")
        bad = (x < 0) | (x >= self.vocab_size)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"tokens has id {int(x[i])} at position {i}; expected ids in "
                             f"[0, {self.vocab_size})")
        return x.astype(np.int64)

