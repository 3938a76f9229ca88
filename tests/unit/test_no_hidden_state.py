"""Library calls leave no hidden state: the caller's random numbers, process groups and
defaults are their own (issue: "no hidden global state")."""
from __future__ import annotations

import argparse
from dataclasses import MISSING, fields

import numpy as np
import pytest
import torch

from course_lib.core.seeding import seeded
from course_lib.data.tokens import train_val_batches
from course_lib.models import GPT, GPTConfig
from course_lib.models.bert import tiny_bert
from course_lib.recipes.pretrained import classifier_from_masked_lm
from course_lib.scaling import sweep
from course_lib.training import cli
from course_lib.training.loop import TrainConfig, train

DATA = {"kind": "keyvalue", "vocab_size": 8, "key_length": 2, "value_length": 2,
        "n_keys": 40, "zipf_exponent": 1.3, "val_tokens": 512}
TOKENS = (np.arange(600) % 12).astype(np.uint16)


def _tiny_train():
    with seeded(0):  # the caller's own model; only the call under test must be clean
        model = GPT(GPTConfig(vocab_size=12, context_length=8, n_layer=1, n_head=2,
                              d_model=16))
    train(model, train_val_batches(TOKENS[:500], TOKENS[500:], 4, 8),
          TrainConfig(max_steps=2, progress=False, eval_batches=1), device="cpu")


def _run_one():
    data, runs = sweep.expand_grid({
        "data": DATA, "tokens": [512], "models": [{"name": "a", "n_layer": 1, "d_model": 8,
                                                   "n_head": 2, "lr": 0.01}],
        "defaults": {"batch_size": 4, "context_length": 8, "eval_batches": 2}})
    sweep.run_one(runs[0], data, device="cpu", progress=False)


def _classifier():
    with seeded(0):  # the caller's own model; only the call under test must be clean
        mlm = tiny_bert(vocab_size=30, context_length=16, n_layer=1, n_head=2, d_model=16)
    classifier_from_masked_lm(mlm, num_labels=3, seed=4)


@pytest.fixture(autouse=True)
def token_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("call", [_tiny_train, _run_one, _classifier],
                         ids=["train", "sweep.run_one", "classifier_from_masked_lm"])
def test_a_library_call_leaves_the_callers_random_numbers_alone(call):
    torch.manual_seed(11)
    expected = torch.rand(4)
    torch.manual_seed(11)
    call()
    assert torch.equal(torch.rand(4), expected)


def test_seeded_gives_manual_seeds_numbers_and_restores_the_state():
    torch.manual_seed(0)
    a = torch.rand(3)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    with seeded(0):
        assert torch.equal(torch.rand(3), a)
    assert torch.equal(torch.get_rng_state(), before)
    with pytest.raises(ValueError, match="seed must be a non-negative integer; got -1"):
        with seeded(-1):
            pass


def test_the_command_lines_defaults_are_the_dataclasses():
    parser = cli._parser()
    defaults = {a.dest: a.default for a in parser._actions
                if not isinstance(a, argparse._HelpAction)}
    for field in fields(TrainConfig):
        if field.name in defaults and field.default is not MISSING:
            assert defaults[field.name] == field.default, field.name
