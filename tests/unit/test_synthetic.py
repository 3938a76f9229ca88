"""course_lib.data.synthetic: a Markov language whose entropy rate is known exactly."""

import math

import numpy as np
import pytest
import torch

from course_lib.data.synthetic import SYMBOLS, MarkovLanguage
from course_lib.data.tokenizers import CharTokenizer


@pytest.fixture(scope="module")
def lang():
    return MarkovLanguage()


def test_structure(lang):
    assert (lang.vocab_size, lang.order, lang.n_contexts) == (64, 2, 64**2)
    assert lang.successors.shape == lang.probs.shape == (4096, 8)
    assert np.allclose(lang.probs.sum(1), 1) and (lang.probs > 0).all()
    assert all(len(set(row)) == 8 for row in lang.successors.tolist())  # distinct
    backbone = (np.arange(4096) % 64 + 1) % 64
    assert (lang.successors == backbone[:, None]).any(1).all()  # irreducible by design


def test_stationary_distribution_is_stationary(lang):
    pi = lang.stationary
    assert pi.min() >= 0 and math.isclose(pi.sum(), 1, rel_tol=1e-12)
    assert np.abs(lang.transition_matrix().T @ pi - pi).sum() < 1e-12


def test_same_seed_same_language_other_seed_other_language(lang):
    assert np.array_equal(MarkovLanguage().probs, lang.probs)
    assert not np.array_equal(MarkovLanguage(seed=1).probs, lang.probs)


def test_entropy_rate_matches_closed_form_on_a_two_state_chain():
    # Order 1, two tokens, both allowed after each: P = [[1-a, a], [b, 1-b]].
    chain = MarkovLanguage(vocab_size=2, order=1, branching=2, seed=5)
    P = chain.probs  # successors are sorted, so row c is P[c, :]
    a, b = P[0, 1], P[1, 0]
    pi = np.array([b, a]) / (a + b)
    h = lambda p: -(p * math.log(p) + (1 - p) * math.log(1 - p))  # noqa: E731
    expected = pi[0] * h(a) + pi[1] * h(b)
    assert math.isclose(chain.entropy_rate(), expected, rel_tol=1e-12)
    assert math.isclose(chain.entropy_rate(base=2), expected / math.log(2), rel_tol=1e-12)


def test_conditional_entropies_fall_to_the_entropy_rate(lang):
    h = [lang.conditional_entropy(m) for m in range(4)]
    assert h[0] > h[1] > h[2] and h[2] == h[3] == lang.entropy_rate()
    u = lang.unigram()
    assert math.isclose(h[0], -(u * np.log(u)).sum(), rel_tol=1e-12)
    assert 1.6 < lang.entropy_rate() < 1.8  # the default language: about 1.71 nats/token


def test_long_sample_cross_entropy_converges_to_entropy_rate(lang):
    x = lang.sample(400_000, seed=11)
    assert x.dtype == torch.long and x.shape == (400_000,)
    surprisal = -lang.token_log_probs(x).numpy()
    assert np.isfinite(surprisal).all()  # every step is allowed by the chain
    batch_means = surprisal[: len(surprisal) // 100 * 100].reshape(100, -1).mean(1)
    stderr = batch_means.std(ddof=1) / math.sqrt(100)
    gap = abs(lang.cross_entropy(x) - lang.entropy_rate())
    assert gap < 4 * stderr and gap < 0.01, (gap, stderr)
    short_gaps = [abs(lang.cross_entropy(lang.sample(300, seed=s)) - lang.entropy_rate())
                  for s in range(20)]
    assert gap < np.mean(short_gaps) / 10  # longer samples are closer


def test_sample_is_reproducible_and_seed_dependent(lang):
    assert torch.equal(lang.sample(1000, seed=3), lang.sample(1000, seed=3))
    assert not torch.equal(lang.sample(1000, seed=3), lang.sample(1000, seed=4))
    assert lang.sample(1, seed=0).shape == (1,)


def test_empirical_unigram_matches_stationary(lang):
    x = lang.sample(200_000, seed=1).numpy()
    freq = np.bincount(x, minlength=64) / len(x)
    assert np.abs(freq - lang.unigram()).max() < 0.003


def test_impossible_token_has_infinite_surprisal(lang):
    x = lang.sample(10, seed=0).clone()
    context = x[0].item() * 64 + x[1].item()
    x[2] = next(t for t in range(64) if t not in lang.successors[context])
    assert lang.token_log_probs(x)[0] == -math.inf
    assert lang.cross_entropy(x) == math.inf


def test_text_round_trip(lang):
    x = lang.sample(300, seed=2)
    text = lang.to_text(x)
    assert len(text) == 300 and set(text) <= set(SYMBOLS[:64])
    assert torch.equal(lang.from_text(text), x)
    assert len(SYMBOLS) == len(set(SYMBOLS)) >= 256 and not any(c.isspace() for c in SYMBOLS)
    assert list(SYMBOLS) == sorted(SYMBOLS)


def test_character_tokenizer_gives_the_token_ids_back(lang):
    x = lang.sample(20_000, seed=5)
    text = lang.to_text(x)
    assert lang.tokenizer().encode(text) == x.tolist()
    assert CharTokenizer.from_text(text).encode(text) == x.tolist()  # all 64 occur
    assert lang.tokenizer().vocab_size == 64


def test_difficulty_knobs_move_the_entropy_rate():
    base = MarkovLanguage(vocab_size=32, order=1).entropy_rate()
    assert MarkovLanguage(vocab_size=32, order=1, branching=4).entropy_rate() < base
    assert MarkovLanguage(vocab_size=32, order=1, concentration=0.2).entropy_rate() < base
    assert MarkovLanguage(vocab_size=32, order=1, concentration=50).entropy_rate() \
        > base > MarkovLanguage(vocab_size=32, order=1, branching=1).entropy_rate() == 0


BAD = [
    (lambda L: MarkovLanguage(vocab_size=1), ValueError, ["vocab_size", ">= 2", "1"]),
    (lambda L: MarkovLanguage(order=0), ValueError, ["order", ">= 1", "0"]),
    (lambda L: MarkovLanguage(branching=65), ValueError, ["branching", "[1, 64]", "65"]),
    (lambda L: MarkovLanguage(concentration=0), ValueError, ["concentration", "> 0"]),
    (lambda L: MarkovLanguage(vocab_size=2.5), TypeError, ["vocab_size", "integer", "2.5"]),
    (lambda L: MarkovLanguage(vocab_size=256, order=3), ValueError,
     ["256**3", "16,777,216", "at most"]),
    (lambda L: L.sample(0), ValueError, ["n_tokens", ">= 1", "0"]),
    (lambda L: L.sample(10, seed=-1), ValueError, ["seed", ">= 0", "-1"]),
    (lambda L: L.cross_entropy([1, 2]), ValueError, ["tokens", "2 token(s)", "order = 2"]),
    (lambda L: L.cross_entropy([1, 2, 64]), ValueError, ["tokens", "id 64", "position 2", "[0, 64)"]),
    (lambda L: L.cross_entropy(torch.rand(5)), ValueError, ["tokens", "integer", "float32"]),
    (lambda L: L.entropy_rate(base=1), ValueError, ["base", "other than 1"]),
    (lambda L: L.conditional_entropy(-1), ValueError, ["context_length", ">= 0"]),
    (lambda L: L.from_text("!# ,"), ValueError, ["' '", "64 symbols"]),
    (lambda L: MarkovLanguage(vocab_size=400, order=1).to_text([0]), ValueError,
     ["vocab_size 400", "no text form"]),
]


@pytest.mark.parametrize("call, exc, words", BAD, ids=[f"case{i}" for i in range(len(BAD))])
def test_bad_input_gets_a_clear_error(lang, call, exc, words):
    with pytest.raises(exc) as info:
        call(lang)
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"
