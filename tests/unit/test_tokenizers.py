"""course_lib.data.tokenizers: characters and byte-level BPE, saved and loaded."""

import json

import pytest

from course_lib.data import tokenizers
from course_lib.data.tokenizers import BPETokenizer, CharTokenizer, train_bpe

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
        "All:\nSpeak, speak.\n\n   First Citizen:\nYou are all resolved rather to die "
        "than to famish?\n\t\nAll:\nResolved. resolved.\r\n") * 40
TRICKY = "naïve café — 缩放定律 🙂\n\n\n  x\ny  \n"


@pytest.fixture(scope="module")
def bpe():
    return train_bpe(TEXT, vocab_size=300)


def test_char_round_trip_and_vocabulary():
    tok = CharTokenizer.from_text(TEXT + TRICKY)
    ids = tok.encode(TRICKY)
    assert tok.decode(ids) == TRICKY and len(ids) == len(TRICKY)
    assert tok.vocab_size == len(set(TEXT + TRICKY))
    assert list(tok.chars) == sorted(tok.chars)  # ids follow character order
    assert tok.encode_array("ea").dtype.name == "int64"


def test_char_save_load(tmp_path):
    tok = CharTokenizer.from_text(TRICKY)
    path = tok.save(tmp_path / "chars.json")
    again = CharTokenizer.load(path)
    assert again.chars == tok.chars and again.fingerprint == tok.fingerprint
    assert isinstance(tokenizers.load_tokenizer(path), CharTokenizer)


def test_bpe_learns_the_requested_vocabulary_and_round_trips(bpe):
    assert bpe.vocab_size == 300
    for text in (TEXT[:500], TRICKY, ""):  # byte level: any string, even unseen scripts
        assert bpe.decode(bpe.encode(text)) == text
    assert len(bpe.merges) == 300 - 256 - 1
    assert len(bpe.encode(TEXT)) < len(TEXT.encode("utf-8")) / 2  # merges compress
    assert bpe.token(bpe.encode(" speak")[0]).startswith("Ġ")


def test_bpe_long_text_is_cut_safely(bpe, monkeypatch):
    monkeypatch.setattr(tokenizers, "_CHUNK_CHARS", 37)  # many cuts, at odd places
    long_text = (TEXT + TRICKY) * 3
    assert bpe.encode(long_text) == bpe.backend.encode(long_text).ids


def test_bpe_training_is_deterministic(bpe):
    assert train_bpe(TEXT, vocab_size=300).fingerprint == bpe.fingerprint
    assert train_bpe([TEXT[:1000], TEXT[1000:]], vocab_size=300).vocab_size == 300


def test_truncated_equals_training_a_smaller_vocabulary(bpe):
    small = train_bpe(TEXT, vocab_size=280)
    cut = bpe.truncated(280)
    assert cut.vocab_size == 280 and cut.merges == small.merges
    assert cut.backend.get_vocab() == small.backend.get_vocab()
    assert cut.encode(TEXT) == small.encode(TEXT) and cut.fingerprint == small.fingerprint
    assert bpe.truncated(300).fingerprint == bpe.fingerprint


def test_bpe_save_load_and_transformers(bpe, tmp_path):
    path = bpe.save(tmp_path / "bpe.json")
    again = BPETokenizer.load(path)
    assert again.fingerprint == bpe.fingerprint and again.encode(TEXT) == bpe.encode(TEXT)
    assert isinstance(tokenizers.load_tokenizer(path), BPETokenizer)
    fast = bpe.to_transformers()
    assert fast("Before we proceed")["input_ids"] == bpe.encode("Before we proceed")
    assert len(fast) == bpe.vocab_size and fast.eos_token == "<|endoftext|>"


def test_different_vocabularies_have_different_fingerprints(bpe):
    assert CharTokenizer("ab").fingerprint != CharTokenizer("abc").fingerprint
    assert train_bpe(TEXT, vocab_size=290).fingerprint != bpe.fingerprint


BAD = [
    (lambda p, b: CharTokenizer("abc").encode("abd"), ValueError,
     ["'d'", "position 2", "3 characters"]),
    (lambda p, b: CharTokenizer(["ab"]), ValueError, ["single characters", "'ab'"]),
    (lambda p, b: CharTokenizer.from_text(""), ValueError, ["text", "non-empty"]),
    (lambda p, b: CharTokenizer("abc").decode([0, 3]), ValueError, ["ids", "3", "position 1", "[0, 3)"]),
    (lambda p, b: CharTokenizer("abc").encode(b"abc"), TypeError, ["text", "str", "bytes"]),
    (lambda p, b: b.decode([-1]), ValueError, ["ids", "-1", "[0, 300)"]),
    (lambda p, b: train_bpe(TEXT, vocab_size=200), ValueError, ["vocab_size", "at least 258", "200"]),
    (lambda p, b: train_bpe(TEXT, vocab_size="300"), TypeError, ["vocab_size", "integer"]),
    (lambda p, b: train_bpe([], vocab_size=300), ValueError, ["texts", "non-empty"]),
    (lambda p, b: BPETokenizer.load(p / "missing.json"), FileNotFoundError,
     ["missing.json", "does not exist"]),
    (lambda p, b: BPETokenizer.load(p / "garbage.json"), ValueError, ["garbage.json", "not valid JSON"]),
    (lambda p, b: CharTokenizer.load(p / "bpe.json"), ValueError, ["not a character tokenizer"]),
    (lambda p, b: b.truncated(100), ValueError, ["vocab_size", "[257, 300]", "100"]),
]


@pytest.mark.parametrize("call, exc, words", BAD, ids=[f"case{i}" for i in range(len(BAD))])
def test_bad_input_gets_a_clear_error(bpe, tmp_path, call, exc, words):
    (tmp_path / "garbage.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "bpe.json").write_text(json.dumps({"kind": "bpe"}), encoding="utf-8")
    with pytest.raises(exc) as info:
        call(tmp_path, bpe)
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"


def test_wordpiece_is_a_bert_tokenizer_that_round_trips(tmp_path):
    from transformers import AutoTokenizer

    texts = ["The dog barked at the cat.", "A cat sat; the dogs ran away!"] * 50
    tok = tokenizers.train_wordpiece(texts, 60, model_max_length=32)
    assert tok.convert_ids_to_tokens(range(5)) == list(tokenizers.BERT_SPECIAL_TOKENS)
    assert len(tok) <= 60 and tok.model_max_length == 32
    ids = tok("The DOGS barked")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.decode(ids, skip_special_tokens=True) == "the dogs barked"  # lower-cased
    assert any(t.startswith("##") for t in tok.get_vocab())  # word-continuation pieces
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert type(again).__name__ == "BertTokenizer" and again(texts[1]) == tok(texts[1])
    assert tokenizers.train_wordpiece(texts, 60).get_vocab() == tok.get_vocab()  # deterministic
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 32; got 8"):
        tokenizers.train_wordpiece(texts, 8)
    with pytest.raises(ValueError, match="texts must be a non-empty string"):
        tokenizers.train_wordpiece([], 60)


# --- BPE from a given vocabulary and merges (GPT-2's file format) ---------------------

_BPE_TEXT = ("the quick brown fox jumps over the lazy dog. " * 20
             + "To be, or not to be: that is the question.\n" * 10)
_BPE_SAMPLES = ["the lazy fox", "To be or not", "question: the dog!", "unseen wörds ünïcode"]


def _trained_bpe():
    from course_lib.data.tokenizers import train_bpe

    return train_bpe(_BPE_TEXT, vocab_size=300)


def test_bpe_from_its_own_vocab_and_merges_gives_the_same_ids(tmp_path):
    from course_lib.data.tokenizers import BPETokenizer

    tok = _trained_bpe()
    vocab_path, merges_path = tok.save_vocab_and_merges(tmp_path)
    rebuilt = BPETokenizer.from_vocab_and_merges(vocab_path, merges_path)
    assert rebuilt.vocab_size == tok.vocab_size and rebuilt.merges == tok.merges
    for text in _BPE_SAMPLES + ["<|endoftext|>the end"]:
        assert rebuilt.encode(text) == tok.encode(text)
        assert rebuilt.decode(rebuilt.encode(text)) == text


def test_bpe_files_read_by_transformers_gpt2_tokenizer_give_the_same_ids(tmp_path):
    """The files are GPT-2's format: transformers' GPT2Tokenizer, loaded from the folder
    as it loads GPT-2's own files, splits text exactly as the course's tokenizer does."""
    from transformers import GPT2Tokenizer

    tok = _trained_bpe()
    vocab_path, merges_path = tok.save_vocab_and_merges(tmp_path)
    assert vocab_path.parent == merges_path.parent == tmp_path
    reference = GPT2Tokenizer.from_pretrained(tmp_path)  # reads the two files
    for text in _BPE_SAMPLES:
        assert tok.encode(text) == reference.encode(text)


@pytest.mark.parametrize("vocab, merges, words", [
    (["not", "a", "dict"], "", ["must hold a non-empty JSON object"]),
    ({"a": 0, "b": 0}, "", ["ids are used twice"]),
    ({"a": 5}, "", ["token 'a' has id 5", "0 .. 0"]),
    ({"a": 0, "b": 1}, "", ["lacks 254 of the 256 byte tokens"]),
    ("BYTES", "#version: 0.2\nq zz\n", ["line 2", "'q zz'", "two tokens of the vocabulary"]),
    ("BYTES", "a b c\n", ["line 1", "'a b c'"]),
])
def test_bpe_from_bad_files_names_the_file_and_the_entry(tmp_path, vocab, merges, words):
    from tokenizers import pre_tokenizers

    from course_lib.data.tokenizers import BPETokenizer

    if vocab == "BYTES":
        vocab = {b: i for i, b in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text(merges)
    with pytest.raises(ValueError) as err:
        BPETokenizer.from_vocab_and_merges(tmp_path / "vocab.json", tmp_path / "merges.txt")
    for word in words:
        assert word in str(err.value)


def test_bpe_from_missing_files_is_a_clear_error(tmp_path):
    from course_lib.data.tokenizers import BPETokenizer

    with pytest.raises(FileNotFoundError, match="does not exist"):
        BPETokenizer.from_vocab_and_merges(tmp_path / "vocab.json", tmp_path / "merges.txt")
    _trained_bpe().save_vocab_and_merges(tmp_path)
    with pytest.raises(FileNotFoundError, match="merges.txt"):
        BPETokenizer.from_vocab_and_merges(tmp_path / "vocab.json", tmp_path / "nope.txt")
