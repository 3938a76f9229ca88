"""Grids of training runs for scaling laws (chapters 9–10): ``python -m course_lib.sweep``.

A **grid** (a JSON file, or the same dict in Python) names the data, the models and
the token budgets; :func:`expand_grid` turns it into :class:`~course_lib.runs.RunSpec` s.
Each run is trained by :func:`course_lib.runs.run_one`, and its record — what it
measured and its provenance — is appended as one JSON line to the results file
(:mod:`course_lib.results`) as soon as it finishes. Run again, the sweep skips the runs
already recorded, so a killed sweep resumes where it stopped; ``--checkpoint-dir`` also
resumes the interrupted run from its last checkpoint.

Grid file::

    {"data":   {"kind": "markov", "vocab_size": 32, "order": 2, "branching": 8,
                "concentration": 1.0, "seed": 0,
                "train_tokens": 20000000, "val_tokens": 100000},
     "defaults": {"batch_size": 64, "context_length": 32, "warmup_fraction": 0.05},
     "models": [{"name": "s1", "n_layer": 1, "d_model": 16, "n_head": 2, "lr": 0.01},
                ...],
     "budgets": [1e11, 3.16e11, 1e12],    # IsoFLOP: D = C / (6 N) for every model...
     "tokens_per_param": [2, 2000],       # ...whose D / N falls in this range
                                          # (or {"1e11": ["s1", "s2"], ...}: chosen models)
     "tokens": [1e6],                     # and/or fixed token counts for every model
     "runs": [{...one explicit run...}]}

``"kind": "tokens"`` with ``"path"`` (a ``.npy`` of token ids) and ``"val_fraction"``
trains on a corpus instead (chapter 3's token files).

Command line::

    python -m course_lib.sweep --grid grid.json --out results.jsonl --dry-run
    python -m course_lib.sweep --grid grid.json --out results.jsonl --threads 1

Scaling out: ``--shard i/n`` keeps every n-th run starting at run i (0-based), so n
independent processes — on one machine, or as a cluster array job — share a grid
without talking to each other. A Slurm array of 8 jobs, each writing its own file::

    #!/bin/bash
    #SBATCH --job-name=scaling-sweep
    #SBATCH --array=0-7
    #SBATCH --cpus-per-task=4          # or: --gres=gpu:1
    #SBATCH --time=04:00:00
    #SBATCH --requeue                  # a preempted job restarts and resumes
    python -m course_lib.sweep --grid grid.json --shard ${SLURM_ARRAY_TASK_ID}/8 \\
        --out results/sweep-${SLURM_ARRAY_TASK_ID}.jsonl \\
        --checkpoint-dir $SCRATCH/sweep-checkpoints

and ``course_lib.results.load_results(*glob("results/sweep-*.jsonl"))`` reads them
together. (One large run over several GPUs is a different job: ``torchrun``
data-parallel training, :mod:`course_lib.train`.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path

import torch

from . import flops
from .budget import BudgetExceededError, FlopBudget
from .results import append_record, finished_ids
from .runs import (MarkovData, RunSpec, TokenData, _data_from_dict, _vocab, run_id,
                   run_one)

__all__ = ["MarkovData", "TokenData", "RunSpec", "run_id", "run_one", "expand_grid",
           "load_grid", "shard", "parse_shard", "run_sweep", "main"]


# ----------------------------------------------------------------------- grids
def expand_grid(grid: dict) -> tuple[MarkovData | TokenData, list[RunSpec]]:
    """The data and the runs a grid describes (see the module docstring).

    IsoFLOP runs come first, cheapest budget first: for each budget ``C`` and
    model (every model, or those a dict ``{budget: [names]}`` lists), ``D = C / (6 N)``
    with ``N`` the model's non-embedding parameters, kept if ``D / N`` lies in
    ``tokens_per_param``. Then the fixed-``tokens`` runs, then
    the explicit ``runs``. A model's ``"lr"`` may be a list: one run per learning
    rate. A run that would repeat an earlier one (same model and settings, steps
    within 1%) is left out: the earlier run serves for both.
    """
    allowed = {"data", "defaults", "models", "budgets", "tokens_per_param", "tokens", "runs",
               "comment"}
    unknown = set(grid) - allowed
    if unknown:
        raise ValueError(f"grid has unknown key(s) {sorted(unknown)}; expected some of "
                         f"{sorted(allowed)}")
    if "data" not in grid:
        raise ValueError("grid needs a 'data' entry (for example {'kind': 'markov'})")
    data = _data_from_dict(grid["data"])
    defaults = dict(grid.get("defaults", {}))
    known = {f.name for f in fields(RunSpec)}
    for where, entry in ([("defaults", defaults)] + [("models", m) for m in grid.get("models", [])]
                         + [("runs", r) for r in grid.get("runs", [])]):
        if set(entry) - known:
            raise ValueError(f"grid {where} entry has unknown key(s) {sorted(set(entry) - known)}"
                             f"; expected RunSpec fields {sorted(known)}")
    bases = []  # (name suffix, RunSpec fields without tokens, non-embedding N)
    for model in grid.get("models", []):
        model = defaults | dict(model)
        lrs = model.pop("lr")
        for lr in (lrs if isinstance(lrs, list) else [lrs]):
            base = model | {"lr": lr}
            probe = RunSpec(**(base | {"tokens": 10**9}))
            # non-embedding N does not depend on the vocabulary (the output layer is tied)
            n = flops.param_counts(probe.model_config(data.vocab_size or 2)).non_embedding
            bases.append((f"-lr{lr:g}" if isinstance(lrs, list) else "", base, n))
    low, high = grid.get("tokens_per_param", (0, math.inf))
    budgets = grid.get("budgets", [])
    if not isinstance(budgets, dict):  # every model at every budget
        budgets = {budget: None for budget in budgets}
    models = {base["name"] for _, base, _ in bases}
    runs: list[RunSpec] = []
    for budget, chosen in sorted((float(c), names) for c, names in budgets.items()):
        if chosen is not None and set(chosen) - models:
            raise ValueError(f"budget {budget:g} names unknown model(s) "
                             f"{sorted(set(chosen) - models)}; the models are {sorted(models)}")
        for suffix, base, n in bases:
            tokens = round(budget / (6 * n))
            if (chosen is None or base["name"] in chosen) and low <= tokens / n <= high:
                runs.append(RunSpec(**(base | {"name": f"{base['name']}-C{budget:.3g}{suffix}",
                                               "tokens": tokens, "budget": float(budget)})))
    for tokens in grid.get("tokens", []):
        for suffix, base, _ in bases:
            runs.append(RunSpec(**(base | {"name": f"{base['name']}-D{tokens:.3g}{suffix}",
                                           "tokens": int(tokens)})))
    runs += [RunSpec(**(defaults | run)) for run in grid.get("runs", [])]
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"grid gives two runs the same name: "
                         f"{sorted({n for n in names if names.count(n) > 1})}")
    return data, _distinct(runs)


def _distinct(runs: list[RunSpec], tolerance: float = 0.01) -> list[RunSpec]:
    """``runs`` without those that repeat an earlier run of the same model and settings
    with a number of steps within ``tolerance`` (relative) of it."""
    steps: dict[str, list[int]] = {}
    out = []
    for run in runs:
        fields_ = asdict(run)
        for label in ("name", "budget", "tokens"):
            del fields_[label]
        earlier = steps.setdefault(json.dumps(fields_, sort_keys=True), [])
        if all(abs(run.steps - s) > tolerance * s for s in earlier):
            earlier.append(run.steps)
            out.append(run)
    return out


def load_grid(path: str | os.PathLike) -> tuple[MarkovData | TokenData, list[RunSpec]]:
    """:func:`expand_grid` of a JSON file."""
    try:
        grid = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"--grid {str(path)!r}: no such file") from None
    return expand_grid(grid)


# -------------------------------------------------------------------- sharding
def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n`` (Slurm: ``$SLURM_ARRAY_TASK_ID/n``)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n, e.g. 0/4; got {text!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {text!r}: expected 0 <= i < n")
    return index, count


def shard(runs: Sequence[RunSpec], index: int, count: int) -> list[RunSpec]:
    """Runs ``index, index + count, …``: the ``count`` shards partition ``runs``.

    Taking every n-th run (rather than a contiguous block) spreads cheap and
    expensive runs evenly over the shards.
    """
    if not (isinstance(count, int) and count >= 1 and isinstance(index, int)
            and 0 <= index < count):
        raise ValueError(f"shard needs integers 0 <= index < count; got index={index!r}, "
                         f"count={count!r}")
    return list(runs[index::count])


# ----------------------------------------------------------------- the sweep
def run_sweep(
    runs: Sequence[RunSpec],
    data: MarkovData | TokenData,
    out: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_interval: int = 0,
    budget: FlopBudget | None = None,
    progress: bool = True,
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Train every run not yet recorded in ``out``; append each record as it finishes.

    Returns the records of the runs trained now. Runs already in ``out`` (same
    ``run_id``) are skipped, so calling this again after an interruption resumes.
    """
    done = finished_ids(out)
    todo = [r for r in runs if run_id(r, data) not in done]
    log(f"{len(runs)} runs in this shard: {len(runs) - len(todo)} already in {out}, "
        f"{len(todo)} to train")
    if not todo:
        return []
    splits = data.splits()
    vocab = _vocab(data, splits[0])
    planned = [r.compute(vocab) for r in todo]
    new, start = [], time.perf_counter()
    for i, spec in enumerate(todo):
        record = run_one(spec, data, device=device, checkpoint_dir=checkpoint_dir,
                         checkpoint_interval=checkpoint_interval, progress=progress,
                         budget=budget, splits=splits)
        if command is not None:
            record["provenance"]["command"] = command
        append_record(out, record)
        new.append(record)
        share = sum(planned[: i + 1]) / sum(planned)
        res = record["result"]
        log(f"[{i + 1}/{len(todo)}] {spec.name}: N={record['model']['non_embedding_params']:,}"
            f" D={res['tokens']:.3g} val {res['final_val_loss']:.4f} nats/token, "
            f"{res['wall_time_s']:.1f} s; {share:.0%} of the FLOPs done in "
            f"{(time.perf_counter() - start) / 60:.1f} min")
    return new


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course_lib.sweep",
                                description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", required=True, help="grid file (JSON)")
    p.add_argument("--out", required=True, help="results file (JSONL), appended to")
    p.add_argument("--shard", default="0/1", help="i/n: this process trains runs i, i+n, …")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: auto)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--checkpoint-dir", default=None,
                   help="resume an interrupted run from its checkpoints here")
    p.add_argument("--checkpoint-interval", type=int, default=200, help="steps")
    p.add_argument("--max-flops", type=float, default=None,
                   help="refuse runs once this invocation has spent this much compute "
                        "(6ND FLOPs)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their cost")
    p.add_argument("--no-progress", action="store_true", help="no per-step progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    data, runs = load_grid(args.grid)
    index, count = parse_shard(args.shard)
    runs = shard(runs, index, count)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dry_run:
        vocab = data.vocab_size or _vocab(data, data.splits()[0])
        print(f"{'run':24s} {'steps':>7s} {'tokens':>11s} {'6ND':>9s} {'counted':>9s}  id")
        for spec in runs:
            print(f"{spec.name:24s} {spec.steps:7d} {spec.trained_tokens:11,d} "
                  f"{spec.compute(vocab):9.3g} {spec.planned_flops(vocab):9.3g}  "
                  f"{run_id(spec, data)}")
        print(f"{len(runs)} runs, C = 6ND = {sum(r.compute(vocab) for r in runs):.3g} FLOPs, "
              f"{sum(r.planned_flops(vocab) for r in runs):.3g} counted")
        return 0
    budget = FlopBudget(args.max_flops, "sweep") if args.max_flops else None
    try:
        run_sweep(runs, data, args.out, device=args.device,
                  checkpoint_dir=args.checkpoint_dir,
                  checkpoint_interval=args.checkpoint_interval if args.checkpoint_dir else 0,
                  budget=budget, progress=not args.no_progress,
                  command="python -m course_lib.sweep " + " ".join(
                      sys.argv[1:] if argv is None else argv))
    except BudgetExceededError as err:
        print(f"stopped: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
