"""Command line for :func:`course_lib.training.loop.train`: ``python -m course_lib.training.cli``.

Trains a GPT (``--objective clm``) or a tiny BERT (``--objective mlm``) on

* a text corpus: a name of :func:`course_lib.data.corpora.load_corpus` (``shakespeare``,
  ``wordnet``, ``synthetic``) or a UTF-8 ``.txt`` file or folder, tokenized with
  ``--tokenizer``: ``bpe`` (byte-level BPE of ``--bpe-vocab-size`` trained on the
  text), ``char``, or the path of a tokenizer saved by :mod:`course_lib.data.tokenizers`;
  the ids are cached on disk by :func:`course_lib.data.tokens.encode_corpus`;
* a token file: ``.npy`` (any integer dtype) or raw ``.bin`` (``--dtype``, default
  uint16), read as a memory map;
* ``random-walk``: generated tokens ``x[t+1] = (x[t] + s) mod V`` with ``s`` uniform
  in ``1..K`` (``--walk-steps K``). Its entropy rate is exactly ``ln K`` nats per
  token: a trained causal LM's validation loss should approach it from above.

The last ``--val-fraction`` of the tokens is the validation split
(:func:`course_lib.data.tokens.train_val_split`); batches come from
:func:`course_lib.data.tokens.train_val_batches`.

Examples::

    python -m course_lib.training.cli --data random-walk --max-steps 200 --out run.json
    python -m course_lib.training.cli --data shakespeare --tokenizer bpe --bpe-vocab-size 1024 \\
        --checkpoint-dir ckpt --checkpoint-interval 50 --resume --out shakespeare.json
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 -m course_lib.training.cli \\
        --data random-walk --max-steps 50 --out ddp.json

Results (losses, tokens, FLOPs, wall time) are written atomically to ``--out`` as
JSON, with the provenance needed to reproduce them: command, configs, library
versions, device, number of processes and time.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from course_lib.core.atomic import write_json_atomic
from course_lib.core.device import get_device
from course_lib.core.provenance import provenance
from course_lib.data import corpora, tokenizers
from course_lib.data import tokens as data
from course_lib.models import GPT, GPTConfig
from course_lib.models.bert import tiny_bert_config
from course_lib.training import distributed
from course_lib.training.loop import TrainConfig, train
from course_lib.training.masked import mask_tokens

__all__ = ["random_walk_tokens", "load_tokens", "corpus_tokens", "main"]


def random_walk_tokens(n_tokens: int, vocab_size: int, max_step: int, seed: int = 0) -> np.ndarray:
    """``n_tokens`` ids of a random walk on a cycle of ``vocab_size``; entropy rate ``ln max_step``."""
    if not 1 <= max_step < vocab_size:
        raise ValueError(f"max_step must be in [1, vocab_size={vocab_size}); got {max_step!r}")
    rng = np.random.default_rng(seed)
    steps = rng.integers(1, max_step + 1, size=n_tokens)
    steps[0] = rng.integers(vocab_size)  # a random starting token
    return (np.cumsum(steps) % vocab_size).astype(np.int64)


def load_tokens(path: str | Path, dtype: str = "uint16") -> np.ndarray:
    """Token ids from a ``.npy`` file or a raw ``.bin`` file of ``dtype``, memory-mapped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--data {str(path)!r}: no such file (expected a .npy or .bin "
                                f"file of token ids, or 'random-walk')")
    if path.suffix == ".npy":
        tokens = np.load(path, mmap_mode="r")
    elif path.suffix == ".bin":
        tokens = np.memmap(path, dtype=np.dtype(dtype), mode="r")
    else:
        raise ValueError(f"--data {str(path)!r}: expected a .npy or .bin file")
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"--data {str(path)!r} holds {tokens.dtype} of shape {tokens.shape}; "
                         f"expected a 1-D array of integer token ids")
    return tokens


def corpus_tokens(name_or_path: str, tokenizer: str = "bpe", bpe_vocab_size: int = 2048,
                  val_fraction: float = 0.1) -> tuple[np.ndarray, object]:
    """Token ids of a corpus (memory-mapped, cached) and the tokenizer that made them.

    ``tokenizer`` is ``"bpe"`` (trained with ``bpe_vocab_size`` ids on the text
    before the last ``val_fraction``, which becomes the validation split), ``"char"``
    or the path of a file written by a course tokenizer's ``.save()``.
    """
    text = corpora.load_corpus(name_or_path)
    if tokenizer == "bpe":
        tok = tokenizers.train_bpe(text[: int(len(text) * (1 - val_fraction))], bpe_vocab_size)
    elif tokenizer == "char":
        tok = tokenizers.CharTokenizer.from_text(text)
    elif Path(tokenizer).is_file():
        tok = tokenizers.load_tokenizer(tokenizer)
    else:
        raise ValueError(f"--tokenizer is {tokenizer!r}; expected 'bpe', 'char' or the path "
                         f"of a saved tokenizer file")
    name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in Path(name_or_path).name)
    return data.encode_corpus(text, tok, name=name[:64] or "corpus"), tok


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course_lib.training.cli",
                                description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = p.add_argument_group("data")
    source.add_argument("--data", default="random-walk",
                      help="'random-walk', a corpus (shakespeare, wordnet, synthetic, a .txt "
                           "file or folder) or a .npy/.bin token file")
    source.add_argument("--tokenizer", default="bpe",
                      help="for a corpus: 'bpe', 'char' or a saved tokenizer file")
    source.add_argument("--bpe-vocab-size", type=int, default=2048)
    source.add_argument("--dtype", default="uint16", help="dtype of a .bin token file")
    source.add_argument("--vocab-size", type=int, default=None,
                      help="vocabulary size (default: max token id + 1; 64 for random-walk)")
    source.add_argument("--walk-steps", type=int, default=4, help="K of the random walk")
    source.add_argument("--n-tokens", type=int, default=200_000, help="tokens of random walk")
    source.add_argument("--val-fraction", type=float, default=0.1)
    model = p.add_argument_group("model")
    model.add_argument("--objective", choices=("clm", "mlm"), default="clm",
                       help="causal LM (GPT) or masked LM (tiny BERT)")
    model.add_argument("--context-length", type=int, default=64)
    model.add_argument("--n-layer", type=int, default=2)
    model.add_argument("--n-head", type=int, default=4)
    model.add_argument("--d-model", type=int, default=64)
    model.add_argument("--dropout", type=float, default=0.0)
    run = p.add_argument_group("training")
    run.add_argument("--batch-size", type=int, default=16)
    run.add_argument("--max-steps", type=int, default=200)  # TrainConfig requires it
    defaults = {f.name: f.default for f in fields(TrainConfig)}  # one source of defaults
    for name, kind in (("lr", float), ("min-lr-ratio", float), ("warmup-steps", int),
                       ("weight-decay", float), ("grad-clip", float),
                       ("grad-accum-steps", int), ("eval-interval", int),
                       ("eval-batches", int), ("checkpoint-interval", int), ("seed", int)):
        run.add_argument(f"--{name}", type=kind, default=defaults[name.replace("-", "_")])
    run.add_argument("--checkpoint-dir", default=None)
    run.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    run.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    run.add_argument("--device", default=None, help="cuda, mps or cpu (default: auto)")
    run.add_argument("--no-progress", action="store_true")
    run.add_argument("--out", default="train_result.json", help="result file (JSON)")
    return p


def _data(args) -> tuple[np.ndarray, int, dict]:
    if args.data == "random-walk":
        vocab = args.vocab_size or 64
        tokens = random_walk_tokens(args.n_tokens, vocab, args.walk_steps, seed=args.seed)
        return tokens, vocab, {"source": "random-walk", "walk_steps": args.walk_steps,
                               "entropy_rate_nats": math.log(args.walk_steps)}
    if Path(args.data).suffix in (".npy", ".bin"):
        tokens = load_tokens(args.data, args.dtype)
        vocab = args.vocab_size or int(tokens.max()) + 1
        return tokens, vocab, {"source": str(Path(args.data).resolve())}
    tokens, tok = corpus_tokens(args.data, args.tokenizer, args.bpe_vocab_size,
                               args.val_fraction)
    return tokens, args.vocab_size or tok.vocab_size, {
        "source": args.data, "tokenizer": repr(tok), "tokenizer_fingerprint": tok.fingerprint,
        "token_file": str(getattr(tokens, "filename", ""))}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    tokens, vocab, data_info = _data(args)
    T = args.context_length
    torch.manual_seed(args.seed)  # the same initial weights on every process
    if args.objective == "clm":
        model_config = GPTConfig(vocab_size=vocab, context_length=T, n_layer=args.n_layer,
                                 n_head=args.n_head, d_model=args.d_model, dropout=args.dropout)
        model, transform, config_dict = GPT(model_config), None, model_config.to_dict()
    else:  # one extra id for [MASK]
        from transformers import BertForMaskedLM

        bert_config = tiny_bert_config(vocab + 1, context_length=T, n_layer=args.n_layer,
                                       n_head=args.n_head, d_model=args.d_model,
                                       dropout=args.dropout)
        model, config_dict = BertForMaskedLM(bert_config), bert_config.to_dict()

        def transform(window, generator):
            return mask_tokens(window, mask_token_id=vocab, vocab_size=vocab + 1,
                               generator=generator)
    config = TrainConfig(
        max_steps=args.max_steps, lr=args.lr, min_lr_ratio=args.min_lr_ratio,
        warmup_steps=args.warmup_steps, weight_decay=args.weight_decay,
        grad_clip=args.grad_clip if args.grad_clip > 0 else None,
        grad_accum_steps=args.grad_accum_steps, eval_interval=args.eval_interval,
        eval_batches=args.eval_batches, checkpoint_dir=args.checkpoint_dir,
        checkpoint_interval=args.checkpoint_interval, seed=args.seed,
        precision=args.precision, progress=not args.no_progress)
    get_batch = data.train_val_batches(*data.train_val_split(tokens, args.val_fraction),
                                       args.batch_size, T, transform=transform)
    device = get_device(args.device)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    info = distributed.init_from_env(device.type)  # train() reuses this process group
    result = train(model, get_batch, config, device=device, resume=args.resume,
                   description=args.objective)
    if info.is_main:
        record = {
            "provenance": provenance(result.device, command=" ".join(sys.argv),
                                     started=started, world_size=result.world_size),
            "data": data_info | {"n_tokens": len(tokens), "vocab_size": vocab},
            "model_config": config_dict, "train_config": asdict(config),
            "arguments": vars(args),
            "result": result.to_dict(),
        }
        write_json_atomic(args.out, record)
        print(f"final train loss {result.final_train_loss:.4f}, val loss "
              f"{result.final_val_loss:.4f} nats/token; {result.tokens:,} tokens, "
              f"{result.flops:.3g} FLOPs, {result.wall_time_s:.1f} s -> {args.out}")
    distributed.leave(info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
