"""Sweeps: grids expand as documented, bad grids are refused by name, runs are recorded
with what they measured, a killed sweep resumes, and no sweep loses, repeats or overspends."""

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib.models import flops
from course_lib.scaling import runs as run_module
from course_lib.scaling import sweep
from course_lib.scaling.budget import BudgetExceededError, FlopBudget
from course_lib.scaling.results import load_results

ROOT = Path(__file__).resolve().parents[2]
DATA = {"kind": "keyvalue", "vocab_size": 8, "key_length": 2, "value_length": 2,
        "n_keys": 40, "zipf_exponent": 1.3, "val_tokens": 2048}
TINY = {"n_layer": 1, "d_model": 8, "n_head": 2, "lr": 0.01}
DEFAULTS = {"batch_size": 4, "context_length": 8, "eval_batches": 2}


@pytest.fixture(autouse=True)
def one_thread(tmp_path, monkeypatch):
    """Token caches go to a temporary folder, never the user's; tiny models train on
    one thread (several threads only contend on a busy machine)."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def grid(**extra):
    return {"data": DATA, "defaults": DEFAULTS,
            "models": [TINY | {"name": "a"}, TINY | {"name": "b", "d_model": 16}]} | extra


# ------------------------------------------------------------------ expanding grids
def test_isoflop_runs_spend_their_budget_and_respect_the_ratio_range():
    data, runs = sweep.expand_grid(grid(budgets=[1e7, 1e8], tokens_per_param=[1, 20]))
    for run in runs:
        n = flops.param_counts(run.model_config(8)).non_embedding
        assert 6 * n * run.tokens == pytest.approx(run.budget, rel=1e-3)
        assert 1 <= run.tokens / n <= 20
    # a (888 parameters) would see 21 tokens per parameter at 1e8 FLOPs, b (3,312)
    # 0.15 at 1e7: both left out
    assert [r.name for r in runs] == ["a-C1e+07", "b-C1e+08"]
    assert data.language().entropy_rate() > 0


def test_budgets_can_be_counted_flops_instead_of_6nd():
    _, runs = sweep.expand_grid(grid(budgets=[1e8], budget_flops="counted"))
    for run in runs:
        assert run.planned_flops(8) == pytest.approx(1e8, rel=1e-2)  # whole steps
        assert run.compute(8) < 1e8  # 6ND leaves out attention and the output layer
    with pytest.raises(ValueError, match="budget_flops must be"):
        sweep.expand_grid(grid(budgets=[1e8], budget_flops="all"))


def test_fixed_tokens_learning_rate_lists_and_seeds_multiply():
    _, runs = sweep.expand_grid(grid(tokens=[256, 512], seeds=[0, 1]) | {
        "models": [TINY | {"name": "a", "lr": [0.01, 0.003]}]})
    assert sorted(r.name for r in runs) == sorted(
        f"a-D{d}-lr{lr}-s{s}" for d in (256, 512) for lr in ("0.01", "0.003") for s in (0, 1))
    assert {r.steps for r in runs} == {8, 16}  # tokens / (batch 4 x context 8)
    assert {r.seed for r in runs} == {0, 1}


def test_budgets_can_name_their_models():
    _, runs = sweep.expand_grid(grid(budgets={"1e8": ["b"], "1e7": ["a", "b"]}))
    assert [r.name for r in runs] == ["a-C1e+07", "b-C1e+07", "b-C1e+08"]
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['c'\]"):
        sweep.expand_grid(grid(budgets={"1e7": ["c"]}))


def test_a_run_that_repeats_an_earlier_one_is_left_out():
    # a at 1e7 FLOPs trains on 1,877 tokens = 59 steps; D = 1,880 would repeat it
    _, runs = sweep.expand_grid(grid(budgets=[1e7], tokens=[1880, 4096]) | {
        "models": [TINY | {"name": "a"}]})
    assert [r.name for r in runs] == ["a-C1e+07", "a-D4.1e+03"]


@pytest.mark.parametrize("bad, message", [
    ({"budget": 1}, "unknown key"),
    ({"models": [TINY | {"name": "a", "width": 3}]}, r"models\[0\] has unknown key"),
    ({"data": {"kind": "audio"}}, "kind must be one of"),
    ({"data": DATA | {"n_keyz": 3}}, "unknown key"),
    ({"models": [TINY | {"name": "a"}] * 2, "tokens": [256]}, "same name"),
    ({"budgets": [-1e9]}, "budgets has -1000000000.0; expected positive"),
    ({"budgets": ["lots"]}, "budgets has 'lots'"),
    ({"models": [{"name": "a", "n_layer": 1, "d_model": 8, "n_head": 2}]},
     r"models\[0\] \('a'\) has no 'lr'"),
    ({"models": [TINY | {"name": "a", "lr": -0.1}], "tokens": [256]},
     r"models\[0\].*lr must be a positive, finite number; got -0.1"),
    ({"defaults": DEFAULTS | {"batch_size": 0}, "tokens": [256]},
     "batch_size must be a positive integer; got 0"),
    ({"defaults": DEFAULTS | {"context_length": 6}, "tokens": [256]},
     "multiple of the segment length 4"),
    ({"seeds": [0, -1], "tokens": [256]}, "seeds must be a list of non-negative"),
    ({"tokens": [0]}, "tokens has 0"),
])
def test_bad_grids_are_refused_by_name(bad, message):
    with pytest.raises(ValueError, match=message):
        sweep.expand_grid(grid() | bad, source="grid 'g.json'")


def test_a_bad_grid_file_names_the_file(tmp_path, capsys):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(grid(budgets=[0])))
    with pytest.raises(ValueError, match=r"grid '.*g\.json': budgets has 0"):
        sweep.load_grid(path)
    assert sweep.main(["--grid", str(path), "--out", str(tmp_path / "r.jsonl")]) == 2
    assert "budgets has 0" in capsys.readouterr().err
    path.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        sweep.load_grid(path)


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_shards_partition_the_grid(count):
    _, runs = sweep.expand_grid(grid(tokens=[256, 512, 1024], budgets=[1e6, 1e7]))
    shards = [sweep.shard(runs, i, count) for i in range(count)]
    names = [r.name for part in shards for r in part]
    assert sorted(names) == sorted(r.name for r in runs)  # nothing lost...
    assert len(names) == len(set(names))  # ...nothing twice
    assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced


@pytest.mark.parametrize("text", ["3/3", "1-4", "a/b", "-1/2"])
def test_bad_shard_is_refused(text):
    with pytest.raises(ValueError, match="shard"):
        sweep.parse_shard(text)


@pytest.mark.parametrize("bad, message", [
    ({"tokens": 10}, "at least one batch"),
    ({"tokens": 2048.0}, "must be an integer"),
    ({"warmup_fraction": 1.0}, "warmup_fraction"),
    ({"lr": math.inf}, "lr must be a positive, finite"),
    ({"weight_decay": -0.1}, "weight_decay must be a non-negative"),
    ({"schedule_tokens": 100}, "schedule_tokens must be an integer >= tokens"),
    ({"eval_tokens": [10**9]}, "eval_tokens must be integers in"),
    ({"budget": 0.0}, "budget must be a positive"),
    ({"d_model": 9}, "divisible by n_head"),
])
def test_a_bad_run_spec_names_what_is_wrong(bad, message):
    fields_ = {"name": "x", "n_layer": 1, "d_model": 8, "n_head": 2, "tokens": 4096,
               "lr": 0.01, "batch_size": 4, "context_length": 8}
    with pytest.raises(ValueError, match=rf"run 'x': .*{message}"):
        sweep.RunSpec(**(fields_ | bad))


# ---------------------------------------------------------------------- one run
def test_a_run_records_what_it_measured_and_its_provenance():
    data, runs = sweep.expand_grid(grid(tokens=[2048]))
    record = sweep.run_one(runs[0], data, device="cpu", progress=False)
    json.dumps(record, allow_nan=False)  # plain JSON
    config = runs[0].model_config(8)
    counts = flops.param_counts(config)
    model, res = record["model"], record["result"]
    assert record["status"] == "finished"
    assert model["non_embedding_params"] == counts.non_embedding
    assert res["tokens"] == 2048 and res["steps"] == 64
    assert res["flops_6nd"] == 6 * counts.non_embedding * 2048
    # counted FLOPs: weights, attention and the output layer
    assert res["flops_per_token"] == flops.flops_per_token(config, include_unembedding=True)
    assert res["flops"] == res["flops_per_token"] * 2048 > res["flops_no_unembedding"]
    assert math.isfinite(res["final_val_loss"]) and math.isfinite(res["final_train_loss"])
    # the true language scored on the same tokens: close to its entropy rate
    assert res["val_true_loss"] == pytest.approx(record["data"]["entropy_rate"], rel=0.1)
    assert res["final_val_loss"] > res["val_true_loss"]
    assert len(res["val_loss_by_position"]) == 4
    assert np.mean(res["val_loss_by_position"]) == pytest.approx(res["final_val_loss"])
    for key in ("versions", "device", "torch_threads", "started", "finished"):
        assert key in record["provenance"]
    assert record["run_id"] == sweep.run_id(runs[0], data)


def test_the_same_run_gives_the_same_numbers_and_another_seed_others():
    data, runs = sweep.expand_grid(grid(tokens=[1024], seeds=[0, 1]))
    a, b = (sweep.run_one(runs[0], data, device="cpu", progress=False) for _ in range(2))
    assert a["result"]["final_val_loss"] == b["result"]["final_val_loss"]
    c = sweep.run_one(runs[1], data, device="cpu", progress=False)
    assert c["result"]["final_val_loss"] != a["result"]["final_val_loss"]


def test_validation_is_scored_along_the_run_and_the_schedule_can_be_longer():
    data, _ = sweep.expand_grid(grid())
    spec = sweep.RunSpec("a", 1, 8, 2, tokens=4096, lr=0.01, batch_size=4, context_length=8,
                         eval_tokens=(1024, 2048), schedule_tokens=8192)
    record = sweep.run_one(spec, data, device="cpu", progress=False)
    curve = record["result"]["val_curve"]
    assert [t for t, _ in curve] == [1024, 2048, 4096]
    assert curve[-1][1] == pytest.approx(record["result"]["final_val_loss"])
    config = spec.train_config()
    assert config.max_steps == 128 and config.total_schedule_steps == 256
    halving = sweep.RunSpec("a", 1, 8, 2, tokens=4096, lr=0.01, batch_size=4,
                            context_length=8, eval_points=3)
    assert halving.train_config().eval_steps == (16, 32, 64)


def test_training_windows_are_fresh_whole_segments():
    data, _ = sweep.expand_grid(grid())
    spec = sweep.RunSpec("a", 1, 8, 2, tokens=2048, lr=0.01, batch_size=4, context_length=8)
    get_batch = data.batch_fn(spec, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    (x1, y1), (x2, _) = get_batch("train", g), get_batch("train", g)
    assert x1.shape == y1.shape == (4, 8) and not torch.equal(x1, x2)
    assert torch.equal(x1[:, 1:], y1[:, :-1])
    language = data.language()
    for row in torch.cat([x1, y1[:, -1:]], 1):
        assert np.isfinite(language.token_log_probs(row).numpy()).all()  # valid segments


def test_a_diverging_run_is_recorded_as_diverged_and_the_sweep_goes_on(tmp_path):
    data, runs = sweep.expand_grid(grid(tokens=[1024]) | {
        "defaults": DEFAULTS | {"grad_clip": None},
        "models": [TINY | {"name": "wild", "lr": 1e6}, TINY | {"name": "calm"}]})
    out = tmp_path / "runs.jsonl"
    new = sweep.run_sweep(runs, data, out, device="cpu", progress=False, log=lambda _: None)
    wild, calm = (next(r for r in new if r["spec"]["name"].startswith(n)) for n in ("wild", "calm"))
    assert wild["status"] == "diverged" and wild["result"]["final_val_loss"] is None
    assert 1 <= wild["result"]["diverged_at_step"] <= 32
    assert wild["result"]["flops"] > 0 and "lower lr" in wild["result"]["message"]
    assert calm["status"] == "finished"
    assert len(load_results(out)) == 2


def test_the_true_language_scores_the_same_validation_tokens(tmp_path):
    data, _ = sweep.expand_grid(grid())
    x, y = data.validation_windows(8)
    assert x.shape == (2048 // 8, 8)
    stream = data.validation_stream()
    assert torch.equal(x.reshape(-1), stream[: x.numel()])
    assert data.true_loss(8) == pytest.approx(data.language().entropy_rate(), rel=0.15)


# ------------------------------------------------------------------- the sweep
def test_an_interrupted_sweep_resumes_without_losing_or_repeating_runs(tmp_path, monkeypatch):
    data, runs = sweep.expand_grid(grid(tokens=[256, 512, 768]))
    out = tmp_path / "runs.jsonl"
    real, calls = sweep.run_one, []

    def dies_on_third(spec, *args, **kwargs):
        calls.append(spec.name)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the third run
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(sweep, "run_one", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(runs, data, out, device="cpu", progress=False, log=lambda _: None)
    first = out.read_text().splitlines()
    assert len(first) == 2
    assert not list((tmp_path / "runs.jsonl.claims").iterdir())  # the claim was released
    monkeypatch.setattr(sweep, "run_one", real)
    new = sweep.run_sweep(runs, data, out, device="cpu", progress=False, log=lambda _: None)
    assert len(new) == len(runs) - 2
    lines = out.read_text().splitlines()
    assert lines[:2] == first  # finished records untouched
    ids = [json.loads(line)["run_id"] for line in lines]
    assert sorted(ids) == sorted(sweep.run_id(r, data) for r in runs)
    assert sweep.run_sweep(runs, data, out, device="cpu", log=lambda _: None) == []


def write_grid(tmp_path, **extra) -> Path:
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(grid(**extra)))
    return path


def cli(*args, **kwargs):
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "course_lib.scaling.sweep", *args, "--no-progress"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def test_a_killed_sweep_leaves_whole_lines_and_resumes(tmp_path):
    """SIGKILL (no clean-up at all) while the sweep is running, then run it again."""
    path = write_grid(tmp_path, tokens=[1024, 2048, 3072, 4096, 5120])
    out = tmp_path / "runs.jsonl"
    args = ("--grid", str(path), "--out", str(out), "--threads", "1")
    process = cli(*args)
    deadline = time.monotonic() + 120
    while not (out.exists() and len(out.read_text().splitlines()) >= 2):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the sweep wrote nothing in 120 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = out.read_text()
    assert killed.endswith("\n")
    records = [json.loads(line) for line in killed.splitlines()]  # every line whole
    assert 2 <= len(records) < 10
    resumed = cli(*args)  # the dead process's claim is taken over
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert f"{len(records)} already in" in stdout
    final = load_results(out)
    assert len(final) == 10 and len(out.read_text().splitlines()) == 10
    assert out.read_text().startswith(killed)  # earlier records kept as they were


def test_two_sweeps_on_one_file_never_train_a_run_twice(tmp_path):
    path = write_grid(tmp_path, tokens=[512, 1024, 1536, 2048], seeds=[0, 1])
    out = tmp_path / "runs.jsonl"
    args = ("--grid", str(path), "--out", str(out), "--threads", "1")
    first, second = cli(*args), cli(*args)
    logs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, logs
    lines = out.read_text().splitlines()
    ids = [json.loads(line)["run_id"] for line in lines]
    assert len(ids) == 16 and len(set(ids)) == 16
    trained = sum(out_.count("nats/token") for out_, _ in logs)
    assert trained == 16  # each run trained by exactly one of the two


def test_jobs_train_runs_side_by_side(tmp_path):
    data, runs = sweep.expand_grid(grid(tokens=[512, 1024]))
    out = tmp_path / "runs.jsonl"
    new = sweep.run_sweep(runs, data, out, device="cpu", progress=False, jobs=2,
                          log=lambda _: None)
    assert sorted(r["run_id"] for r in new) == sorted(sweep.run_id(r, data) for r in runs)
    assert len(out.read_text().splitlines()) == len(runs)


def test_cli_dry_run_lists_runs_and_shards(tmp_path, capsys):
    path = write_grid(tmp_path, tokens=[1024, 2048])
    for index in range(2):
        assert sweep.main(["--grid", str(path), "--out", str(tmp_path / "x.jsonl"),
                           "--shard", f"{index}/2", "--dry-run"]) == 0
        assert "2 runs, C = 6ND" in capsys.readouterr().out
    assert not (tmp_path / "x.jsonl").exists()


def test_budget_refuses_a_run_before_training_it(monkeypatch):
    data, runs = sweep.expand_grid(grid(tokens=[2048]))
    cost = runs[0].planned_flops(8)
    assert cost == flops.flops_per_token(runs[0].model_config(8),
                                         include_unembedding=True) * 2048
    assert cost > runs[0].compute(8)  # counted FLOPs, not the nominal 6ND
    budget = FlopBudget(cost * 1.5, "exploration")
    sweep.run_one(runs[0], data, device="cpu", progress=False, budget=budget)
    assert budget.spent == pytest.approx(cost)

    def no_training(*args, **kwargs):
        raise AssertionError("a refused run must not start training")

    monkeypatch.setattr(run_module, "train", no_training)
    with pytest.raises(BudgetExceededError, match=r"run 'a-D2.05e\+03' needs .* only"):
        sweep.run_one(runs[0], data, device="cpu", progress=False, budget=budget)
    assert len(budget.charges) == 1  # the refused run was not charged


def test_max_flops_holds_for_the_results_file_across_invocations(tmp_path, capsys):
    path = write_grid(tmp_path, tokens=[2048])
    data, runs = sweep.load_grid(path)
    out = tmp_path / "runs.jsonl"
    cap = 1.5 * runs[0].planned_flops(8)
    args = ["--grid", str(path), "--out", str(out), "--no-progress", "--max-flops", f"{cap}"]
    assert sweep.main(args) == 2
    assert "stopped: run 'b-D2.05e+03' needs" in capsys.readouterr().err
    assert len(load_results(out)) == 1
    assert sweep.main(args) == 2  # a second invocation does not start afresh
    assert "1 already in" in capsys.readouterr().out
    assert len(load_results(out)) == 1
    assert sweep.spent_flops(out) == pytest.approx(runs[0].planned_flops(8))


def test_max_flops_zero_allows_nothing(tmp_path, capsys):
    path = write_grid(tmp_path, tokens=[2048])
    out = tmp_path / "runs.jsonl"
    assert sweep.main(["--grid", str(path), "--out", str(out), "--no-progress",
                       "--max-flops", "0"]) == 2
    assert "0-FLOP" in capsys.readouterr().err
    assert not out.exists() or load_results(out) == []


def test_planned_flops_match_what_training_counts():
    data, runs = sweep.expand_grid(grid(tokens=[1024]))
    record = sweep.run_one(runs[1], data, device="cpu", progress=False)
    assert record["result"]["flops"] == pytest.approx(runs[1].planned_flops(8))


# ------------------------------------------------------------- other data kinds
def test_markov_samples_are_cached_and_reproducible(tmp_path):
    data = sweep.MarkovData(vocab_size=8, order=2, branching=3, train_tokens=5000,
                            val_tokens=1000)
    train, val = data.splits(tmp_path)
    assert train.dtype == np.uint8 and len(train) == 5000 and len(val) == 1000
    assert len(list(tmp_path.glob("*.npy"))) == 2
    again, _ = data.splits(tmp_path)
    assert np.array_equal(train, again)
    assert not np.array_equal(train[:1000], val)  # different seeds


def test_markov_runs_leave_out_targets_without_full_context():
    data = sweep.MarkovData(vocab_size=8, order=2, branching=3, train_tokens=5000,
                            val_tokens=1000)
    spec = sweep.RunSpec("a", 1, 8, 2, tokens=2048, lr=0.01, batch_size=4, context_length=8)
    x, y = data.batch_fn(spec, torch.device("cpu"))("train", torch.Generator().manual_seed(0))
    assert (y[:, : data.order - 1] == -100).all() and (y[:, data.order - 1:] >= 0).all()
    record = sweep.run_one(spec, data, device="cpu", progress=False)
    assert record["result"]["val_true_loss"] == pytest.approx(
        data.language().entropy_rate(), rel=0.15)


def test_a_tokenized_corpus_can_replace_the_synthetic_language(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 16, size=5000).astype(np.uint16)
    np.save(tmp_path / "corpus.npy", tokens)
    data, runs = sweep.expand_grid(grid(tokens=[1024]) | {
        "data": {"kind": "tokens", "path": str(tmp_path / "corpus.npy")}})
    record = sweep.run_one(runs[0], data, device="cpu", progress=False)
    assert record["model"]["config"]["vocab_size"] == 16  # read from the tokens
    assert record["result"]["val_true_loss"] is None  # no known floor
    assert math.isfinite(record["result"]["final_val_loss"])


def test_a_token_file_that_changed_is_refused(tmp_path):
    tokens = np.arange(5000, dtype=np.uint16) % 16
    np.save(tmp_path / "corpus.npy", tokens)
    data = sweep.TokenData(path=str(tmp_path / "corpus.npy"), sha256="0" * 64)
    spec = sweep.RunSpec("a", 1, 8, 2, tokens=1024, lr=0.01, batch_size=4, context_length=8)
    with pytest.raises(ValueError, match="the token file changed"):
        sweep.run_one(spec, data, device="cpu", progress=False)


def test_a_run_is_identified_by_its_settings_that_differ_from_the_defaults():
    data, _ = sweep.expand_grid(grid())
    base = dict(name="a", n_layer=1, d_model=8, n_head=2, tokens=4096, lr=0.01)
    same = sweep.RunSpec(**base, eval_points=0, schedule_tokens=None)  # defaults, spelled out
    assert sweep.run_id(sweep.RunSpec(**base), data) == sweep.run_id(same, data)
    assert sweep.run_id(sweep.RunSpec(**base, seed=1), data) != sweep.run_id(same, data)


def test_numpy_numbers_are_accepted_where_python_numbers_are():
    spec = sweep.RunSpec("a", np.int64(1), np.int64(8), np.int32(2), tokens=np.int64(4096),
                         lr=np.float32(0.01), batch_size=4, context_length=8)
    assert type(spec.d_model) is int and type(spec.lr) is float
    config = spec.model_config(np.int64(16))
    assert type(config.vocab_size) is int and config.d_model == 8


def test_a_run_can_use_the_modern_block_and_keeps_older_run_ids():
    gpt2 = sweep.RunSpec("a", 1, 8, 2, tokens=4096, lr=0.01, batch_size=4, context_length=8)
    llama = sweep.RunSpec("a", 1, 8, 2, tokens=4096, lr=0.01, batch_size=4, context_length=8,
                          norm="rmsnorm", mlp="swiglu", position="rope", bias=False)
    config = llama.model_config(16)
    assert (config.norm, config.mlp, config.position, config.bias) == (
        "rmsnorm", "swiglu", "rope", False)
    assert gpt2.model_config(16) == sweep.RunSpec(**(
        dataclasses.asdict(gpt2) | {"norm": "layernorm", "bias": True})).model_config(16)
    data = sweep.KeyValueData(n_keys=100)
    # defaults are not hashed: adding the block's options left every older id unchanged
    assert sweep.run_id(gpt2, data) == sweep.run_id(
        sweep.RunSpec(**dataclasses.asdict(gpt2)), data)
    assert sweep.run_id(llama, data) != sweep.run_id(gpt2, data)
