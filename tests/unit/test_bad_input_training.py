"""Bad input to the training layer (TrainConfig, FinetuneConfig, distillation, masking,
replay) gets an error that names the argument, shows the value and says what was
expected — before a run starts with a NaN learning rate or a negative weight decay."""

import math

import numpy as np
import pytest
import torch
from bad_input_table import assert_clear_error, case_ids

from course_lib.training import continual, distill, finetune, masked
from course_lib.training.loop import TrainConfig, train

INF, NAN = math.inf, math.nan
LOGITS = torch.zeros(2, 3)
TARGETS = torch.tensor([0, 2])


def cfg(**changes) -> TrainConfig:
    return TrainConfig(**({"max_steps": 5} | changes))


def kd(student=LOGITS, teacher=LOGITS, targets=TARGETS, **kwargs):
    return distill.distillation_loss(student, teacher, targets, **kwargs)


def batches(split, generator):
    return torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long)


CASES = [
    # --- TrainConfig ------------------------------------------------------------------
    (lambda: cfg(max_steps=2.5), TypeError, ["max_steps", "positive integer", "2.5"]),
    (lambda: cfg(max_steps=0), ValueError, ["max_steps", "positive integer", "0"]),
    (lambda: cfg(grad_accum_steps=0), ValueError, ["grad_accum_steps", "positive integer"]),
    (lambda: cfg(warmup_steps=-1), ValueError, ["warmup_steps", "non-negative integer", "-1"]),
    (lambda: cfg(seed=True), TypeError, ["seed", "non-negative integer", "True"]),
    (lambda: cfg(weight_decay=-0.1), ValueError, ["weight_decay", ">= 0", "-0.1"]),
    (lambda: cfg(weight_decay=NAN), ValueError, ["weight_decay", "finite", "nan"]),
    (lambda: cfg(weight_decay=INF), ValueError, ["weight_decay", "finite", "inf"]),
    (lambda: cfg(lr=INF), ValueError, ["lr", "finite", "inf"]),
    (lambda: cfg(lr=0), ValueError, ["lr", "positive number", "0"]),
    (lambda: cfg(lr="1e-3"), TypeError, ["lr", "positive number", "'1e-3'"]),
    (lambda: cfg(min_lr_ratio=1.5), ValueError, ["min_lr_ratio", "[0, 1]", "1.5"]),
    (lambda: cfg(betas=(1.0, 0.95)), ValueError, ["betas[0]", "[0, 1)", "1.0"]),
    (lambda: cfg(betas=(0.9, NAN)), ValueError, ["betas[1]", "finite", "nan"]),
    (lambda: cfg(betas=0.9), ValueError, ["betas", "pair", "0.9"]),
    (lambda: cfg(grad_clip=INF), ValueError, ["grad_clip", "finite", "inf"]),
    (lambda: cfg(grad_clip=-1.0), ValueError, ["grad_clip", "positive or None", "-1.0"]),
    (lambda: cfg(schedule_steps=3), ValueError, ["schedule_steps", ">= max_steps (5)", "3"]),
    (lambda: cfg(warmup_steps=6), ValueError, ["warmup_steps (6)", "5 steps"]),
    (lambda: cfg(eval_steps=(0, 2)), ValueError, ["eval_steps", "[1, max_steps=5]", "[0, 2]"]),
    (lambda: cfg(eval_steps=(2.5,)), ValueError, ["eval_steps", "integers", "2.5"]),
    (lambda: cfg(precision="fp16"), ValueError, ["precision", "'fp16'", "'bf16'"]),
    (lambda: cfg(progress="yes"), TypeError, ["progress", "True or False", "'yes'"]),
    (lambda: train(torch.nn.Linear(2, 2), batches, {"max_steps": 1}), TypeError,
     ["config", "TrainConfig", "dict"]),
    (lambda: train(torch.nn.Linear(2, 2), batches, cfg(), resume=True), ValueError,
     ["resume=True", "checkpoint_dir"]),
    # --- FinetuneConfig ---------------------------------------------------------------
    (lambda: finetune.FinetuneConfig(weight_decay=INF), ValueError,
     ["weight_decay", "finite", "inf"]),
    (lambda: finetune.FinetuneConfig(weight_decay=-1), ValueError, ["weight_decay", ">= 0", "-1"]),
    (lambda: finetune.FinetuneConfig(mlm_alpha=INF), ValueError, ["mlm_alpha", "finite", "inf"]),
    (lambda: finetune.FinetuneConfig(lr=NAN), ValueError, ["lr", "finite", "nan"]),
    (lambda: finetune.FinetuneConfig(warmup_ratio=1.5), ValueError,
     ["warmup_ratio", "[0, 1]", "1.5"]),
    (lambda: finetune.FinetuneConfig(mlm_probability="0.15"), TypeError,
     ["mlm_probability", "'0.15'"]),
    (lambda: finetune.FinetuneConfig(min_steps=-1), ValueError,
     ["min_steps", "non-negative integer", "-1"]),
    (lambda: finetune.FinetuneConfig(eval_every=0), ValueError,
     ["eval_every", "positive integer", "0"]),
    (lambda: finetune.FinetuneConfig(patience=0), ValueError,
     ["patience", "positive integer or None", "0"]),
    (lambda: finetune.FinetuneConfig(epochs=1.5), TypeError, ["epochs", "positive integer", "1.5"]),
    (lambda: finetune.FinetuneConfig(grad_clip=0.0), ValueError,
     ["grad_clip", "positive or None", "0.0"]),
    (lambda: finetune.FinetuneConfig(group_by_length="yes"), TypeError,
     ["group_by_length", "True or False"]),
    (lambda: finetune.encode_examples(None, [], num_labels=2), ValueError, ["examples", "empty"]),
    (lambda: finetune.encode_examples(None, [("a text", 5)], num_labels=2), ValueError,
     ["examples[0]", "label 5", "[0, 2)"]),
    (lambda: finetune.encode_examples(None, [("a", 0), ("  ", 1)], num_labels=2), ValueError,
     ["examples[1]", "text '  '", "non-empty"]),
    (lambda: finetune.encode_examples(None, [("a", 0, 1)], num_labels=2), ValueError,
     ["examples[0]", "(text, label) pair"]),
    (lambda: finetune.finetune(None, None, [], [], {"epochs": 1}), TypeError,
     ["config", "FinetuneConfig", "dict"]),
    # --- distillation -----------------------------------------------------------------
    (lambda: kd(temperature=INF), ValueError, ["temperature", "finite", "inf"]),
    (lambda: kd(temperature=0), ValueError, ["temperature", "positive number", "0"]),
    (lambda: kd(alpha=1.5), ValueError, ["alpha", "[0, 1]", "1.5"]),
    (lambda: kd(alpha=NAN), ValueError, ["alpha", "finite", "nan"]),
    (lambda: kd(teacher=torch.zeros(2, 4)), ValueError,
     ["student_logits", "(2, 3)", "teacher_logits", "(2, 4)", "vocabulary"]),
    (lambda: kd(targets=torch.tensor([0, 1, 2])), ValueError, ["targets", "(3,)", "(2,)"]),
    (lambda: kd(targets=torch.tensor([0, 3])), ValueError,
     ["targets", "token id 3", "position (1,)", "vocab_size=3"]),
    (lambda: kd(targets=torch.tensor([-100, -100])), ValueError,
     ["targets", "-100", "all 2 positions"]),
    (lambda: kd(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)),
     ValueError, ["student_logits", "empty", "(0, 3)"]),
    (lambda: kd(targets=torch.tensor([0.0, 1.0])), TypeError,
     ["targets", "integer", "torch.float32"]),
    (lambda: kd(student=[[0.0, 0.0, 0.0]]), TypeError, ["student_logits", "tensor", "list"]),
    # --- masking and replay -----------------------------------------------------------
    (lambda: masked.mask_tokens(torch.zeros(2, 4, dtype=torch.int32), mask_token_id=1,
                                vocab_size=8), TypeError, ["input_ids", "int64", "int32"]),
    (lambda: masked.mask_tokens(torch.zeros(2, 4, dtype=torch.long), mask_token_id=1,
                                vocab_size=8, mlm_probability=1.5), ValueError,
     ["mlm_probability", "[0, 1]", "1.5"]),
    (lambda: masked.mask_tokens(torch.zeros(2, 4, dtype=torch.long), mask_token_id=8,
                                vocab_size=8), ValueError, ["mask_token_id", "vocab_size=8", "8"]),
    (lambda: continual.replay_batches(batches, batches, 1.0), ValueError,
     ["replay_fraction", "[0, 1)", "1.0"]),
    (lambda: continual.replay_batches(batches, batches, 0.5, val_from="both"), ValueError,
     ["val_from", "'old' or 'new'", "'both'"]),
]


@pytest.mark.parametrize("call, exc, words", CASES, ids=case_ids(CASES, "training"))
def test_bad_input_gets_a_clear_error(call, exc, words):
    assert_clear_error(call, exc, words)


def test_numpy_settings_are_accepted_and_stored_as_python_numbers():
    config = TrainConfig(max_steps=np.int64(10), lr=np.float32(0.5), warmup_steps=np.int32(2),
                         weight_decay=np.float64(0.1), betas=(np.float32(0.5), 0.95),
                         eval_steps=(np.int64(4),), schedule_steps=np.int64(20))
    assert type(config.max_steps) is int and type(config.lr) is float
    assert type(config.warmup_steps) is int and config.eval_steps == (4,)
    assert type(config.betas[0]) is float and config.betas == (0.5, 0.95)
    assert TrainConfig(max_steps=5, lr=1).lr == 1 and type(TrainConfig(max_steps=5, lr=1).lr) is int
    tuned = finetune.FinetuneConfig(epochs=np.int64(2), lr=np.float32(0.5), patience=np.int64(1))
    assert (type(tuned.epochs), type(tuned.lr), type(tuned.patience)) == (int, float, int)


def test_distillation_with_numpy_settings_matches_python_ones():
    student, teacher = torch.randn(3, 5, generator=torch.Generator().manual_seed(0)), \
        torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 4, -100])
    a = kd(student, teacher, y, temperature=2.0, alpha=0.5)
    b = kd(student, teacher, y, temperature=np.float32(2.0), alpha=np.float64(0.5))
    assert torch.equal(a, b)


def test_lead_found_cases_are_guarded():
    """Cases the bad-input review found in modules outside its files."""
    import numpy as np

    from course_lib.core import checks, seeding
    from course_lib.models import GPT, GPTConfig, flops
    from course_lib.models.prompting import score_answer
    from course_lib.scaling.budget import FlopBudget
    from course_lib.training import finetune

    with pytest.raises(ValueError, match="ids is empty"):
        finetune.pad_batch([], 0)
    with pytest.raises(ValueError, match="batch_size must be >= 1; got 0"):
        finetune.length_grouped_batches([3, 4], 0, torch.Generator())
    model = GPT(GPTConfig(vocab_size=8, context_length=8, n_layer=1, n_head=1, d_model=8))
    with pytest.raises(ValueError, match="token id 8 at position \\(0, 2\\)"):
        score_answer(model, [1, 2], [8])
    assert seeding.make_generator(np.int64(3)).initial_seed() == 3  # NumPy integers
    seeding.set_seed(np.int64(0))
    FlopBudget(np.float32(10.0)).charge(np.int64(3), "run")
    assert checks.expect_close("x", 1.0, 1.0, atol=np.float32(0.1)) is not None
    assert flops.forward_flops_breakdown(model.config, np.int64(4)).total > 0
