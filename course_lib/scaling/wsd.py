"""Many run lengths from one run: warmup-stable-decay branches (chapter 11).

A warmup-stable-decay (WSD) schedule holds the learning rate constant and cools down
only over its last ``decay_fraction`` of steps {Hägele et al. 2024; Hu et al. 2024}.
Up to its cooldown, a WSD run of ``T`` steps *is* the longest run's stable phase, so
one long run checkpointed at ``(1 - f) T_i`` and branched into a cooldown at each
gives the final loss of every length ``T_i`` for the price of the long run plus the
cooldowns — where cosine schedules, whose shape depends on the length, need a run per
length. :func:`run_branches` does that with
:func:`course_lib.training.loop.train` (``branch_from``); the branch of length ``T``
equals the WSD run of length ``T`` trained alone (``tests/unit/test_wsd_branch.py``).

Command line (the grid names the data and one run, as :mod:`course_lib.scaling.sweep`'s)::

    python -m course_lib.scaling.wsd --grid wsd_grid.json --out wsd.json

The results file holds one record per seed: for each length its tokens, final
validation loss, and the FLOPs of its cooldown and of the whole branch; the FLOPs and
wall time of the long run and all cooldowns together; the grid and provenance. A killed
run resumes from the long run's last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from course_lib.core.atomic import write_json_atomic
from course_lib.core.device import get_device
from course_lib.core.provenance import provenance
from course_lib.core.seeding import seeded
from course_lib.core.validate import require_int, require_number
from course_lib.models import GPT, flops
from course_lib.scaling.runs import (
    Data,
    RunSpec,
    data_from_dict,
    evaluate_windows,
    vocab_size_of,
)
from course_lib.training.loop import train

__all__ = ["branch_steps", "run_branches", "load_wsd_grid", "main"]


def branch_steps(total_steps: int, branches: int, decay_fraction: float) -> list[int]:
    """Lengths ``T_i = i T / branches`` (``i = 1 … branches``), each a whole number of
    steps whose cooldown starts at a whole multiple of ``(1 - f) T / branches``."""
    total_steps = require_int("total_steps", total_steps, 1)
    branches = require_int("branches", branches, 1)
    f = require_number("decay_fraction", decay_fraction, 0, 1, closed=(False, False))
    unit = (1 - f) * total_steps / branches
    if abs(unit - round(unit)) > 1e-9 or abs(f * total_steps / branches
                                             - round(f * total_steps / branches)) > 1e-9:
        raise ValueError(f"total_steps={total_steps} must split into {branches} equal "
                         f"parts whose stable and cooldown phases ({1 - f:g} and {f:g} of "
                         f"each) are whole steps")
    return [i * total_steps // branches for i in range(1, branches + 1)]


def run_branches(spec: RunSpec, data: Data, *, branches: int, decay_fraction: float,
                 device=None, workdir: str | Path | None = None,
                 progress: bool = False) -> dict:
    """Train ``spec`` (its ``tokens`` is the longest length) with a WSD schedule and branch
    it into ``branches`` lengths; return ``{"lengths": [...], ...}`` (see module doc)."""
    device = get_device(device)
    total = spec.steps
    lengths = branch_steps(total, branches, decay_fraction)
    config = spec.model_config(vocab_size_of(data))
    per_token = flops.flops_per_token(config, include_unembedding=True)
    x_val, y_val = data.validation_windows(spec.context_length)
    get_batch = data.batch_fn(spec, device)
    interval = round((1 - decay_fraction) * total / branches)
    root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="wsd-"))
    main_config = replace(
        spec.train_config(progress=progress, checkpoint_dir=str(root / "main"),
                          checkpoint_interval=interval,
                          checkpoint_keep=total // interval + 1),  # every one
        schedule="wsd", decay_fraction=decay_fraction, schedule_steps=None, eval_steps=())

    def fresh() -> GPT:
        with seeded(spec.seed):
            return GPT(config)

    def evaluate(m) -> float:
        return evaluate_windows(m, x_val, y_val)[0]

    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out = []
    long_run = train(fresh(), get_batch, main_config, device=device, resume=True,
                     description=f"{spec.name} (WSD, {total} steps)",
                     flops_per_token=per_token, evaluate=evaluate)
    wall = long_run.wall_time_s  # the long run's, resumed or not
    for steps in lengths:
        if steps == total:
            result = long_run
        else:
            clock = time.perf_counter()
            start = round((1 - decay_fraction) * steps)
            result = train(fresh(), get_batch,
                           replace(main_config, max_steps=steps, checkpoint_dir=None),
                           device=device, description=f"branch at {start}",
                           flops_per_token=per_token, evaluate=evaluate,
                           branch_from=root / "main" / f"step_{start:06d}")
            wall += time.perf_counter() - clock
        cooldown = round(decay_fraction * steps)
        out.append({"steps": steps, "tokens": steps * spec.tokens_per_step,
                    "final_val_loss": result.final_val_loss,
                    "flops": per_token * steps * spec.tokens_per_step,
                    "cooldown_flops": per_token * cooldown * spec.tokens_per_step})
    if workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    return {"spec": asdict(spec), "decay_fraction": decay_fraction, "lengths": out,
            "data": data.describe(), "wall_time_s": round(wall, 3),
            "total_flops": per_token * spec.trained_tokens + sum(
                r["cooldown_flops"] for r in out[:-1]),
            "provenance": provenance(device, torch_threads=torch.get_num_threads(),
                                     started=started)}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course_lib.scaling.wsd", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", required=True, help="JSON: data, run (RunSpec fields), "
                   "branches, decay_fraction, seeds")
    p.add_argument("--out", required=True, help="results file (JSON), written atomically")
    p.add_argument("--workdir", default=None, help="checkpoints of the long run (resumable)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    return p


def load_wsd_grid(path: str | os.PathLike) -> tuple[dict, Data, list[RunSpec]]:
    """The grid, its data and one :class:`RunSpec` per seed (named ``<run>-s<seed>``),
    every entry checked before anything trains; a bad one is a ``ValueError`` naming the
    file and the entry."""
    grid = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [k for k in ("data", "run", "branches", "decay_fraction") if k not in grid]
    if missing:
        raise ValueError(f"{path}: missing {missing}; a WSD grid names data, run, branches "
                         f"and decay_fraction (and optionally seeds)")
    data = data_from_dict(grid["data"], f"{path}: data")
    specs = []
    for seed in grid.get("seeds", [0]):
        try:
            spec = RunSpec(**(grid["run"] | {"seed": seed,
                                             "name": f"{grid['run']['name']}-s{seed}"}))
            data.check(spec)
            branch_steps(spec.steps, grid["branches"], grid["decay_fraction"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: run (seed {seed!r}): {err}") from None
        specs.append(spec)
    return grid, data, specs


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        grid, data, specs = load_wsd_grid(args.grid)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    done = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {"records": []}
    have = {r["spec"]["seed"] for r in done["records"]}
    for spec in specs:
        seed = spec.seed
        if seed in have:
            print(f"seed {seed}: already in {out}")
            continue
        workdir = Path(args.workdir) / f"s{seed}" if args.workdir else None
        t0 = time.time()
        record = run_branches(spec, data, branches=grid["branches"],
                              decay_fraction=grid["decay_fraction"], device=args.device,
                              workdir=workdir, progress=not args.no_progress)
        done["records"].append(record)
        done["grid"] = grid
        write_json_atomic(out, done)
        print(f"seed {seed}: {len(record['lengths'])} lengths in {time.time() - t0:.0f} s; "
              f"losses {[round(r['final_val_loss'], 4) for r in record['lengths']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
