"""The pretrained tiny BERT: packing, masked batches, the sparse MLM loss, save/verify/load."""

import json

import pytest
import torch
from transformers import BertForMaskedLM, BertForSequenceClassification

from course_lib.data.tokenizers import train_wordpiece
from course_lib.models.bert import tiny_bert
from course_lib.recipes import tiny_bert as recipe
from course_lib.training import masked as mlm

TEXTS = [f"the {a} {b} sat on the {c}." for a in ("big", "small", "red")
         for b in ("dog", "cat", "bird") for c in ("mat", "roof", "tree", "chair")]
PROBE_MARGIN = 0.08  # measured here: 0.54 (random init) -> 0.70 (pretrained)
TINY = recipe.TinyBertRecipe(vocab_size=64, context_length=16, n_layer=1, n_head=2, d_model=16,
                          batch_size=4, max_steps=4, warmup_steps=1, val_fraction=0.2)


@pytest.fixture(scope="module")
def tok():
    return train_wordpiece(TEXTS * 3, 64, model_max_length=16)


def test_pack_sequences_keeps_texts_whole(tok):
    rows = mlm.pack_sequences(TEXTS, tok, 16)
    assert rows.dtype == torch.int64 and rows.shape[1] == 16
    assert (rows[:, 0] == tok.cls_token_id).all()
    pieces = []  # every text comes back, in order, each followed by one [SEP]
    for row in rows.tolist():
        body = [t for t in row[1:] if t != tok.pad_token_id]
        assert body[-1] == tok.sep_token_id
        pieces += tok.decode(body).split(" [SEP]")[:-1]
    assert [p.strip() for p in pieces] == TEXTS
    long = mlm.pack_sequences(["dog " * 40], tok, 16)
    assert long.shape == (1, 16) and long[0, -1] == tok.sep_token_id  # cut to fit
    with pytest.raises(ValueError, match="context_length must be an integer >= 3; got 2"):
        mlm.pack_sequences(TEXTS, tok, 2)


def test_masked_batches_mask_ordinary_tokens_only(tok):
    rows = mlm.pack_sequences(TEXTS * 20, tok, 16)
    batches = mlm.masked_lm_batches(rows, 64, tok, val_fraction=0.25)
    inputs, labels, attention = batches("train", torch.Generator().manual_seed(0))
    assert inputs.shape == labels.shape == attention.shape == (64, 16)
    selected = labels != mlm.IGNORE_INDEX
    assert not torch.isin(labels[selected], torch.tensor(tok.all_special_ids)).any()
    assert 0.08 < selected.sum() / attention.sum() < 0.2  # about 15% of the real tokens
    assert torch.equal(attention == 0, inputs == tok.pad_token_id)
    val_rows = rows[-round(len(rows) * 0.25):]
    _, val_labels, val_attention = batches("val", torch.Generator().manual_seed(0))
    assert all(any(torch.equal(m, (r != 0).long()) for r in val_rows) for m in val_attention)
    with pytest.raises(ValueError, match="too few to hold out"):
        mlm.masked_lm_batches(rows[:1], 4, tok)


def test_sparse_masked_lm_loss_equals_the_full_loss(tok):
    rows = mlm.pack_sequences(TEXTS, tok, 16)
    batch = mlm.masked_lm_batches(rows, 8, tok)("train", torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = tiny_bert(vocab_size=len(tok), context_length=16, n_layer=1, n_head=2,
                          d_model=16).eval()
    full = model(input_ids=batch[0], attention_mask=batch[2], labels=batch[1]).loss
    torch.testing.assert_close(mlm.masked_lm_loss(model, batch), full, atol=1e-6, rtol=1e-6)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bert")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(TEXTS * 10), encoding="utf-8")
    tiny = TINY.__class__(**{**TINY.__dict__, "corpus": str(corpus)})
    return recipe.pretrain_tiny_bert(folder / "tiny_bert", tiny, device="cpu", progress=False)


def test_pretrain_saves_a_verified_transformers_checkpoint(saved):
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["result"]["train"]["steps"] == 4 and manifest["spec"]["d_model"] == 16
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(manifest["files"])
    assert not saved.with_name("tiny_bert.partial").exists()  # checkpoints cleaned up
    model, tok = recipe.pretrained_tiny_bert(saved, train_if_missing=False)
    assert isinstance(model, BertForMaskedLM) and model.config.hidden_size == 16
    assert tok("the dog")["input_ids"][0] == tok.cls_token_id
    classifier = BertForSequenceClassification.from_pretrained(saved, num_labels=5)
    torch.testing.assert_close(classifier.bert.embeddings.word_embeddings.weight,
                               model.bert.embeddings.word_embeddings.weight)
    with pytest.raises(FileExistsError, match="already holds a pretrained model"):
        recipe.pretrain_tiny_bert(saved, TINY)


def test_a_modified_weights_file_is_refused(saved, tmp_path):
    import shutil

    copy = shutil.copytree(saved, tmp_path / "copy")
    with open(copy / "model.safetensors", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x00\x80\x7f")
    with pytest.raises(ValueError, match="model.safetensors has sha256 .* was recorded"):
        recipe.load_tiny_bert(copy)
    shutil.copy(saved / "model.safetensors", copy / "model.safetensors")
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(config | {"hidden_act": "relu"}))
    with pytest.raises(ValueError, match="config.json has sha256 .* was recorded"):
        recipe.load_tiny_bert(copy)  # a changed config is refused like changed weights
    with pytest.raises(FileNotFoundError, match="train_if_missing=False"):
        recipe.pretrained_tiny_bert(tmp_path / "nothing", train_if_missing=False)
    with pytest.raises(FileNotFoundError, match="holds no manifest.json"):
        recipe.load_tiny_bert(tmp_path)


def test_the_committed_tiny_bert_is_the_default_recipe_and_beats_random_init():
    """The checkpoint in notebooks/results/tiny_bert: provenance, size, usefulness."""
    import hashlib
    from dataclasses import asdict

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from course_lib.data.corpora import load_corpus, wordnet_categories

    folder = recipe.default_tiny_bert_dir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["spec"] == asdict(recipe.TinyBertRecipe())
    # trained on today's WordNet corpus, which leaves out chapter 6's test split
    text = load_corpus("wordnet")
    assert manifest["result"]["corpus"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert (folder / "model.safetensors").stat().st_size < 5e6
    model, tok = recipe.pretrained_tiny_bert(train_if_missing=False)
    torch.manual_seed(0)
    untrained = tiny_bert(model.config)
    task = wordnet_categories()
    train, test = task.subset("train", 1000, seed=0), task.validation[:500]

    @torch.no_grad()
    def features(bert, examples):  # mean of the last hidden states
        enc = tok([t for t, _ in examples], padding=True, truncation=True,
                  return_tensors="pt")
        hidden = bert.eval().bert(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1)
        return ((hidden * mask).sum(1) / mask.sum(1)).numpy()

    def probe(bert):
        fit = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        fit.fit(features(bert, train), [y for _, y in train])
        return fit.score(features(bert, test), [y for _, y in test])

    assert probe(model) > probe(untrained) + PROBE_MARGIN
