"""The long-tailed key-value language: exact floors, samples that match them, clear errors."""

import math

import numpy as np
import pytest
import torch

from course_lib.data.keyvalue import KeyValueLanguage

SMALL = dict(vocab_size=8, key_length=3, value_length=2, n_keys=200, zipf_exponent=1.4)


def test_the_entropy_rate_is_the_key_entropy_spread_over_a_segment():
    lang = KeyValueLanguage(**SMALL)
    p = lang.key_probs
    assert lang.key_entropy() == pytest.approx(-(p * np.log(p)).sum(), rel=1e-12)
    assert lang.entropy_rate() * lang.segment_length == pytest.approx(lang.key_entropy())
    assert lang.entropy_rate(base=2) == pytest.approx(lang.entropy_rate() / math.log(2))


def test_position_floors_add_up_to_the_key_entropy_and_match_brute_force():
    lang = KeyValueLanguage(**SMALL)
    floors = lang.position_entropies()
    assert floors.shape == (lang.segment_length,)
    assert floors.sum() == pytest.approx(lang.key_entropy(), rel=1e-12)
    assert np.all(floors[lang.key_length:] == 0)
    # brute force: H(token j | tokens before it) from the joint law of the keys
    for j in range(lang.key_length):
        joint, prefix = {}, {}
        for key, p in zip(map(tuple, lang.keys.tolist()), lang.key_probs):
            joint[key[: j + 1]] = joint.get(key[: j + 1], 0.0) + p
            prefix[key[:j]] = prefix.get(key[:j], 0.0) + p
        h = -sum(p * math.log(p / prefix[k[:-1]]) for k, p in joint.items())
        assert floors[j] == pytest.approx(h, rel=1e-9, abs=1e-12)


def test_a_long_sample_scores_the_entropy_rate_under_the_true_model():
    lang = KeyValueLanguage(**SMALL)
    x = lang.sample(200_000, seed=3)
    surprisal = -lang.token_log_probs(x).numpy()
    assert np.isfinite(surprisal).all()
    se = surprisal.reshape(-1, lang.segment_length).sum(1).std() / math.sqrt(
        len(x) / lang.segment_length) / lang.segment_length
    assert abs(surprisal.mean() - lang.entropy_rate()) < 4 * se


def test_samples_are_reproducible_segments_of_a_key_and_its_value():
    lang = KeyValueLanguage(**SMALL)
    a, b = lang.sample(1000, seed=5), lang.sample(1000, seed=5)
    assert torch.equal(a, b) and a.dtype == torch.int64 and a.shape == (1000,)
    assert not torch.equal(a, lang.sample(1000, seed=6))
    seg = a[: 1000 // lang.segment_length * lang.segment_length].view(-1, lang.segment_length)
    keys = {tuple(k): r for r, k in enumerate(lang.keys.tolist())}
    for row in seg.tolist():
        rank = keys[tuple(row[: lang.key_length])]
        assert row[lang.key_length:] == lang.values[rank].tolist()


def test_key_frequencies_follow_the_imposed_zipf_law():
    lang = KeyValueLanguage(**SMALL)
    ranks = lang.sample_keys(400_000, torch.Generator().manual_seed(0)).numpy()
    counts = np.bincount(ranks, minlength=lang.n_keys) / len(ranks)
    top = slice(0, 10)
    assert counts[top] == pytest.approx(lang.key_probs[top], rel=0.02)
    assert lang.key_probs[1] / lang.key_probs[0] == pytest.approx(2 ** -1.4)


def test_the_tail_mass_is_a_power_law_with_exponent_one_minus_s():
    lang = KeyValueLanguage(vocab_size=64, key_length=4, value_length=1, n_keys=1_000_000,
                            zipf_exponent=1.5)
    K = np.array([100, 1000])
    tail = lang.tail_mass(K)
    assert tail[0] == pytest.approx(lang.key_probs[100:].sum(), rel=1e-9)
    slope = np.log(tail[1] / tail[0]) / np.log(10)
    assert slope == pytest.approx(1 - 1.5, abs=0.03)
    assert lang.tail_mass(np.array([0]))[0] == pytest.approx(1.0)


def test_a_wrong_value_or_an_unknown_key_is_impossible():
    lang = KeyValueLanguage(**SMALL)
    x = lang.sample(lang.segment_length, seed=0).clone()
    assert np.isfinite(lang.token_log_probs(x).numpy()).all()
    x[-1] = (x[-1] + 1) % lang.vocab_size
    assert lang.token_log_probs(x)[-1] == -math.inf


def test_keys_are_distinct_and_values_fixed_by_the_seed():
    lang, again = KeyValueLanguage(**SMALL), KeyValueLanguage(**SMALL)
    assert len({tuple(k) for k in lang.keys.tolist()}) == lang.n_keys
    assert np.array_equal(lang.values, again.values)
    other = KeyValueLanguage(**(SMALL | {"seed": 1}))
    assert not np.array_equal(lang.keys, other.keys)


@pytest.mark.parametrize("bad, message", [
    ({"vocab_size": 1}, "vocab_size must be in"),
    ({"key_length": 0}, "key_length must be >= 1"),
    ({"n_keys": 8**3 + 1}, "n_keys must be in"),
    ({"zipf_exponent": -1.0}, "zipf_exponent"),
    ({"n_keys": 2.5}, "n_keys must be an integer"),
    ({"seed": -1}, "seed must be >= 0"),
])
def test_bad_settings_are_refused_by_name(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        KeyValueLanguage(**(SMALL | bad))


@pytest.mark.parametrize("tokens, message", [
    (np.array([0, 99]), "id 99 at position 1"),
    (np.zeros((2, 2), dtype=np.int64), "1-D"),
    (np.array([], dtype=np.int64), "non-empty"),
])
def test_bad_tokens_are_refused_with_the_position(tokens, message):
    with pytest.raises(ValueError, match=message):
        KeyValueLanguage(**SMALL).token_log_probs(tokens)
