"""Sweeps: grids expand as documented, shards partition them, a killed sweep resumes."""

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

from course_lib import flops, sweep
from course_lib import runs as run_module
from course_lib.budget import BudgetExceededError, FlopBudget
from course_lib.results import load_results

ROOT = Path(__file__).resolve().parents[2]
DATA = {"kind": "markov", "vocab_size": 8, "order": 2, "branching": 3, "seed": 0,
        "train_tokens": 20_000, "val_tokens": 4_000}
TINY = {"n_layer": 1, "d_model": 8, "n_head": 2, "lr": 0.01}
DEFAULTS = {"batch_size": 4, "context_length": 8, "eval_batches": 2}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Token samples go to a temporary cache, never the user's; tiny models train on
    one thread (several threads only contend on a busy machine)."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def grid(**extra):
    return {"data": DATA, "defaults": DEFAULTS,
            "models": [TINY | {"name": "a"}, TINY | {"name": "b", "d_model": 16}]} | extra


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


def test_fixed_tokens_and_learning_rate_lists_multiply():
    _, runs = sweep.expand_grid(grid(tokens=[256, 512]) | {
        "models": [TINY | {"name": "a", "lr": [0.01, 0.003]}]})
    assert sorted(r.name for r in runs) == sorted(
        ["a-D256-lr0.01", "a-D512-lr0.01", "a-D256-lr0.003", "a-D512-lr0.003"])
    assert {r.steps for r in runs} == {8, 16}  # tokens / (batch 4 x context 8)


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
    ({"models": [TINY | {"name": "a", "width": 3}]}, "unknown key"),
    ({"data": {"kind": "audio"}}, "data kind"),
    ({"models": [TINY | {"name": "a"}] * 2, "tokens": [256]}, "same name"),
])
def test_bad_grids_are_refused_by_name(bad, message):
    with pytest.raises(ValueError, match=message):
        sweep.expand_grid(grid() | bad)


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


def test_a_run_records_what_it_measured_and_its_provenance():
    data, runs = sweep.expand_grid(grid(tokens=[2048]))
    record = sweep.run_one(runs[0], data, device="cpu", progress=False)
    json.dumps(record, allow_nan=False)  # plain JSON
    counts = flops.param_counts(runs[0].model_config(8))
    model, res = record["model"], record["result"]
    assert model["non_embedding_params"] == counts.non_embedding
    assert res["tokens"] == 2048 and res["steps"] == 64
    assert res["flops_6nd"] == 6 * counts.non_embedding * 2048
    assert res["flops_per_token"] == flops.flops_per_token(runs[0].model_config(8))
    assert res["flops"] == res["flops_per_token"] * 2048
    assert math.isfinite(res["final_val_loss"]) and math.isfinite(res["final_train_loss"])
    # the true language scored on the same windows: close to its entropy rate
    assert res["val_true_loss"] == pytest.approx(record["data"]["entropy_rate"], rel=0.1)
    assert res["final_val_loss"] > res["val_true_loss"] - 0.05
    for key in ("versions", "device", "torch_threads", "started", "finished"):
        assert key in record["provenance"]
    assert record["run_id"] == sweep.run_id(runs[0], data)


def test_the_same_run_gives_the_same_numbers():
    data, runs = sweep.expand_grid(grid(tokens=[1024]))
    a, b = (sweep.run_one(runs[0], data, device="cpu", progress=False) for _ in range(2))
    assert a["result"]["final_val_loss"] == b["result"]["final_val_loss"]


def test_first_targets_without_full_context_are_ignored():
    data = sweep.MarkovData(**{k: v for k, v in DATA.items() if k != "kind"})
    spec = sweep.RunSpec("a", 1, 8, 2, tokens=2048, lr=0.01, batch_size=4, context_length=8)
    train, val = data.splits()
    x, y = run_module._batches(train, val, spec, data.ignore_first, "cpu")(
        "train", torch.Generator().manual_seed(0))
    assert (y[:, : data.order - 1] == -100).all() and (y[:, data.order - 1:] >= 0).all()
    assert (x[:, 1:] == y[:, :-1].clamp(min=0))[:, data.order - 1:].all()


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
    return subprocess.Popen([sys.executable, "-m", "course_lib.sweep", *args, "--no-progress"],
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
    resumed = cli(*args)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert f"{len(records)} already in" in stdout
    final = load_results(out)
    assert len(final) == 10 and len(out.read_text().splitlines()) == 10
    assert out.read_text().startswith(killed)  # earlier records kept as they were


def test_cli_dry_run_lists_runs_and_shards(tmp_path, capsys):
    path = write_grid(tmp_path, tokens=[1024, 2048])
    for index in range(2):
        assert sweep.main(["--grid", str(path), "--out", str(tmp_path / "x.jsonl"),
                           "--shard", f"{index}/2", "--dry-run"]) == 0
        assert "2 runs, C = 6ND" in capsys.readouterr().out
    assert not (tmp_path / "x.jsonl").exists()


def test_budget_refuses_a_run_before_training_it(monkeypatch):
    data, runs = sweep.expand_grid(grid(tokens=[2048]))
    cost = runs[0].compute(8)
    assert cost == 6 * flops.param_counts(runs[0].model_config(8)).non_embedding * 2048
    budget = FlopBudget(cost * 1.5, "exploration")
    sweep.run_one(runs[0], data, device="cpu", progress=False, budget=budget)
    assert budget.spent == pytest.approx(cost)

    def no_training(*args, **kwargs):
        raise AssertionError("a refused run must not start training")

    monkeypatch.setattr(run_module, "train", no_training)
    with pytest.raises(BudgetExceededError, match=r"run 'a-D2.05e\+03' needs .* only"):
        sweep.run_one(runs[0], data, device="cpu", progress=False, budget=budget)
    assert len(budget.charges) == 1  # the refused run was not charged


def test_cli_stops_at_max_flops(tmp_path, capsys):
    path = write_grid(tmp_path, tokens=[2048])
    data, runs = sweep.load_grid(path)
    out = tmp_path / "runs.jsonl"
    code = sweep.main(["--grid", str(path), "--out", str(out), "--no-progress",
                       "--max-flops", f"{1.5 * runs[0].compute(8)}"])
    assert code == 2
    assert "stopped: run 'b-D2.05e+03' needs" in capsys.readouterr().err
    assert len(load_results(out)) == 1


def test_planned_flops_match_what_training_counts():
    data, runs = sweep.expand_grid(grid(tokens=[1024]))
    record = sweep.run_one(runs[1], data, device="cpu", progress=False)
    assert record["result"]["flops"] == pytest.approx(runs[1].planned_flops(8))


def test_markov_samples_are_cached_and_reproducible(tmp_path):
    data = sweep.MarkovData(vocab_size=8, order=2, branching=3, train_tokens=5000,
                            val_tokens=1000)
    train, val = data.splits(tmp_path)
    assert train.dtype == np.uint8 and len(train) == 5000 and len(val) == 1000
    assert len(list(tmp_path.glob("*.npy"))) == 2
    again, _ = data.splits(tmp_path)
    assert np.array_equal(train, again)
    assert not np.array_equal(train[:1000], val)  # different seeds


def test_a_tokenized_corpus_can_replace_the_synthetic_language(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 16, size=5000).astype(np.uint16)
    np.save(tmp_path / "corpus.npy", tokens)
    data, runs = sweep.expand_grid(grid(tokens=[1024]) | {
        "data": {"kind": "tokens", "path": str(tmp_path / "corpus.npy")}})
    record = sweep.run_one(runs[0], data, device="cpu", progress=False)
    assert record["model"]["config"]["vocab_size"] == 16  # read from the tokens
    assert record["result"]["val_true_loss"] is None  # no known floor
    assert math.isfinite(record["result"]["final_val_loss"])


@pytest.mark.parametrize("bad, message", [
    ({"tokens": 10}, "at least one batch"),
    ({"tokens": 2048.0}, "must be an integer"),
    ({"warmup_fraction": 1.0}, "warmup_fraction"),
])
def test_a_bad_run_spec_names_what_is_wrong(bad, message):
    fields_ = {"name": "x", "n_layer": 1, "d_model": 8, "n_head": 2, "tokens": 4096,
               "lr": 0.01, "batch_size": 4, "context_length": 8}
    with pytest.raises(ValueError, match=message):
        sweep.RunSpec(**(fields_ | bad))
