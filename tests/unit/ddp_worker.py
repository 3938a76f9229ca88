"""Started twice by ``torchrun`` from test_ddp.py: train a few steps, save this rank's weights."""

import os
import sys

import torch
from safetensors.torch import save_file

from course_lib.data.tokens import train_val_batches
from course_lib.models import GPT, GPTConfig
from course_lib.training.cli import random_walk_tokens
from course_lib.training.loop import TrainConfig, train


def main(out: str) -> None:
    tokens = random_walk_tokens(10_000, vocab_size=16, max_step=3)
    batches = train_val_batches(tokens[:9_000], tokens[9_000:], batch_size=4, context_length=16)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=16, context_length=16, n_layer=1, n_head=2, d_model=16))
    # a different initialisation on rank 1: DDP must broadcast rank 0's weights
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * int(os.environ["RANK"]))
    result = train(model, batches, TrainConfig(max_steps=3, progress=False, eval_batches=1),
                   device="cpu")
    # train() created the process group, so train() ended it: no state left behind
    assert not torch.distributed.is_initialized(), "train() left its process group open"
    rank = int(os.environ["RANK"])
    vector = torch.cat([p.detach().flatten() for p in model.parameters()])
    save_file({"params": vector, "tokens": torch.tensor(result.tokens),
               "world_size": torch.tensor(result.world_size)}, f"{out}/rank{rank}.safetensors")


if __name__ == "__main__":
    main(sys.argv[1])
