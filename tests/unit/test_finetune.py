"""The fine-tuning loop: it learns, it is reproducible, it stops early and restores the
best weights, and bad data gets clear errors."""

import pytest
import torch
from finetune_fixtures import tiny_classifier, tiny_masked_lm, toy_task, word_tokenizer

from course_lib.recipes.pretrained import tied_mlm_head
from course_lib.training import finetune as ft
from course_lib.training.finetune import FinetuneConfig, classification_metrics, finetune
from course_lib.training.loop import NonFiniteLossError


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices: one thread is much faster than several, above all on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


FAST = dict(progress=False, batch_size=16, lr=1e-2, max_length=16, warmup_ratio=0.0)


def test_learns_a_separable_task_and_reports_history():
    model, tok = tiny_classifier(), word_tokenizer()
    result = finetune(model, tok, toy_task(192), toy_task(60, seed=1),
                      FinetuneConfig(epochs=4, patience=None, **FAST), device="cpu")
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    assert result.steps == 4 * 12 and result.best_epoch == 4
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert ft.evaluate(model, tok, toy_task(100, seed=2))["accuracy"] > 0.9
    assert result.n_trainable == sum(p.numel() for p in model.parameters())


def test_runs_are_reproducible_and_leave_the_global_rng_alone():
    weights = []
    for _ in range(2):
        torch.manual_seed(123)
        model = tiny_classifier()
        state = torch.get_rng_state()
        finetune(model, word_tokenizer(), toy_task(40), toy_task(10, seed=1),
                 FinetuneConfig(epochs=1, **FAST), device="cpu")
        assert torch.equal(torch.get_rng_state(), state)
        weights.append(model.classifier.weight.detach().clone())
    assert torch.equal(*weights)


def test_early_stopping_restores_the_weights_of_the_best_epoch(monkeypatch):
    scripted = iter([0.5, 0.9, 0.6, 0.4, 0.3])
    snapshots = []
    real_evaluate = ft.evaluate

    def fake_evaluate(model, *args, **kwargs):
        metrics = real_evaluate(model, *args, **kwargs)
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return metrics | {"macro_f1": next(scripted)}

    monkeypatch.setattr(ft, "evaluate", fake_evaluate)
    model = tiny_classifier()
    result = finetune(model, word_tokenizer(), toy_task(48), toy_task(12, seed=1),
                      FinetuneConfig(epochs=5, patience=2, **FAST), device="cpu")
    assert (result.best_epoch, result.best_val_macro_f1) == (2, 0.9)
    assert result.stopped_early and len(result.history) == 4
    final = model.state_dict()
    assert all(torch.equal(final[k], snapshots[1][k]) for k in final)
    assert not all(torch.equal(final[k], snapshots[-1][k]) for k in final)


def test_auxiliary_mlm_loss_is_trained_and_reported():
    mlm = tiny_masked_lm()
    model = tiny_classifier()
    model.bert.load_state_dict(mlm.bert.state_dict(), strict=False)
    head = tied_mlm_head(mlm, model)
    before = head.predictions.transform.dense.weight.detach().clone()
    result = finetune(model, word_tokenizer(), toy_task(32), toy_task(8, seed=1),
                      FinetuneConfig(epochs=1, mlm_alpha=0.5, **FAST), mlm_head=head,
                      device="cpu")
    assert result.history[0]["train_mlm_loss"] > 0
    assert not torch.equal(head.predictions.transform.dense.weight, before)
    with pytest.raises(ValueError, match="mlm_alpha=0.5 needs an mlm_head"):
        finetune(model, word_tokenizer(), toy_task(8), toy_task(8),
                 FinetuneConfig(mlm_alpha=0.5, **FAST))


@pytest.mark.parametrize("train, message", [
    ([], "train is empty; expected a non-empty list of \\(text, label\\) pairs"),
    ([("w1 w2", 3)], "train\\[0\\] has label 3; expected an integer class index in \\[0, 3\\)"),
    ([("w1", 0), ("w2", -1)], "train\\[1\\] has label -1"),
    ([("w1", 1.0)], "train\\[0\\] has label 1.0; expected an integer"),
    ([("w1", True)], "train\\[0\\] has label True"),
    ([("", 1)], "train\\[0\\] has text ''; expected a non-empty string"),
    ([("w1",)], "train\\[0\\] is \\('w1',\\); expected a \\(text, label\\) pair"),
])
def test_bad_training_data_gets_a_clear_error(train, message):
    with pytest.raises(ValueError, match=message):
        finetune(tiny_classifier(), word_tokenizer(), train, toy_task(4), FinetuneConfig(**FAST))


def test_empty_validation_and_bad_configs():
    with pytest.raises(ValueError, match="validation is empty"):
        finetune(tiny_classifier(), word_tokenizer(), toy_task(4), [], FinetuneConfig(**FAST))
    with pytest.raises(ValueError, match="patience must be a positive integer or None; got 0"):
        FinetuneConfig(patience=0)
    with pytest.raises(ValueError, match="epochs must be a positive integer; got 0"):
        FinetuneConfig(epochs=0)
    with pytest.raises(TypeError, match="config must be a FinetuneConfig"):
        finetune(tiny_classifier(), word_tokenizer(), toy_task(4), toy_task(4), {"lr": 1})


def test_non_finite_loss_stops_training():
    model = tiny_classifier()
    with torch.no_grad():
        model.classifier.bias[0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="at step 1"):
        finetune(model, word_tokenizer(), toy_task(8), toy_task(4), FinetuneConfig(**FAST))


def test_batches_cover_every_example_once_and_group_by_length():
    lengths = [int(x) for x in torch.randint(1, 50, (1000,))]
    gen = torch.Generator().manual_seed(0)
    for group in (False, True):
        batches = ft.length_grouped_batches(lengths, 32, gen, group=group)
        assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert sum(spread) / len(spread) < 10  # grouped: similar lengths share a batch


def test_pad_batch_and_predictions_come_back_in_input_order():
    batch = ft.pad_batch([[1, 5, 2], [1, 2]], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 5, 2], [1, 2, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    model, tok = tiny_classifier().eval(), word_tokenizer()
    texts = ["w5 w6 w7 w8 w9", "w3", "w4 w5 w6"]
    logits = ft.predict_logits(model, tok, texts, batch_size=2)
    for text, row in zip(texts, logits):
        with torch.no_grad():
            alone = model(**tok(text, return_tensors="pt")).logits[0]
        torch.testing.assert_close(row, alone, atol=1e-5, rtol=1e-5)


def test_classification_metrics_known_values():
    metrics = classification_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], num_labels=3)
    # per class: precision (1/2, 2/3, 1), recall (1/2, 1, 1/2)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["macro_precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert metrics["macro_recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    f1 = [0.5, 0.8, 2 / 3]
    assert metrics["macro_f1"] == pytest.approx(sum(f1) / 3)


def test_an_evaluation_without_a_loss_still_drives_early_stopping(monkeypatch):
    """Chapter 6's exercise replaces ``evaluate`` by one that returns only macro-F1."""
    from course_lib.training import finetune as ft

    scripted = iter([0.5, 0.7, 0.6, 0.65, 0.64])
    monkeypatch.setattr(ft, "evaluate",
                        lambda *a, **k: {"macro_f1": next(scripted), "predictions": []})
    tok = word_tokenizer()
    fit = ft.finetune(tiny_classifier(3), tok, toy_task(8), toy_task(4, 1),
                      ft.FinetuneConfig(epochs=5, patience=2, batch_size=4, progress=False),
                      device="cpu")
    assert (fit.best_epoch, len(fit.history), fit.stopped_early) == (2, 4, True)


def test_early_stopping_never_keeps_a_model_that_is_still_warming_up(monkeypatch):
    """Chapter 6's artefact: the best F1 of the first epochs, inside the warmup, came from
    a majority-class model and stopped the run. Those evaluations are now recorded but
    neither kept nor counted towards patience."""
    scripted = iter([0.9, 0.8, 0.3, 0.5, 0.4, 0.45, 0.2])
    monkeypatch.setattr(ft, "evaluate",
                        lambda *a, **k: {"macro_f1": next(scripted), "predictions": []})
    # 7 epochs of 3 steps: 21 steps, warmup round(0.3 * 21) = 6 steps (epochs 1-2);
    # min_steps 9: evaluations from epoch 3 on are candidates
    fit = ft.finetune(tiny_classifier(3), word_tokenizer(), toy_task(12), toy_task(4, 1),
                      ft.FinetuneConfig(epochs=7, patience=2, batch_size=4, warmup_ratio=0.3,
                                        min_steps=9, progress=False), device="cpu")
    assert fit.first_candidate_epoch == 3
    assert (fit.best_epoch, fit.best_val_macro_f1) == (4, 0.5)
    assert (len(fit.history), fit.stopped_early) == (6, True)


def test_the_warmup_alone_also_guards_early_stopping(monkeypatch):
    scripted = iter([0.9, 0.1, 0.2, 0.15, 0.1, 0.3])
    monkeypatch.setattr(ft, "evaluate",
                        lambda *a, **k: {"macro_f1": next(scripted), "predictions": []})
    fit = ft.finetune(tiny_classifier(3), word_tokenizer(), toy_task(8), toy_task(4, 1),
                      ft.FinetuneConfig(epochs=6, patience=2, batch_size=4, warmup_ratio=0.3,
                                        progress=False), device="cpu")
    # 12 steps, warmup 4: epoch 1 (step 2) is inside it, epoch 2 (step 4) is not
    assert fit.first_candidate_epoch == 2
    assert (fit.best_epoch, len(fit.history), fit.stopped_early) == (3, 5, True)


def test_evaluations_every_few_epochs_and_always_after_the_last():
    fit = finetune(tiny_classifier(), word_tokenizer(), toy_task(48), toy_task(12, seed=1),
                   FinetuneConfig(epochs=7, patience=None, eval_every=3, **FAST),
                   device="cpu")
    assert [row["epoch"] for row in fit.history] == [3, 6, 7]
    assert [row["step"] for row in fit.history] == [9, 18, 21]
    assert fit.best_epoch == 7 and fit.steps == 21


def test_a_minimum_longer_than_the_run_is_refused():
    with pytest.raises(ValueError, match=r"min_steps=100 exceeds the run's 6 steps"):
        finetune(tiny_classifier(), word_tokenizer(), toy_task(48), toy_task(12, seed=1),
                 FinetuneConfig(epochs=2, min_steps=100, **FAST), device="cpu")


def test_mean_pooled_features_are_the_mean_over_each_texts_own_tokens():
    """Batched, padded and reordered by length, each row equals the text encoded alone."""
    model, tok = tiny_classifier(), word_tokenizer()
    model.train()
    texts = [t for t, _ in toy_task(7)] + ["a"]
    feats = ft.mean_pooled_features(model, tok, texts, batch_size=3, max_length=16)
    assert feats.shape == (8, model.config.hidden_size) and model.training
    model.eval()
    with torch.no_grad():
        for text, row in zip(texts, feats):
            ids = torch.tensor([tok(text, truncation=True, max_length=16)["input_ids"]])
            alone = model.base_model(input_ids=ids).last_hidden_state.mean(1)[0]
            torch.testing.assert_close(row, alone, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="texts is empty"):
        ft.mean_pooled_features(model, tok, [])
