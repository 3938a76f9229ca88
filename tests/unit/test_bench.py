"""The benchmark's arithmetic and plumbing (its timings are not tested: they vary by machine)."""

import json

import pytest
import torch

from course_lib.models import GPTConfig
from course_lib.scaling import bench


@pytest.mark.parametrize("name, precision, expected", [
    ("NVIDIA A100-SXM4-80GB", "bf16", 312e12),
    ("NVIDIA H100 80GB HBM3", "bf16", 989e12),
    ("NVIDIA H100 PCIe", "bf16", 756e12),
    ("NVIDIA H200", "fp32", 67e12),
    ("NVIDIA L4", "bf16", 121e12),
    ("NVIDIA L40S", "bf16", 362e12),
    ("NVIDIA GeForce RTX 4090", "bf16", 165.2e12),
    ("Tesla T4", "bf16", None),
    ("NVIDIA A10G", "bf16", None),  # not the A10, not an A100: unknown, so measured
    ("Some Future GPU", "bf16", None),
])
def test_known_peaks_match_the_right_device(name, precision, expected):
    assert bench.known_peak_flops(name, precision) == expected


def test_matmul_rate_is_positive():
    assert bench.measure_matmul_flops("cpu", size=64, repeats=1) > 0


def test_train_bench_reports_consistent_numbers():
    config = GPTConfig(vocab_size=64, context_length=16, n_layer=1, n_head=2, d_model=16)
    r = bench.bench_train_step(config, 2, device=torch.device("cpu"), repeats=1, warmup=0,
                               peak_flops=1e9)
    assert r.tokens_per_step == 32 and r.peak_source == "--peak-flops"
    assert r.ratio > 0 and r.ours_step_s > 0 and r.hf_step_s > 0
    assert r.mfu(r.ours_step_s) == pytest.approx(
        r.flops_per_token * 32 / r.ours_step_s / 1e9)


def test_cli_prints_ratio_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench.main(["train", "--device", "cpu", "--vocab-size", "64", "--context-length", "16",
                "--n-layer", "1", "--n-head", "2", "--d-model", "16", "--batch-size", "2",
                "--repeats", "1", "--warmup", "0", "--out", str(out)])
    text = capsys.readouterr().out
    assert "ratio of step times, ours / HF" in text and "MFU" in text
    assert json.loads(out.read_text())["peak_source"] == "measured fp32 matmul"
    bench.main(["hw", "--device", "cpu", "--sizes", "32", "--repeats", "1"])
    assert "GFLOP/s" in capsys.readouterr().out


def test_lora_bench_reports_three_times_and_equal_outputs():
    from transformers import BertConfig

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32)
    t = bench.bench_lora_merge(device=torch.device("cpu"), batch_size=2, seq_len=8, r=2,
                               repeats=1, config=config)
    assert set(t) == {"base", "lora", "merged", "max_gap"} and t["max_gap"] < 1e-4
    assert all(t[name] > 0 for name in ("base", "lora", "merged"))


def test_sweep_bench_counts_flops_alone_and_with_jobs():
    result = bench.bench_sweep(widths=(8,), steps=4, jobs=1)  # jobs > 1: test_sweep.py
    assert list(result) == ["one at a time", "--jobs 1"]
    for r in result.values():
        assert r["flops"] > 0 and r["wall_s"] > 0
        assert r["flops_per_s"] == pytest.approx(r["flops"] / r["wall_s"])
        assert list(r["per_run_flops_per_s"]) == ["d8"]


def test_stack_bench_times_each_way_and_the_stack_computes_the_same_losses():
    result = bench.bench_stack(8, k=2, steps=1)
    assert set(result) == {"loss_gap", "one after another", "stacked (vmap)"}
    assert result["loss_gap"] < 1e-5  # the same weights and batches, stacked or not
    assert all(result[k] > 0 for k in ("one after another", "stacked (vmap)"))


def test_step_bench_times_the_three_ways():
    result = bench.bench_step_variants(8, steps=1)
    assert list(result) == ["as trained", "fused AdamW", "erf GELU"]
    assert all(seconds > 0 for seconds in result.values())
