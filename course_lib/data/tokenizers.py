"""Text → token ids and back: a character tokenizer and byte-level BPE (HF ``tokenizers``).

Both classes share one small interface, which ``course_lib.data.tokens`` relies on:

* ``encode(text) -> list[int]`` and ``decode(ids) -> str`` (a round trip returns the text);
* ``encode_array(text) -> np.ndarray`` (int64, ``(n_tokens,)``), fast for whole corpora;
* ``vocab_size`` (ids are ``0 .. vocab_size - 1``);
* ``fingerprint``: a hash of the vocabulary and rules, which keys the token cache;
* ``save(path)`` and ``ClassName.load(path)`` (one JSON file, written atomically).

Byte-level BPE (Sennrich et al., 2016; Radford et al., 2019) starts from the 256 byte
values, so it can encode any string, and learns merges of frequent adjacent pairs until
the vocabulary reaches ``vocab_size``. :meth:`BPETokenizer.to_transformers` wraps it as
a ``transformers`` fast tokenizer for the model chapters. A BPE tokenizer is nothing but
its vocabulary and its ordered merges: :meth:`BPETokenizer.save_vocab_and_merges` writes
them as GPT-2 does (``vocab.json``, ``merges.txt``) and
:meth:`BPETokenizer.from_vocab_and_merges` builds a tokenizer from such files — GPT-2's
own, for example — without training.

:func:`train_wordpiece` learns a WordPiece vocabulary (Wu et al., 2016) the way BERT's
tokenizer is built — lower-cased, split on spaces and punctuation, ``##`` marking a piece
that continues a word — and returns it as a ``transformers.BertTokenizer``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tokenizers as hf_tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from course_lib.core.atomic import atomic_write_text
from course_lib.core.validate import require_int

__all__ = ["CharTokenizer", "BPETokenizer", "train_bpe", "train_wordpiece", "load_tokenizer",
           "BERT_SPECIAL_TOKENS"]

FORMAT_VERSION = 1
EOS_TOKEN = "<|endoftext|>"
BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0-4, as in BERT
# Where a long text may be cut without changing its byte-level pre-tokens: between a
# single newline (preceded by a non-space) and the next non-space character.
_SAFE_CUT = re.compile(r"(?<=\S\n)(?=\S)")
_CHUNK_CHARS = 100_000
#: The largest vocabulary a tokenizer may be trained to. HF ``tokenizers`` reserves room for
#: every id before it starts (about 66 bytes each), so 2**31 ids would ask for ~140 GB and
#: abort the process; real vocabularies stay below 300,000.
MAX_VOCAB_SIZE = 2**20


def _read_json(path: str | os.PathLike, kind: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path {str(path)!r} does not exist; expected a {kind} "
                                f"tokenizer file written by .save()")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a tokenizer file (not valid JSON: {err})") from None


def _check_ids(ids: object, vocab_size: int) -> list[int]:
    """``ids`` as a list of Python ints in ``[0, vocab_size)`` (NumPy integers accepted)."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    ids = list(ids)  # type: ignore[arg-type]
    for i, t in enumerate(ids):
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)) \
                or not 0 <= t < vocab_size:
            raise ValueError(f"ids has {t!r} at position {i}; expected integer token ids in "
                             f"[0, {vocab_size})")
    return [int(t) for t in ids]


def _check_vocab_cap(vocab_size: int) -> None:
    if vocab_size > MAX_VOCAB_SIZE:
        raise ValueError(f"vocab_size must be at most {MAX_VOCAB_SIZE:,} (2**20); got "
                         f"{vocab_size:,}. The trainer reserves memory for every id before it "
                         f"starts, so a vocabulary this large would exhaust memory")


def _check_special_tokens(special_tokens: Sequence[str]) -> list[str]:
    if isinstance(special_tokens, str):
        raise TypeError(f"special_tokens must be a sequence of strings, not one string; got "
                        f"{special_tokens!r} (write ({special_tokens!r},))")
    tokens = list(special_tokens)
    bad = [t for t in tokens if not isinstance(t, str) or not t]
    if bad:
        raise ValueError(f"special_tokens must be non-empty strings; got {bad[:3]!r}")
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"special_tokens has duplicates: {tokens!r}")
    return tokens


def _safe_pieces(text: str) -> list[str]:
    """Cut ``text`` into pieces of about ``_CHUNK_CHARS`` at safe points only."""
    pieces, start = [], 0
    while start < len(text):
        end = min(start + _CHUNK_CHARS, len(text))
        match = _SAFE_CUT.search(text, end) if end < len(text) else None
        end = match.start() if match else len(text)
        pieces.append(text[start:end])
        start = end
    return pieces


class CharTokenizer:
    """One token per Unicode character; ids follow the sorted order of the characters.

    Build it from a vocabulary (``CharTokenizer("abc")``) or from a text
    (``CharTokenizer.from_text(corpus)``). A character outside the vocabulary is an
    error, not a silent "unknown" token.
    """

    kind = "char"

    def __init__(self, chars: Iterable[str]) -> None:
        chars = sorted(set(chars))
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad or not chars:
            raise ValueError(f"chars must be a non-empty collection of single characters; "
                             f"got {bad[:3] if bad else 'nothing'}")
        self.chars: tuple[str, ...] = tuple(chars)
        self._index = {c: i for i, c in enumerate(self.chars)}
        self._codepoints = np.array([ord(c) for c in self.chars], dtype=np.int64)

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The tokenizer whose vocabulary is the set of characters of ``text``."""
        if not isinstance(text, str) or not text:
            raise ValueError(f"text must be a non-empty string; got {text!r:.40}")
        return cls(set(text))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(("char\0" + "".join(self.chars)).encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"

    def encode_array(self, text: str) -> np.ndarray:
        """Token ids of ``text``: int64 ``(len(text),)``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str; got {type(text).__name__}")
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        ids = np.searchsorted(self._codepoints, points)
        ids = np.minimum(ids, len(self._codepoints) - 1)
        bad = self._codepoints[ids] != points
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"text has character {text[i]!r} at position {i}, which is not in "
                             f"this tokenizer's vocabulary of {self.vocab_size} characters")
        return ids

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.chars[i] for i in _check_ids(ids, self.vocab_size))

    def save(self, path: str | os.PathLike) -> Path:
        payload = {"kind": self.kind, "version": FORMAT_VERSION, "chars": "".join(self.chars)}
        return atomic_write_text(path, json.dumps(payload, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        payload = _read_json(path, "character")
        if payload.get("kind") != cls.kind:
            raise ValueError(f"{path} holds a {payload.get('kind', 'non-course')!r} tokenizer, "
                             f"not a character tokenizer")
        return cls(payload["chars"])


class BPETokenizer:
    """Byte-level BPE: a thin wrapper around a Hugging Face ``tokenizers.Tokenizer``."""

    kind = "bpe"

    def __init__(self, backend: hf_tokenizers.Tokenizer) -> None:
        if not isinstance(backend, hf_tokenizers.Tokenizer):
            raise TypeError(f"backend must be a tokenizers.Tokenizer; got {type(backend).__name__}")
        self.backend = backend

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.backend.to_str().encode()).hexdigest()[:16]

    @property
    def merges(self) -> list[tuple[str, str]]:
        """The learned merges, in the order they were learned (ids 256+ …)."""
        merges = json.loads(self.backend.to_str())["model"]["merges"]
        return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"

    def truncated(self, vocab_size: int) -> BPETokenizer:
        """The tokenizer with only the first merges, ``vocab_size`` ids in all.

        BPE learns merges greedily, so this equals training with the smaller
        ``vocab_size`` on the same text (checked in the unit tests): one training run
        gives a whole family of vocabularies.
        """
        payload = json.loads(self.backend.to_str())
        n_fixed = self.vocab_size - len(payload["model"]["merges"])  # bytes + specials
        vocab_size = require_int(
            "vocab_size", vocab_size, n_fixed, self.vocab_size,
            expected=f"an integer in [{n_fixed}, {self.vocab_size}] for this tokenizer")
        model = payload["model"]
        model["vocab"] = {t: i for t, i in model["vocab"].items() if i < vocab_size}
        model["merges"] = model["merges"][: vocab_size - n_fixed]
        return BPETokenizer(hf_tokenizers.Tokenizer.from_str(json.dumps(payload)))

    def encode_array(self, text: str) -> np.ndarray:
        """Token ids of ``text``: int64 ``(n_tokens,)``.

        A long text is cut at safe points (see ``_SAFE_CUT``) and encoded in parallel;
        the ids equal those of one ``encode`` call on the whole text.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str; got {type(text).__name__}")
        pieces = _safe_pieces(text)
        encode_batch = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
        encodings = encode_batch(pieces, add_special_tokens=False) if pieces else []
        arrays = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def decode(self, ids: Sequence[int]) -> str:
        return self.backend.decode(_check_ids(ids, self.vocab_size), skip_special_tokens=False)

    def token(self, token_id: int) -> str:
        """The byte string of one token id, made readable (``'Ġ'`` marks a leading space)."""
        return self.backend.id_to_token(_check_ids([token_id], self.vocab_size)[0])

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_text(path, self.backend.to_str())

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        _read_json(path, "BPE")  # a clear error for a missing or non-JSON file
        try:
            return cls(hf_tokenizers.Tokenizer.from_file(str(path)))
        except Exception as err:  # noqa: BLE001 — the library's message is terse
            raise ValueError(f"{path} is not a tokenizers.Tokenizer file: {err}") from None

    def save_vocab_and_merges(self, folder: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``vocab.json`` (token -> id) and ``merges.txt`` (one merge per line, in the
        order learned, after a ``#version`` line) into ``folder``: GPT-2's file format,
        which ``transformers.GPT2Tokenizer`` reads. Returns the two paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        vocab = self.backend.get_vocab(with_added_tokens=True)
        vocab_path = atomic_write_text(folder / "vocab.json", json.dumps(
            dict(sorted(vocab.items(), key=lambda item: item[1])), ensure_ascii=False))
        lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in self.merges]
        merges_path = atomic_write_text(folder / "merges.txt", "\n".join(lines) + "\n")
        return vocab_path, merges_path

    @classmethod
    def from_vocab_and_merges(cls, vocab_path: str | os.PathLike,
                              merges_path: str | os.PathLike, *,
                              special_tokens: Sequence[str] = (EOS_TOKEN,)) -> BPETokenizer:
        """A byte-level BPE tokenizer from GPT-2-style files, without training.

        ``vocab_path``: JSON ``{token: id}`` with ids ``0 .. n-1``, each once, holding the
        256 byte tokens; ``merges_path``: lines ``"left right"`` in merge order (a first
        line starting with ``#version`` is skipped), each part and their concatenation in
        the vocabulary. ``special_tokens`` found in the vocabulary are never split. Raises
        ``FileNotFoundError`` / ``ValueError`` naming the file and the first bad entry.
        """
        vocab = _read_json(vocab_path, "vocab.json of a BPE")
        if not isinstance(vocab, dict) or not vocab:
            raise ValueError(f"{vocab_path} must hold a non-empty JSON object "
                             f"{{token: id}}; got {type(vocab).__name__}")
        for token, i in vocab.items():
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(vocab):
                raise ValueError(f"{vocab_path}: token {token!r} has id {i!r}; expected ids "
                                 f"0 .. {len(vocab) - 1}, each used once")
        if len(set(vocab.values())) != len(vocab):
            raise ValueError(f"{vocab_path}: some ids are used twice; expected ids "
                             f"0 .. {len(vocab) - 1}, each used once")
        missing = [b for b in pre_tokenizers.ByteLevel.alphabet() if b not in vocab]
        if missing:
            raise ValueError(f"{vocab_path} lacks {len(missing)} of the 256 byte tokens "
                             f"(e.g. {sorted(missing)[:3]!r}); a byte-level BPE needs them all")
        merges_path = Path(merges_path)
        if not merges_path.is_file():
            raise FileNotFoundError(f"path {str(merges_path)!r} does not exist; expected a "
                                    f"merges.txt file")
        lines = merges_path.read_text(encoding="utf-8").splitlines()
        merges = []
        for number, line in enumerate(lines, start=1):
            if not line or (number == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2 or not all(parts) or not all(p in vocab for p in parts) \
                    or parts[0] + parts[1] not in vocab:
                raise ValueError(f"{merges_path} line {number}: {line!r}; expected two "
                                 f"tokens of the vocabulary, separated by one space, whose "
                                 f"concatenation is in the vocabulary too")
            merges.append((parts[0], parts[1]))
        special = [t for t in _check_special_tokens(special_tokens) if t in vocab]
        backend = hf_tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges))
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        backend.add_special_tokens(special)
        return cls(backend)

    def to_transformers(self):
        """This tokenizer as a ``transformers.PreTrainedTokenizerFast`` (same ids)."""
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(tokenizer_object=self.backend, eos_token=EOS_TOKEN,
                                       bos_token=EOS_TOKEN, unk_token=None)


def train_bpe(
    texts: str | Iterable[str],
    vocab_size: int,
    *,
    min_frequency: int = 2,
    special_tokens: Sequence[str] = (EOS_TOKEN,),
    show_progress: bool = False,
) -> BPETokenizer:
    """Train a byte-level BPE tokenizer with HF ``tokenizers``.

    ``texts`` is a string or an iterable of strings (documents). The vocabulary holds
    the 256 byte tokens, the ``special_tokens`` and ``vocab_size - 256 - len(special)``
    learned merges (fewer if the text runs out of pairs seen ``min_frequency`` times).
    Training is deterministic: the same text and settings give the same merges.
    """
    special_tokens = _check_special_tokens(special_tokens)
    smallest = 256 + len(special_tokens) + 1
    vocab_size = require_int("vocab_size", vocab_size, smallest, expected=(
        f"an integer of at least {smallest} (256 bytes, {len(special_tokens)} special "
        f"token(s), one merge)"))
    _check_vocab_cap(vocab_size)
    min_frequency = require_int("min_frequency", min_frequency, 0,
                                expected="a non-negative integer (a count of occurrences)")
    if isinstance(texts, str):
        texts = [texts]
    texts = [t for t in texts if t]
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a non-empty string or iterable of non-empty strings")
    backend = hf_tokenizers.Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, show_progress=show_progress,
        special_tokens=list(special_tokens), initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    pieces = [piece for t in texts for piece in _safe_pieces(t)]
    backend.train_from_iterator(pieces, trainer=trainer, length=len(pieces))
    return BPETokenizer(backend)


def train_wordpiece(
    texts: str | Iterable[str],
    vocab_size: int,
    *,
    min_frequency: int = 2,
    model_max_length: int = 512,
):
    """Train a lower-cased WordPiece vocabulary; return a ``transformers.BertTokenizer``.

    The vocabulary holds :data:`BERT_SPECIAL_TOKENS` (``[PAD]`` = 0 … ``[MASK]`` = 4),
    the characters of ``texts`` and pieces learned by HF ``tokenizers``' WordPiece
    trainer, ``vocab_size`` ids in all (fewer if the text runs out of pieces). Encoding
    adds ``[CLS]`` … ``[SEP]``; ``save_pretrained`` / ``AutoTokenizer.from_pretrained``
    round-trip it. The same texts give the same ids, except that pieces tied in
    frequency at the end of training may be kept in one run and not in another.
    """
    vocab_size = require_int("vocab_size", vocab_size, 32, expected="an integer >= 32")
    _check_vocab_cap(vocab_size)
    min_frequency = require_int("min_frequency", min_frequency, 0,
                                expected="a non-negative integer (a count of occurrences)")
    model_max_length = require_int("model_max_length", model_max_length, 2,
                                   expected="an integer >= 2 ([CLS] and [SEP])")
    texts = [texts] if isinstance(texts, str) else [t for t in texts if t]
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a non-empty string or iterable of non-empty strings")
    from transformers import BertTokenizer  # slow to import: after the checks

    backend = hf_tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(BERT_SPECIAL_TOKENS),
                                        show_progress=False)
    backend.train_from_iterator(texts, trainer=trainer, length=len(texts))
    # WordPiece matches the longest piece whatever its id, so ids may be renumbered. The
    # trainer numbers pieces in hash order; sorted, they are the same from run to run.
    # (Where two candidate pieces tie in frequency, which one is kept can still vary.)
    learned = sorted(set(backend.get_vocab()) - set(BERT_SPECIAL_TOKENS))
    vocab = {token: i for i, token in enumerate([*BERT_SPECIAL_TOKENS, *learned])}
    return BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=model_max_length)


def load_tokenizer(path: str | os.PathLike) -> CharTokenizer | BPETokenizer:
    """Load either kind of tokenizer from a file written by ``.save()``."""
    payload = _read_json(path, "course")
    if payload.get("kind") == CharTokenizer.kind:
        return CharTokenizer.load(path)
    return BPETokenizer.load(path)
