"""The training loop: learns, resumes to the same result, stops on NaN, clear errors."""

import json
import math

import numpy as np
import pytest
import torch

from course_lib.data.tokenizers import CharTokenizer
from course_lib.data.tokens import train_val_batches
from course_lib.models import GPT, GPTConfig
from course_lib.training import loop as T
from course_lib.training.cli import main, random_walk_tokens

CONFIG = GPTConfig(vocab_size=16, context_length=16, n_layer=1, n_head=2, d_model=32)
TOKENS = random_walk_tokens(20_000, vocab_size=16, max_step=2, seed=0)  # entropy rate ln 2
BATCHES = train_val_batches(TOKENS[:18_000], TOKENS[18_000:], batch_size=8, context_length=16)


def fresh_model(seed=0):
    torch.manual_seed(seed)
    return GPT(CONFIG)


def run(steps=12, resume=False, get_batch=BATCHES, **kwargs):
    config = T.TrainConfig(max_steps=steps, lr=3e-3, warmup_steps=3, eval_interval=4,
                           eval_batches=2, progress=False, **kwargs)
    return T.train(fresh_model(), get_batch, config, device="cpu", resume=resume)


def test_loss_falls_towards_the_entropy_rate():
    result = run(steps=40)
    assert result.train_loss[0][1] > 2.5  # about ln 16 = 2.77 at the start
    assert result.final_val_loss < 1.7  # on the way to ln 2 = 0.69
    assert result.steps == 40 and len(result.train_loss) == 40
    assert [s for s, _ in result.val_loss] == list(range(4, 41, 4))
    assert result.tokens == 40 * 8 * 16
    assert result.flops == result.tokens * result.flops_per_token > 0


def test_learning_rate_follows_warmup_then_cosine():
    result = run(steps=12)
    lrs = [lr for _, lr in result.lr]
    assert lrs[:3] == pytest.approx([1e-3, 2e-3, 3e-3])
    assert lrs[3] == pytest.approx(3e-3)
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    schedule = T.WarmupCosine(warmup=3, total=12, min_ratio=0.1)
    assert schedule(12) == pytest.approx(0.1) and schedule(100) == pytest.approx(0.1)


class Interrupt(Exception):
    pass


def interrupted_after(n_calls):
    """A batch function that fails on its (n_calls + 1)-th training batch, like a kill."""
    calls = {"train": 0}

    def get_batch(split, generator):
        if split == "train":
            calls["train"] += 1
            if calls["train"] > n_calls:
                raise Interrupt
        return BATCHES(split, generator)

    return get_batch


def test_resume_reaches_the_same_result_as_an_uninterrupted_run(tmp_path):
    full = run(steps=12, checkpoint_dir=str(tmp_path / "full"))
    with pytest.raises(Interrupt):  # checkpoint at step 8, killed during step 10
        run(steps=12, get_batch=interrupted_after(9), checkpoint_dir=str(tmp_path / "cut"),
            checkpoint_interval=4)
    resumed = run(steps=12, resume=True, checkpoint_dir=str(tmp_path / "cut"),
                  checkpoint_interval=4)
    assert resumed.resumed_from == 8
    assert resumed.final_train_loss == pytest.approx(full.final_train_loss, abs=1e-6)
    for name in ("train_loss", "val_loss"):
        got, expected = getattr(resumed, name), getattr(full, name)
        assert [s for s, _ in got] == [s for s, _ in expected]
        assert [v for _, v in got] == pytest.approx([v for _, v in expected], abs=1e-6)
    for a, b in zip(fresh_resumed_weights(tmp_path), fresh_resumed_weights(tmp_path, "full")):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert resumed.tokens == full.tokens


def fresh_resumed_weights(tmp_path, run_name="cut"):
    """Weights of the final checkpoint of a run, loaded into a new model."""
    from course_lib.training.checkpoint import latest_checkpoint, load_checkpoint

    model = fresh_model(seed=1)
    load_checkpoint(latest_checkpoint(tmp_path / run_name), model=model)
    return list(model.parameters())


def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    result = run(steps=4, resume=True, checkpoint_dir=str(tmp_path))
    assert result.resumed_from is None and result.steps == 4


def test_resume_with_different_settings_is_refused(tmp_path):
    run(steps=4, checkpoint_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"config differs in \['max_steps'\]"):
        run(steps=8, resume=True, checkpoint_dir=str(tmp_path))


def test_non_finite_loss_stops_with_the_step_named():
    calls = []

    def explodes(model, batch):
        calls.append(1)
        loss = T.lm_loss(model, batch)
        return loss * math.inf if len(calls) == 3 else loss

    model = fresh_model()
    config = T.TrainConfig(max_steps=5, progress=False)
    with pytest.raises(T.NonFiniteLossError, match="loss is inf at step 3"):
        T.train(model, BATCHES, config, device="cpu", loss_fn=explodes)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # no update was applied


def test_gradient_accumulation_counts_tokens_and_matches_big_batch():
    small = run(steps=3, grad_accum_steps=2)
    assert small.tokens == 3 * 2 * 8 * 16


def test_trains_and_checkpoints_a_transformers_masked_lm(tmp_path):
    from course_lib.models.bert import tiny_bert
    from course_lib.training.masked import mask_tokens

    torch.manual_seed(0)
    model = tiny_bert(vocab_size=17, context_length=16, n_layer=1, n_head=2, d_model=32)

    def masked(window, generator):
        return mask_tokens(window, mask_token_id=16, vocab_size=17, generator=generator)

    batches = train_val_batches(TOKENS[:18_000], TOKENS[18_000:], 8, 16, transform=masked)
    config = T.TrainConfig(max_steps=5, progress=False, eval_batches=2,
                           checkpoint_dir=str(tmp_path))
    result = T.train(model, batches, config, device="cpu")
    assert math.isfinite(result.final_val_loss) and result.flops_per_token > 0
    saved = json.loads((tmp_path / "step_000005" / "state.json").read_text())
    assert saved["state"]["model_config"]["hidden_size"] == 32


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_steps=0), "max_steps must be a positive integer; got 0"),
    (dict(max_steps=5, lr=-1.0), "lr must be a positive number; got -1.0"),
    (dict(max_steps=5, warmup_steps=6), r"warmup_steps \(6\) exceeds the schedule's 5 steps"),
    (dict(max_steps=5, precision="fp16"), "precision must be 'auto', 'fp32' or 'bf16'"),
    (dict(max_steps=5, grad_clip=0.0), "grad_clip must be positive or None; got 0.0"),
])
def test_bad_train_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        T.TrainConfig(**kwargs)


def test_bad_calls_to_train():
    with pytest.raises(ValueError, match="resume=True needs config.checkpoint_dir"):
        T.train(fresh_model(), BATCHES, T.TrainConfig(max_steps=1), resume=True)
    with pytest.raises(TypeError, match="config must be a TrainConfig; got dict"):
        T.train(fresh_model(), BATCHES, {"max_steps": 1})
    with pytest.raises(ValueError, match="bf16' autocasts on CUDA only"):
        T.train(fresh_model(), BATCHES, T.TrainConfig(max_steps=1, precision="bf16"),
                device="cpu")


def test_cli_writes_results_with_provenance(tmp_path, capsys):
    out = tmp_path / "run.json"
    main(["--data", "random-walk", "--n-tokens", "5000", "--max-steps", "3", "--warmup-steps", "0",
          "--context-length", "16", "--d-model", "16", "--n-layer", "1", "--no-progress",
          "--out", str(out), "--device", "cpu"])
    record = json.loads(out.read_text())
    assert record["result"]["steps"] == 3
    assert record["provenance"]["versions"]["torch"] == torch.__version__
    assert record["data"]["entropy_rate_nats"] == pytest.approx(math.log(4))
    assert "final train loss" in capsys.readouterr().out


def test_cli_reads_token_files(tmp_path):
    np.save(tmp_path / "tokens.npy", TOKENS[:4000].astype(np.uint16))
    TOKENS[:4000].astype(np.uint16).tofile(tmp_path / "tokens.bin")
    for name in ("tokens.npy", "tokens.bin"):
        out = tmp_path / f"{name}.json"
        main(["--data", str(tmp_path / name), "--max-steps", "2", "--warmup-steps", "0", "--context-length", "16",
              "--d-model", "16", "--n-layer", "1", "--no-progress", "--out", str(out),
              "--device", "cpu"])
        assert json.loads(out.read_text())["data"]["vocab_size"] == 16
    with pytest.raises(FileNotFoundError, match="no such file"):
        main(["--data", str(tmp_path / "missing.npy")])


def test_cli_trains_on_a_text_corpus_with_each_tokenizer(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("to be or not to be, that is the question\n" * 200, encoding="utf-8")
    saved = CharTokenizer.from_text(corpus.read_text()).save(tmp_path / "chars.json")
    common = ["--data", str(corpus), "--max-steps", "2", "--warmup-steps", "0",
              "--context-length", "16", "--d-model", "16", "--n-layer", "1", "--no-progress",
              "--device", "cpu", "--bpe-vocab-size", "300"]
    for tokenizer, vocab in (("char", 15), ("bpe", None), (str(saved), 15)):
        out = tmp_path / "run.json"
        main(common + ["--tokenizer", tokenizer, "--out", str(out)])
        record = json.loads(out.read_text())
        assert record["data"]["source"] == str(corpus) and record["result"]["steps"] == 2
        if vocab is not None:
            assert record["data"]["vocab_size"] == vocab
    assert list((tmp_path / "cache").glob("tiny.txt-*.bin"))  # ids cached by encode_corpus
    with pytest.raises(ValueError, match="--tokenizer is 'wordpiece'; expected 'bpe', 'char'"):
        main(common + ["--tokenizer", "wordpiece"])


def test_random_walk_and_windows():
    tokens = random_walk_tokens(1000, vocab_size=10, max_step=3, seed=1)
    steps = np.diff(tokens) % 10
    assert set(steps.tolist()) == {1, 2, 3}
    x, y = BATCHES("train", torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16) and torch.equal(x[:, 1:], y[:, :-1])
    with pytest.raises(ValueError, match="max_step must be in"):
        random_walk_tokens(10, vocab_size=4, max_step=4)


def test_the_linear_schedule_is_transformers_linear_schedule():
    from transformers import get_linear_schedule_with_warmup

    for warmup, total in ((0, 10), (3, 10), (10, 10), (7, 40)):
        ours, hf = (torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
                    for _ in range(2))
        a = torch.optim.lr_scheduler.LambdaLR(ours, T.WarmupLinear(warmup, total))
        b = get_linear_schedule_with_warmup(hf, warmup, total)
        for _ in range(total + 2):
            assert a.get_last_lr() == b.get_last_lr()
            ours.step(), hf.step(), a.step(), b.step()
    with pytest.raises(ValueError,
                       match="schedule must be 'cosine', 'linear' or 'wsd'; got 'step'"):
        T.TrainConfig(max_steps=3, schedule="step")


def test_warmup_stable_decay_at_known_steps():
    # 100 steps, warmup 10, cooldown over the last 20 (steps 80..99), 1 - sqrt to 0.1.
    wsd = T.WarmupStableDecay(warmup=10, total=100, decay_fraction=0.2, min_ratio=0.1)
    assert [wsd(s) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert wsd(10) == wsd(50) == wsd(79) == 1.0
    assert wsd(80) == pytest.approx(1.0)
    assert wsd(85) == pytest.approx(0.1 + 0.9 * (1 - math.sqrt(0.25)))  # 0.55
    assert wsd(95) == pytest.approx(0.1 + 0.9 * (1 - math.sqrt(0.75)))
    assert wsd(100) == pytest.approx(0.1) and wsd(1000) == pytest.approx(0.1)
    factors = [wsd(s) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))  # never rises after warmup
    # No warmup, the whole run a cooldown, to zero.
    assert T.WarmupStableDecay(0, 4, decay_fraction=1.0)(1) == pytest.approx(0.5)


def test_train_follows_the_wsd_schedule():
    result = run(steps=12, schedule="wsd", decay_fraction=0.25)  # warmup 3, cooldown 3
    lrs = [lr for _, lr in result.lr]  # the rate each step used
    wsd = T.WarmupStableDecay(3, 12, 0.25, 0.1)
    assert lrs == pytest.approx([3e-3 * wsd(s) for s in range(12)])
    assert lrs[:3] == pytest.approx([1e-3, 2e-3, 3e-3])
    assert lrs[3:10] == pytest.approx([3e-3] * 7)  # stable up to the cooldown
    assert lrs[11] == pytest.approx(3e-3 * (0.1 + 0.9 * (1 - math.sqrt(2 / 3))))


def test_new_schedule_settings_leave_stored_specs_alone():
    assert "decay_fraction" not in T.TrainConfig(max_steps=5).spec()
    assert "schedule" not in T.TrainConfig(max_steps=5).spec()
    spec = T.TrainConfig(max_steps=5, schedule="wsd", decay_fraction=0.4).spec()
    assert spec["schedule"] == "wsd" and spec["decay_fraction"] == 0.4


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(warmup=-1, total=10), ValueError, "warmup must be a non-negative integer; got -1"),
    (dict(warmup=1.5, total=10), TypeError, "warmup must be a non-negative integer; got 1.5"),
    (dict(warmup=0, total=0), ValueError, "total must be a positive integer; got 0"),
    (dict(warmup=0, total=10, decay_fraction=0.0), ValueError,
     r"decay_fraction must be in \(0, 1\]; got 0.0"),
    (dict(warmup=0, total=10, decay_fraction=1.5), ValueError,
     r"decay_fraction must be in \(0, 1\]; got 1.5"),
    (dict(warmup=0, total=10, min_ratio=-0.1), ValueError,
     r"min_ratio must be in \[0, 1\]; got -0.1"),
    (dict(warmup=9, total=10, decay_fraction=0.2), ValueError,
     r"warmup \(9 steps\) runs into the cooldown, which starts at step 8"),
])
def test_bad_warmup_stable_decay(kwargs, error, message):
    with pytest.raises(error, match=message):
        T.WarmupStableDecay(**kwargs)


def test_bad_wsd_train_configs():
    with pytest.raises(ValueError, match=r"decay_fraction must be in \(0, 1\]; got 2"):
        T.TrainConfig(max_steps=10, schedule="wsd", decay_fraction=2)
    with pytest.raises(ValueError, match="runs into the cooldown"):
        T.TrainConfig(max_steps=10, warmup_steps=9, schedule="wsd")


def test_stop_ends_training_after_an_evaluation():
    model = GPT(GPTConfig(vocab_size=12, context_length=8, n_layer=1, n_head=2, d_model=16))
    tokens = (np.arange(600) % 12).astype(np.uint16)
    seen = []
    result = T.train(model, train_val_batches(tokens[:500], tokens[500:], 4, 8),
                     T.TrainConfig(max_steps=10, eval_steps=(2, 4, 6), progress=False,
                                   eval_batches=1),
                     device="cpu", stop=lambda r: seen.append(r.steps) or len(seen) == 2)
    assert result.steps == 4 and [s for s, _ in result.val_loss] == [2, 4]
