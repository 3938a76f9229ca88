"""On a CUDA device: training in bf16, the benchmark, GPU tolerances (skipped without one).

``make gpu-check`` runs these with the rest of the unit tests on a GPU machine.
"""

import pytest
import torch

from course_lib.core import checks
from course_lib.data.tokens import train_val_batches
from course_lib.models import GPT, GPTConfig
from course_lib.scaling import bench
from course_lib.training import loop as T
from course_lib.training.cli import random_walk_tokens

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CONFIG = GPTConfig(vocab_size=16, context_length=16, n_layer=1, n_head=2, d_model=32)
TOKENS = random_walk_tokens(20_000, vocab_size=16, max_step=2, seed=0)  # entropy rate ln 2
BATCHES = train_val_batches(TOKENS[:18_000], TOKENS[18_000:], batch_size=8, context_length=16)


def run(device: str):
    torch.manual_seed(0)
    config = T.TrainConfig(max_steps=40, lr=3e-3, warmup_steps=3, eval_interval=10,
                           eval_batches=2, progress=False)
    return T.train(GPT(CONFIG), BATCHES, config, device=device)


def test_training_on_cuda_in_bf16_learns_like_the_cpu():
    gpu, cpu = run("cuda"), run("cpu")
    assert gpu.device.startswith("cuda")
    assert gpu.final_val_loss < 1.7 and abs(gpu.final_val_loss - cpu.final_val_loss) < 0.1


def test_the_gpu_tolerance_applies_on_cuda(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    result = checks.expect_close("loss", 2.05, 2.0, atol=0.01, gpu_atol=0.1)
    assert result.device == "cuda" and result.atol == 0.1


def test_bench_train_reports_bf16_mfu_against_the_datasheet():
    config = GPTConfig(vocab_size=512, context_length=64, n_layer=2, n_head=2, d_model=64)
    r = bench.bench_train_step(config, 4, device=torch.device("cuda"), precision="bf16",
                               repeats=2, warmup=1)
    name = torch.cuda.get_device_name()
    expected = "datasheet" if bench.known_peak_flops(name, "bf16") else "measured bf16 matmul"
    assert r.peak_source == expected and 0 < r.mfu(r.ours_step_s) < 1
