"""Loading pretrained encoders: hashes are checked, paths and names are told apart."""

import shutil

import pytest
import torch
from finetune_fixtures import tiny_masked_lm

from course_lib.recipes.pretrained import (
    MINILM_SHA256,
    WeightsHashError,
    classifier_from_masked_lm,
    load_classifier,
    load_tokenizer,
    minilm_dir,
    resolve,
    tied_mlm_head,
)
from course_lib.core.store import file_sha256


def test_packaged_minilm_passes_its_hash_check_and_loads_offline():
    folder = minilm_dir()
    assert {p.name for p in folder.iterdir()} >= set(MINILM_SHA256)
    model = load_classifier("minilm", num_labels=5, seed=0)
    tokenizer = load_tokenizer("MiniLM")
    assert model.config.num_labels == 5 and model.config.hidden_size == 384
    assert sum(p.numel() for p in model.bert.parameters()) == 22_713_216
    ids = tokenizer(["a small domesticated carnivore"], return_tensors="pt")
    assert tokenizer.decode(ids["input_ids"][0]) == "[CLS] a small domesticated carnivore [SEP]"
    again = load_classifier("minilm", num_labels=5, seed=0)
    assert torch.equal(model.classifier.weight, again.classifier.weight)  # seeded head


def test_tampered_weights_are_refused_with_both_hashes(tmp_path):
    source = minilm_dir()
    for name in MINILM_SHA256:
        shutil.copy(source / name, tmp_path / name)
    minilm_dir(tmp_path)  # an exact copy passes
    (tmp_path / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(WeightsHashError) as info:
        minilm_dir(tmp_path)
    message = str(info.value)
    assert MINILM_SHA256["model.safetensors"] in message
    assert file_sha256(tmp_path / "model.safetensors") in message
    assert "refusing to load" in message


@pytest.mark.parametrize("name, change", [("config.json", "num_hidden_layers"),
                                          ("config.json", "hidden_act"),
                                          ("tokenizer_config.json", "do_lower_case")])
def test_a_changed_config_is_refused_like_changed_weights(tmp_path, name, change):
    import json

    source = minilm_dir()
    for file in MINILM_SHA256:
        shutil.copy(source / file, tmp_path / file)
    data = json.loads((tmp_path / name).read_text())
    data[change] = {"num_hidden_layers": 5, "hidden_act": "relu"}.get(change, False)
    (tmp_path / name).write_text(json.dumps(data))
    with pytest.raises(WeightsHashError, match=f"{name} has sha256"):
        minilm_dir(tmp_path)


def test_verification_does_not_trust_the_files_date(tmp_path):
    import os

    source = minilm_dir()
    for file in MINILM_SHA256:
        shutil.copy2(source / file, tmp_path / file)
    minilm_dir(tmp_path)
    stat = os.stat(tmp_path / "config.json")
    (tmp_path / "config.json").write_text((source / "config.json").read_text()
                                          .replace('"gelu"', '"relu"'))
    os.utime(tmp_path / "config.json", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(WeightsHashError, match="config.json has sha256"):
        minilm_dir(tmp_path)  # same date as when it last passed: checked anyway


def test_missing_files_and_paths_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks \\['model.safetensors', 'config.json'"):
        minilm_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a folder with a saved model"):
        resolve(str(tmp_path / "no-such-model"))
    with pytest.raises(FileNotFoundError, match="is not a folder with a saved model"):
        load_classifier("./checkpoints/mine", num_labels=2)
    assert resolve("bert-base-uncased") == "bert-base-uncased"  # a Hub name passes through
    assert resolve(tmp_path) == str(tmp_path)
    with pytest.raises(ValueError, match="num_labels must be an integer >= 2; got 1"):
        load_classifier("minilm", num_labels=1)
    with pytest.raises(ValueError, match="name_or_path must be 'minilm'"):
        resolve("")


def test_classifier_from_masked_lm_copies_the_encoder_and_ties_the_head():
    mlm = tiny_masked_lm()
    model = classifier_from_masked_lm(mlm, num_labels=4, hidden_dropout_prob=0.3)
    assert model.config.num_labels == 4 and model.config.hidden_dropout_prob == 0.3
    assert mlm.config.num_labels != 4 or mlm.config.hidden_dropout_prob != 0.3
    for name, p in mlm.bert.state_dict().items():
        assert torch.equal(model.bert.state_dict()[name], p)
    assert model.bert.embeddings.word_embeddings.weight is not mlm.bert.embeddings.word_embeddings.weight
    head = tied_mlm_head(mlm, model)
    assert head.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    with torch.no_grad():
        ids = torch.randint(5, 45, (2, 6))
        mlm.eval(), model.eval()
        torch.testing.assert_close(head(model.bert(input_ids=ids).last_hidden_state),
                                   mlm(input_ids=ids).logits)
    with pytest.raises(TypeError, match="mlm_model must be a transformers BertForMaskedLM"):
        classifier_from_masked_lm(model, num_labels=2)
