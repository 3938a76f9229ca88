"""course_lib.data.tokens: the token cache (atomic, keyed, memory-mapped) and LM batches."""

import numpy as np
import pytest
import torch

from course_lib.core import atomic
from course_lib.core.seeding import make_generator
from course_lib.data import tokens as data
from course_lib.data.tokenizers import CharTokenizer

TEXT = "to be, or not to be: that is the question.\n" * 50


@pytest.fixture
def tok():
    return CharTokenizer.from_text(TEXT)


def cache_files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_encode_corpus_writes_a_memmap_and_reuses_it(tmp_path, tok, monkeypatch):
    ids = data.encode_corpus(TEXT, tok, cache_dir=tmp_path, name="hamlet")
    assert isinstance(ids, np.memmap) and ids.dtype == np.uint16 and ids.shape == (len(TEXT),)
    assert tok.decode(ids.tolist()) == TEXT
    names = cache_files(tmp_path)
    assert len(names) == 2 and names[0].startswith("hamlet-") and names[0].endswith("-v1.bin")
    info = data.token_file_info(ids)
    assert info["n_tokens"] == info["n_chars"] == len(TEXT) and info["vocab_size"] == tok.vocab_size
    monkeypatch.setattr(tok, "encode_array", lambda text: pytest.fail("encoded twice"))
    again = data.encode_corpus(TEXT, tok, cache_dir=tmp_path, name="hamlet")
    assert np.array_equal(again, ids)


def test_key_depends_on_text_tokenizer_and_name(tmp_path, tok):
    data.encode_corpus(TEXT, tok, cache_dir=tmp_path)
    data.encode_corpus(TEXT[:-1], tok, cache_dir=tmp_path)
    data.encode_corpus(TEXT, CharTokenizer(tok.chars + ("#",)), cache_dir=tmp_path)
    data.encode_corpus(TEXT, tok, cache_dir=tmp_path, name="other")
    assert len(cache_files(tmp_path)) == 8


def test_interrupted_write_leaves_nothing_and_the_next_call_succeeds(tmp_path, tok, monkeypatch):
    def write_half_then_die(path, ids):
        with atomic.atomic_open(path, "wb") as handle:
            handle.write(ids[: len(ids) // 2].tobytes())
            raise KeyboardInterrupt  # Ctrl-C in the middle of the write

    monkeypatch.setattr(data, "_write_array", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        data.encode_corpus(TEXT, tok, cache_dir=tmp_path)
    assert cache_files(tmp_path) == []  # no partial array, no temporary file
    monkeypatch.undo()
    # A process killed outright (SIGKILL) cannot clean up: its temporary file stays.
    stray = tmp_path / ".corpus-0123.bin.abcd.tmp"
    stray.write_bytes(b"\x00" * 7)
    ids = data.encode_corpus(TEXT, tok, cache_dir=tmp_path)
    assert tok.decode(ids.tolist()) == TEXT
    assert len(cache_files(tmp_path)) == 3 and stray.read_bytes() == b"\x00" * 7


def test_a_truncated_or_orphaned_array_is_rewritten(tmp_path, tok):
    ids = data.encode_corpus(TEXT, tok, cache_dir=tmp_path)
    bin_path = tmp_path / [n for n in cache_files(tmp_path) if n.endswith(".bin")][0]
    del ids
    bin_path.write_bytes(bin_path.read_bytes()[:100])  # a file cut short by a crash
    assert tok.decode(data.encode_corpus(TEXT, tok, cache_dir=tmp_path).tolist()) == TEXT
    bin_path.with_suffix(".json").unlink()  # killed between the array and its metadata
    assert tok.decode(data.encode_corpus(TEXT, tok, cache_dir=tmp_path).tolist()) == TEXT


def test_default_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(data.CACHE_ENV_VAR, str(tmp_path / "cache"))
    assert data.default_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv(data.CACHE_ENV_VAR)
    assert data.default_cache_dir().parts[-2:] == (".cache", "course_lib")


def test_token_dtype():
    assert data.token_dtype(50257) == np.uint16 and data.token_dtype(65536) == np.uint16
    assert data.token_dtype(65537) == np.uint32


def test_train_val_split_is_contiguous():
    tokens = np.arange(1000, dtype=np.uint16)
    train, val = data.train_val_split(tokens, val_fraction=0.1)
    assert len(train) == 900 and len(val) == 100
    assert np.array_equal(np.concatenate([train, val]), tokens)
    assert train.base is tokens  # a view, no copy


def test_get_batch_shapes_shift_and_reproducibility():
    tokens = np.arange(500, dtype=np.uint16)
    x, y = data.get_batch(tokens, 8, 16, make_generator(0))
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y - x, torch.ones_like(x))
    x2, _ = data.get_batch(tokens, 8, 16, make_generator(0))
    assert torch.equal(x, x2)
    xt, yt = data.get_batch(torch.from_numpy(tokens.astype(np.int64)), 8, 16, make_generator(0))
    assert torch.equal(xt, x) and torch.equal(yt, y)


def test_get_batch_covers_the_last_window():
    tokens = np.arange(11, dtype=np.uint16)  # exactly one window of 10 + target
    x, y = data.get_batch(tokens, 3, 10, make_generator(1))
    assert (x[:, 0] == 0).all() and (y[:, -1] == 10).all()


def test_train_val_batches_draw_from_each_split_and_transform():
    train, val = np.arange(0, 500, dtype=np.uint16), np.arange(1000, 1100, dtype=np.uint16)
    batches = data.train_val_batches(train, val, 4, 8)
    x, y = batches("train", make_generator(0))
    assert torch.equal(x, data.get_batch(train, 4, 8, make_generator(0))[0])
    assert (batches("val", make_generator(0))[0] >= 1000).all() and torch.equal(x + 1, y)
    flipped = data.train_val_batches(train, val, 4, 8, transform=lambda x, g: (x, -x, x))
    assert [tuple(t.shape) for t in flipped("val", make_generator(0))] == [(4, 8)] * 3
    with pytest.raises(ValueError, match="val_tokens: tokens has 8 tokens"):
        data.train_val_batches(train, val[:8], 4, 8)
    with pytest.raises(ValueError, match="split must be 'train' or 'val'; got 'test'"):
        batches("test", make_generator(0))


def test_sequential_batches_cover_the_split_once():
    tokens = np.arange(103, dtype=np.uint16)
    batches = list(data.sequential_batches(tokens, batch_size=4, context_length=10))
    xs = torch.cat([x for x, _ in batches])
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    assert torch.equal(xs.flatten(), torch.arange(100))
    assert all(torch.equal(x + 1, y) for x, y in batches)


BAD = [
    (lambda p, t: data.encode_corpus("", t, cache_dir=p), ValueError, ["text", "non-empty"]),
    (lambda p, t: data.encode_corpus(TEXT, t, cache_dir=p, name="../x"), ValueError,
     ["name", "'../x'", "file name"]),
    (lambda p, t: data.encode_corpus(TEXT, "gpt2", cache_dir=p), TypeError,
     ["tokenizer", ".vocab_size", "str"]),
    (lambda p, t: data.token_dtype(0), ValueError, ["vocab_size", "[1, 2**32]", "0"]),
    (lambda p, t: data.token_file_info(np.zeros(3)), ValueError, ["encode_corpus", "ndarray"]),
    (lambda p, t: data.train_val_split(np.arange(10), 1.0), ValueError,
     ["val_fraction", "(0, 1)", "1.0"]),
    (lambda p, t: data.train_val_split(np.arange(10), 0.05), ValueError,
     ["10 tokens", "at least 2"]),
    (lambda p, t: data.train_val_split([1, 2, 3]), TypeError, ["tokens", "1-D", "list"]),
    (lambda p, t: data.get_batch(np.arange(8), 2, 8, make_generator(0)), ValueError,
     ["8 tokens", "context_length=8", "at least 9"]),
    (lambda p, t: data.get_batch(np.arange(80), 0, 8, make_generator(0)), ValueError,
     ["batch_size", "positive integer", "0"]),
    (lambda p, t: data.get_batch(np.arange(80), 2, 8, 0), TypeError,
     ["generator", "torch.Generator", "int"]),
    (lambda p, t: data.get_batch(np.zeros((2, 40)), 2, 8, make_generator(0)), TypeError,
     ["tokens", "1-D", "(2, 40)"]),
]


@pytest.mark.parametrize("call, exc, words", BAD, ids=[f"case{i}" for i in range(len(BAD))])
def test_bad_input_gets_a_clear_error(tmp_path, tok, call, exc, words):
    with pytest.raises(exc) as info:
        call(tmp_path, tok)
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"


def test_atomic_open_rejects_other_modes(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'; got 'a'"):
        with atomic.atomic_open(tmp_path / "x", "a"):
            pass


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_reach_the_gpu():
    tokens = np.arange(500, dtype=np.uint16)
    x, y = data.get_batch(tokens, 8, 16, make_generator(0), device="cuda")
    assert x.device.type == y.device.type == "cuda" and x.dtype == torch.long
    cpu_x, _ = data.get_batch(tokens, 8, 16, make_generator(0))
    assert torch.equal(x.cpu(), cpu_x)  # same windows wherever they land
    first, _ = next(data.sequential_batches(tokens, 4, 16, device="cuda"))
    assert first.is_cuda


def test_get_rows_draws_the_same_rows_of_each_tensor_and_refuses_empty_input():
    from course_lib.core.seeding import make_generator
    from course_lib.data.tokens import get_rows

    x, y = torch.arange(10).reshape(5, 2), torch.arange(10, 20).reshape(5, 2)
    xb, yb = get_rows((x, y), 7, make_generator(0))
    assert xb.shape == (7, 2) and torch.equal(yb - xb, torch.full((7, 2), 10))
    assert torch.equal(get_rows(x, 7, make_generator(0)), xb)
    with pytest.raises(ValueError, match="non-empty tensors with one first dimension"):
        get_rows((x, y[:3]), 2, make_generator(0))
    with pytest.raises(ValueError, match="batch_size must be >= 1; got 0"):
        get_rows(x, 0, make_generator(0))
