"""Bad input to the data layer (token arrays, tokenizers, the synthetic languages, typos,
corpora) gets an error that names the argument, shows the value and says what was
expected — instead of a wrapped-around id, a NaN entropy or an exhausted memory."""

import functools
import math
import tempfile

import numpy as np
import pytest
import torch
from bad_input_table import assert_clear_error, case_ids

from course_lib.core.seeding import make_generator
from course_lib.data import corpora, keyvalue, perturb, synthetic, tokenizers, tokens

INF, NAN = math.inf, math.nan
TEXT = "the cat sat on the mat; the dog sat on the log. " * 20
CHARS = tokenizers.CharTokenizer("abc")
MARKOV = synthetic.MarkovLanguage(vocab_size=8, order=1, branching=2)
KV = keyvalue.KeyValueLanguage(vocab_size=8, key_length=2, value_length=1, n_keys=20)
STREAM = np.arange(100, dtype=np.int64) % 7


@functools.cache
def bpe() -> tokenizers.BPETokenizer:
    return tokenizers.train_bpe(TEXT, 270)


class OffByOne:
    """A broken tokenizer whose ids run one past its vocabulary."""

    vocab_size, fingerprint = 4, "off-by-one"

    def encode(self, text: str) -> list[int]:
        return [1, 2, 4]


def window_batches(val_tokens):
    return tokens.train_val_batches(STREAM, val_tokens, 2, 8)


CASES = [
    # --- token arrays -----------------------------------------------------------------
    (lambda: tokens.token_dtype(2**32 + 1), ValueError, ["vocab_size", "[1, 2**32]"]),
    (lambda: tokens.token_dtype(300.0), TypeError, ["vocab_size", "integer", "300.0"]),
    (lambda: tokens.to_token_array([5, 70_000], 70_000), ValueError,
     ["ids", "token id 70000", "position 1", "[0, 70000)", "uint32"]),
    (lambda: tokens.to_token_array([3, -1], 10), ValueError,
     ["ids", "token id -1", "position 1", "uint16", "wrapping"]),
    (lambda: tokens.to_token_array([[1, 2]], 10), TypeError, ["ids", "1-D", "(1, 2)"]),
    (lambda: tokens.to_token_array([0.5], 10), TypeError, ["ids", "integer", "float64"]),
    (lambda: tokens.encode_corpus("abc", OffByOne(), cache_dir=tempfile.gettempdir()),
     ValueError, ["tokenizer", "token id 4", "position 2", "vocab_size=4"]),
    (lambda: tokens.train_val_split(STREAM, NAN), ValueError, ["val_fraction", "finite", "nan"]),
    (lambda: tokens.train_val_split(STREAM, "0.1"), TypeError, ["val_fraction", "'0.1'"]),
    (lambda: tokens.train_val_split(STREAM, 0.0), ValueError, ["val_fraction", "(0, 1)", "0.0"]),
    (lambda: tokens.get_batch(STREAM.astype(float), 2, 8, make_generator(0)), TypeError,
     ["tokens", "integer", "float64"]),
    (lambda: tokens.get_batch(torch.arange(50.0), 2, 8, make_generator(0)), TypeError,
     ["tokens", "integer", "torch.float32"]),
    (lambda: tokens.get_batch(STREAM, 2.0, 8, make_generator(0)), TypeError,
     ["batch_size", "positive integer", "2.0"]),
    (lambda: tokens.get_batch(STREAM, 2, 0, make_generator(0)), ValueError,
     ["context_length", "positive integer", "0"]),
    (lambda: tokens.sequential_batches(STREAM[:4], 2, 8), ValueError,
     ["4 tokens", "context_length=8", "at least 9"]),
    (lambda: tokens.sequential_batches(STREAM, -1, 8), ValueError,
     ["batch_size", "positive integer", "-1"]),
    (lambda: window_batches(STREAM[:5]), ValueError, ["val_tokens", "5 tokens", "at least 9"]),
    (lambda: window_batches(STREAM)("test", make_generator(0)), ValueError,
     ["split", "'train' or 'val'", "'test'"]),
    # --- tokenizers ---------------------------------------------------------------------
    (lambda: tokenizers.CharTokenizer(""), ValueError, ["chars", "non-empty"]),
    (lambda: tokenizers.CharTokenizer(["ab"]), ValueError, ["chars", "single characters", "'ab'"]),
    (lambda: tokenizers.CharTokenizer.from_text(""), ValueError, ["text", "non-empty"]),
    (lambda: CHARS.encode("abd"), ValueError, ["character 'd'", "position 2", "3 characters"]),
    (lambda: CHARS.encode(123), TypeError, ["text", "str", "int"]),
    (lambda: CHARS.decode([0, 3]), ValueError, ["ids", "3", "position 1", "[0, 3)"]),
    (lambda: CHARS.decode([0, -1]), ValueError, ["ids", "-1", "position 1"]),
    (lambda: CHARS.decode([0.0]), ValueError, ["ids", "0.0", "position 0", "integer"]),
    (lambda: CHARS.decode([True]), ValueError, ["ids", "True", "integer"]),
    (lambda: tokenizers.train_bpe(TEXT, 2**31), ValueError,
     ["vocab_size", "at most 1,048,576", "2,147,483,648", "exhaust memory"]),
    (lambda: tokenizers.train_bpe(TEXT, 300.0), TypeError, ["vocab_size", "integer", "300.0"]),
    (lambda: tokenizers.train_bpe(TEXT, 200), ValueError, ["vocab_size", "at least 258", "200"]),
    (lambda: tokenizers.train_bpe(TEXT, 300, min_frequency=-1), ValueError,
     ["min_frequency", "non-negative", "-1"]),
    (lambda: tokenizers.train_bpe(TEXT, 300, special_tokens="<eos>"), TypeError,
     ["special_tokens", "one string", "'<eos>'"]),
    (lambda: tokenizers.train_bpe(TEXT, 300, special_tokens=("<a>", "<a>")), ValueError,
     ["special_tokens", "duplicates"]),
    (lambda: tokenizers.train_bpe(TEXT, 300, special_tokens=("",)), ValueError,
     ["special_tokens", "non-empty strings"]),
    (lambda: tokenizers.train_bpe([], 300), ValueError, ["texts", "non-empty"]),
    (lambda: tokenizers.train_wordpiece(TEXT, 10**7), ValueError,
     ["vocab_size", "at most", "10,000,000", "exhaust memory"]),
    (lambda: tokenizers.train_wordpiece(TEXT, 40, model_max_length=1), ValueError,
     ["model_max_length", ">= 2", "1"]),
    (lambda: bpe().truncated(10), ValueError, ["vocab_size", "for this tokenizer", "10"]),
    (lambda: bpe().token(10**6), ValueError, ["ids", "1000000", f"[0, {bpe().vocab_size})"]),
    (lambda: tokenizers.load_tokenizer("/nonexistent-dir/tok.json"), FileNotFoundError,
     ["/nonexistent-dir/tok.json", "does not exist"]),
    # --- the Markov language ------------------------------------------------------------
    (lambda: synthetic.MarkovLanguage(vocab_size=1), ValueError, ["vocab_size", ">= 2", "1"]),
    (lambda: synthetic.MarkovLanguage(order=0), ValueError, ["order", ">= 1", "0"]),
    (lambda: synthetic.MarkovLanguage(8, 1, branching=9), ValueError,
     ["branching", "[1, 8]", "9"]),
    (lambda: synthetic.MarkovLanguage(concentration=INF), ValueError,
     ["concentration", "finite", "inf"]),
    (lambda: synthetic.MarkovLanguage(concentration=0.0), ValueError, ["concentration", "> 0"]),
    (lambda: synthetic.MarkovLanguage(8, 1, 4, concentration=1e-3), ValueError,
     ["concentration=0.001", "underflowed", "context 0"]),
    (lambda: synthetic.MarkovLanguage(seed=-1), ValueError, ["seed", ">= 0", "-1"]),
    (lambda: synthetic.MarkovLanguage(2**11, 2), ValueError,
     ["2048**2", "4,194,304 contexts", "at most 1,048,576"]),
    (lambda: synthetic.MarkovLanguage(2**20, 1, 64), ValueError,
     ["transition probabilities", "67,108,864", "at most 16,777,216", "memory"]),
    (lambda: MARKOV.token_log_probs([0, 9]), ValueError, ["tokens", "id 9", "position 1", "[0, 8)"]),
    (lambda: MARKOV.token_log_probs([[0, 1]]), ValueError, ["tokens", "1-D", "(1, 2)"]),
    (lambda: MARKOV.token_log_probs([3]), ValueError, ["tokens", "1 token", "order = 1"]),
    (lambda: MARKOV.to_text([0, 8]), ValueError, ["tokens", "id 8", "position 1", "[0, 8)"]),
    (lambda: MARKOV.to_text([-1]), ValueError, ["tokens", "id -1", "position 0"]),
    (lambda: MARKOV.from_text("!~"), ValueError, ["character '~'", "8 symbols"]),
    (lambda: MARKOV.conditional_entropy(-1), ValueError, ["context_length", ">= 0", "-1"]),
    (lambda: MARKOV.sample(0), ValueError, ["n_tokens", ">= 1", "0"]),
    (lambda: MARKOV.entropy_rate(base=1), ValueError, ["base", "other than 1"]),
    # --- the key-value language ---------------------------------------------------------
    (lambda: keyvalue.KeyValueLanguage(vocab_size=70_000), ValueError,
     ["vocab_size", "[2, 65536]", "70000"]),
    (lambda: keyvalue.KeyValueLanguage(vocab_size=65_536, key_length=4), ValueError,
     ["65536**4", "2**62"]),
    (lambda: keyvalue.KeyValueLanguage(8, 2, 1, n_keys=20, zipf_exponent=NAN), ValueError,
     ["zipf_exponent", "nan"]),
    (lambda: KV.segments(torch.tensor([3, 20])), ValueError,
     ["ranks", "20", "position (1,)", "n_keys=20"]),
    (lambda: KV.segments(torch.tensor([-1])), ValueError, ["ranks", "-1", "[0, n_keys=20)"]),
    (lambda: KV.segments(torch.tensor([0.5])), TypeError, ["ranks", "integer", "float32"]),
    (lambda: KV.tail_mass(-1), ValueError, ["K", "non-negative", "-1"]),
    (lambda: KV.tail_mass(1.5), ValueError, ["K", "integer", "1.5"]),
    (lambda: KV.token_log_probs([]), ValueError, ["tokens", "non-empty"]),
    (lambda: KV.token_log_probs([0, 8]), ValueError, ["tokens", "id 8", "position 1"]),
    (lambda: KV.sample_keys(0), ValueError, ["n_segments", ">= 1", "0"]),
    # --- typos and corpora --------------------------------------------------------------
    (lambda: perturb.add_typos(5, 0.1), TypeError, ["text", "string", "int"]),
    (lambda: perturb.add_typos("hello", 1.5), ValueError, ["rate", "[0, 1]", "1.5"]),
    (lambda: perturb.add_typos("hello", NAN), ValueError, ["rate", "finite", "nan"]),
    (lambda: perturb.add_typos("hello", 0.1, seed=-1), ValueError, ["seed", "non-negative", "-1"]),
    (lambda: perturb.add_typos("hello", 0.1, seed="a"), TypeError, ["seed", "'a'"]),
    (lambda: corpora.load_corpus(123), TypeError, ["name_or_path", "int"]),
    (lambda: corpora.load_corpus("no-such-corpus"), ValueError,
     ["'no-such-corpus'", "Known corpora", "shakespeare"]),
    (lambda: corpora.scaling_corpus(1), ValueError, ["val_every", ">= 2", "1"]),
    (lambda: corpora.scaling_corpus(2.0), TypeError, ["val_every", "integer", "2.0"]),
    (lambda: corpora.data_package_dir("x"), ValueError, ["import_name", "'x'"]),
    (lambda: corpora.wordnet_categories("noun.person"), ValueError,
     ["categories", "non-empty sequence", "'noun.person'"]),
    (lambda: corpora.wordnet_categories(("noun.person", "noun.person")), ValueError,
     ["categories", "duplicates"]),
    (lambda: corpora.wordnet_categories(("noun.person", "noun.animal"), n_test=1), ValueError,
     ["n_test", ">= 2", "1"]),
]


@pytest.mark.parametrize("call, exc, words", CASES, ids=case_ids(CASES, "data"))
def test_bad_input_gets_a_clear_error(call, exc, words):
    assert_clear_error(call, exc, words)


# NumPy scalars are numbers: everywhere a Python int or float is accepted, so are they.
ACCEPTED = [
    lambda: tokens.token_dtype(np.int64(300)),
    lambda: tokens.train_val_split(STREAM, np.float32(0.25)),
    lambda: tokens.get_batch(STREAM, np.int64(2), np.int32(8), make_generator(0)),
    lambda: list(tokens.sequential_batches(STREAM, np.int64(4), np.int64(8))),
    lambda: CHARS.decode([np.int64(0), np.int32(2)]),
    lambda: bpe().token(np.int64(65)),
    lambda: tokenizers.train_bpe(TEXT, np.int64(265)),
    lambda: MARKOV.to_text(np.array([0, 7], dtype=np.uint8)),
    lambda: perturb.add_typos("hello", np.float32(0.5), seed=np.int64(1)),
    lambda: tokens.to_token_array(np.array([1, 2], dtype=np.uint8), np.int64(3)),
]


@pytest.mark.parametrize("call", ACCEPTED, ids=case_ids(ACCEPTED, "numpy"))
def test_numpy_scalars_are_accepted(call):
    call()


def test_token_ids_keep_their_value_in_the_smallest_unsigned_dtype():
    big = tokens.to_token_array([0, 65_535, 65_536, 69_999], 70_000)
    assert big.dtype == np.uint32 and big.tolist() == [0, 65_535, 65_536, 69_999]
    small = tokens.to_token_array(torch.tensor([0, 65_535]), 65_536)
    assert small.dtype == np.uint16 and small.tolist() == [0, 65_535]
    assert tokens.to_token_array([], 10).dtype == np.uint16


def test_uint16_and_uint32_tensors_make_int64_batches():
    for dtype in (np.uint16, np.uint32):
        stream = torch.from_numpy((np.arange(60) + 60_000).astype(dtype))
        x, y = tokens.get_batch(stream, 2, 8, make_generator(0))
        assert x.dtype == torch.int64 and int(x.min()) >= 60_000 and torch.equal(x[:, 1:], y[:, :-1])


def test_probabilities_that_underflow_to_zero_give_no_nan():
    lang = synthetic.MarkovLanguage(8, 1, 4, concentration=0.003, seed=0)
    assert (lang.probs == 0).any(), "this seed is chosen to draw exact zeros"
    assert math.isfinite(lang.entropy_rate())
    logp = lang.token_log_probs(lang.sample(500, seed=1))
    assert torch.isfinite(logp).all()  # a sample never holds an impossible transition
    steep = keyvalue.KeyValueLanguage(8, 2, 1, n_keys=60, zipf_exponent=200.0)
    assert (steep.key_probs == 0).any() and math.isfinite(steep.key_entropy())


def test_chunked_successor_draws_are_the_draws_of_one_block():
    # the chunk size depends on vocab_size (memory); the language must not
    lang = synthetic.MarkovLanguage(64, 2, 8, seed=0)
    assert round(lang.entropy_rate(), 12) == round(1.7061427722030742, 12)
