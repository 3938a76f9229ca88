"""Bad input to the recipes layer gets an error that names the argument, shows the value
and says what was expected; token ids outside a model's vocabulary are caught by the
model (GPT.forward) before they index its embedding."""

import numpy as np
import pytest
import torch
from bad_input_table import assert_clear_error, case_ids

from course_lib.models.gpt import GPT, GPTConfig
from course_lib.recipes import char_gpt, pretrained
from course_lib.training.loop import TrainConfig

torch.manual_seed(0)
MODEL = GPT(GPTConfig(vocab_size=8, context_length=4, n_layer=1, n_head=1, d_model=4))
STREAM = np.arange(40) % 8

CASES = [
    (lambda: char_gpt.train_or_load("/nonexistent-dir/m", {"n_layer": 1}, None,
                                    TrainConfig(max_steps=1)),
     TypeError, ["config", "GPTConfig", "dict"]),
    (lambda: char_gpt.evaluate_lm(MODEL, STREAM, n_windows=0, context_length=4), ValueError,
     ["n_windows", "positive integer", "0"]),
    (lambda: char_gpt.evaluate_lm(MODEL, STREAM + 1, n_windows=2, context_length=4), ValueError,
     ["idx", "token id 8", "vocab_size=8"]),
    (lambda: char_gpt.evaluate_lm(MODEL, STREAM, n_windows=2, context_length=8), ValueError,
     ["T=8", "context_length=4"]),
    (lambda: char_gpt.evaluate_lm(MODEL, STREAM.astype(float), context_length=4), TypeError,
     ["tokens", "integer", "float64"]),
    (lambda: pretrained.resolve(""), ValueError, ["name_or_path", "'minilm'", "''"]),
]


@pytest.mark.parametrize("call, exc, words", CASES, ids=case_ids(CASES, "recipes"))
def test_bad_input_gets_a_clear_error(call, exc, words):
    assert_clear_error(call, exc, words)
