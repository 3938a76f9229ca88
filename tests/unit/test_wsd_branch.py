"""A branch of a warmup-stable-decay run equals the run of that length trained alone."""

import pytest
import torch

from course_lib.models.gpt import GPT, GPTConfig
from course_lib.training.loop import TrainConfig, train

V, T = 32, 8
COMMON = dict(lr=1e-2, warmup_steps=2, schedule="wsd", decay_fraction=0.25, progress=False,
              weight_decay=0.0)


def _batches(split, generator):
    x = torch.randint(0, V, (4, T + 1), generator=generator)
    return x[:, :-1], x[:, 1:]


def _model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=V, context_length=T, n_layer=1, n_head=1, d_model=16))


def test_branch_equals_the_shorter_run(tmp_path):
    train(_model(), _batches, TrainConfig(max_steps=40, checkpoint_dir=str(tmp_path / "main"),
                                          checkpoint_interval=6, checkpoint_keep=10, **COMMON))
    assert len(list((tmp_path / "main").glob("step_*"))) == 7  # every sixth step and the end
    alone = train(_model(), _batches, TrainConfig(max_steps=24, **COMMON))
    # the 24-step run decays over its last 6 steps: branch the long run at step 18
    branch = train(_model(), _batches, TrainConfig(max_steps=24, **COMMON),
                   branch_from=tmp_path / "main" / "step_000018")
    assert branch.resumed_from == 18 and branch.tokens == alone.tokens
    assert [v for _, v in branch.lr] == pytest.approx([v for _, v in alone.lr])
    assert [v for _, v in branch.train_loss] == pytest.approx(
        [v for _, v in alone.train_loss], rel=1e-6)
    assert branch.final_val_loss == pytest.approx(alone.final_val_loss, rel=1e-6)


def test_a_branch_may_change_only_the_schedule(tmp_path):
    train(_model(), _batches, TrainConfig(max_steps=12, checkpoint_dir=str(tmp_path / "m"),
                                          checkpoint_interval=6, **COMMON))
    with pytest.raises(ValueError, match=r"cannot branch .*differs in \['lr'\]"):
        train(_model(), _batches, TrainConfig(max_steps=12, **(COMMON | {"lr": 2e-2})),
              branch_from=tmp_path / "m" / "step_000006")
    with pytest.raises(ValueError, match="past this run's max_steps=4"):
        train(_model(), _batches, TrainConfig(max_steps=4, warmup_steps=2, lr=1e-2,
                                              progress=False, weight_decay=0.0,
                                              schedule="wsd", decay_fraction=0.5),
              branch_from=tmp_path / "m" / "step_000006")


def test_run_branches_keeps_every_branch_point():
    """With a long cooldown the long run checkpoints more often than there are branches."""
    from course_lib.scaling.runs import KeyValueData, RunSpec
    from course_lib.scaling.wsd import run_branches

    spec = RunSpec(name="w", n_layer=1, d_model=8, n_head=1, tokens=40 * 256, lr=1e-2,
                   batch_size=8, context_length=32)
    record = run_branches(spec, KeyValueData(n_keys=500, val_tokens=2048), branches=4,
                          decay_fraction=0.5)
    assert [r["steps"] for r in record["lengths"]] == [10, 20, 30, 40]


def test_run_branches_records_every_length_and_its_cost(tmp_path):
    from course_lib.scaling.runs import KeyValueData, RunSpec
    from course_lib.scaling.wsd import branch_steps, load_wsd_grid, main, run_branches

    data = KeyValueData(n_keys=500, val_tokens=2048)
    spec = RunSpec(name="w", n_layer=1, d_model=8, n_head=1, tokens=40 * 256, lr=1e-2,
                   batch_size=8, context_length=32)
    record = run_branches(spec, data, branches=4, decay_fraction=0.2)
    lengths = record["lengths"]
    assert [r["steps"] for r in lengths] == branch_steps(40, 4, 0.2) == [10, 20, 30, 40]
    assert all(r["final_val_loss"] > 0 for r in lengths)
    per_step = lengths[0]["flops"] / 10
    assert record["total_flops"] == pytest.approx(per_step * (40 + 2 + 4 + 6))
    with pytest.raises(ValueError, match="total_steps=30 must split into 4"):
        branch_steps(30, 4, 0.2)
    grid = {"data": {"kind": "keyvalue", "n_keys": 500, "val_tokens": 2048},
            "run": {"name": "w", "n_layer": 1, "d_model": 8, "n_head": 1, "tokens": 40 * 256,
                    "lr": 1e-2, "batch_size": 8, "context_length": 32},
            "branches": 4, "decay_fraction": 0.2, "seeds": [0]}
    (tmp_path / "g.json").write_text(__import__("json").dumps(grid))
    assert main(["--grid", str(tmp_path / "g.json"), "--out", str(tmp_path / "r.json"),
                 "--no-progress"]) == 0
    bad = grid | {"run": grid["run"] | {"lr": -1.0}}
    (tmp_path / "bad.json").write_text(__import__("json").dumps(bad))
    assert main(["--grid", str(tmp_path / "bad.json"), "--out", str(tmp_path / "x.json")]) == 2
    with pytest.raises(ValueError, match=r"bad.json: run \(seed 0\): .*lr"):
        load_wsd_grid(tmp_path / "bad.json")
    saved = __import__("json").loads((tmp_path / "r.json").read_text())
    assert [r["final_val_loss"] for r in saved["records"][0]["lengths"]] == pytest.approx(
        [r["final_val_loss"] for r in lengths])
