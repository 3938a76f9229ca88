"""Train-or-load of chapters 13-14: round trip, provenance, refusals, evaluation."""

import dataclasses

import numpy as np
import pytest
import torch

from course_lib.data.tokens import train_val_batches
from course_lib.models import GPTConfig
from course_lib.recipes.char_gpt import evaluate_lm, train_or_load
from course_lib.training.loop import TrainConfig

CONFIG = GPTConfig(vocab_size=12, context_length=8, n_layer=1, n_head=2, d_model=16)
TRAIN = TrainConfig(max_steps=3, lr=1e-2, progress=False, eval_batches=1)
TOKENS = (np.arange(400) % 12).astype(np.uint16)  # a cyclic "language"


def get():
    return train_val_batches(TOKENS[:300], TOKENS[300:], 4, 8)


def test_second_call_loads_the_same_weights_and_provenance(tmp_path):
    first, meta = train_or_load(tmp_path / "m", CONFIG, get(), TRAIN, device="cpu")
    assert not meta["loaded"] and meta["result"]["steps"] == 3
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "manifest.json", "model.safetensors"]
    second, meta2 = train_or_load(tmp_path / "m", CONFIG, get(), TRAIN, device="cpu")
    assert meta2["loaded"] and meta2["files"] == meta["files"]
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    assert second.lm_head.weight is second.wte.weight  # still tied after loading
    assert not list(tmp_path.glob(".*tmp"))  # no temporary folder left behind


def test_loading_leaves_the_global_random_state_alone(tmp_path):
    train_or_load(tmp_path / "m", CONFIG, get(), TRAIN, device="cpu")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_or_load(tmp_path / "m", CONFIG, get(), TRAIN, device="cpu")
    assert torch.equal(torch.rand(3), expected)


def test_a_different_recipe_or_a_changed_file_is_refused(tmp_path):
    train_or_load(tmp_path / "m", CONFIG, get(), TRAIN, device="cpu")
    with pytest.raises(ValueError, match="built from spec .*'lr': 0.01.*delete it"):
        train_or_load(tmp_path / "m", CONFIG, get(), dataclasses.replace(TRAIN, lr=1e-3))
    with pytest.raises(ValueError, match="built from spec .*'d_model': 16"):
        train_or_load(tmp_path / "m", dataclasses.replace(CONFIG, d_model=32), get(), TRAIN)
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(ValueError, match="model.safetensors has sha256 .* corrupted"):
        train_or_load(tmp_path / "m", CONFIG, get(), TRAIN)


def test_the_spec_holds_only_settings_away_from_their_defaults():
    """A setting added to TrainConfig later, left at its default, changes no stored spec;
    set to anything else, it is a different recipe."""
    from course_lib.recipes.char_gpt import model_spec

    spec = model_spec(CONFIG, TRAIN, 0)
    assert spec["train_config"] == {"max_steps": 3, "lr": 1e-2, "eval_batches": 1}
    assert model_spec(CONFIG, dataclasses.replace(TRAIN, progress=True), 0) == spec
    changed = model_spec(CONFIG, dataclasses.replace(TRAIN, schedule_steps=6), 0)
    assert changed["train_config"]["schedule_steps"] == 6


def test_evaluate_lm_is_deterministic_and_near_log_v_untrained():
    torch.manual_seed(0)
    from course_lib.models import GPT

    model = GPT(CONFIG)
    a = evaluate_lm(model, TOKENS, n_windows=5, context_length=8, batch_size=2)
    assert a == evaluate_lm(model, TOKENS, n_windows=5, context_length=8, batch_size=2)
    assert a == pytest.approx(evaluate_lm(model, TOKENS, n_windows=5, context_length=8,
                                          batch_size=3), rel=1e-6)
    assert abs(a - np.log(12)) < 0.2
    with pytest.raises(ValueError, match="n_windows must be a positive integer"):
        evaluate_lm(model, TOKENS, n_windows=0)
