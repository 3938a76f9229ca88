"""Data-parallel training: two CPU processes (gloo) under torchrun stay identical."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_gloo_processes_end_with_identical_parameters(tmp_path):
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parents[2])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", str(WORKER), str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    assert torch.equal(ranks[0]["params"], ranks[1]["params"])
    for r in ranks:
        assert r["world_size"].item() == 2
        assert r["tokens"].item() == 3 * 4 * 16 * 2  # steps x batch x context x processes
