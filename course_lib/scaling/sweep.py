"""Grids of training runs for scaling laws (chapters 9–10): ``python -m course_lib.scaling.sweep``.

A **grid** (a JSON file, or the same dict in Python) names the data, the models and
the token budgets; :func:`expand_grid` turns it into :class:`~course_lib.scaling.runs.RunSpec` s
and refuses a bad entry — naming the file, the entry and the value — before anything
trains. Each run is trained by :func:`course_lib.scaling.runs.run_one`, and its record is
appended as one JSON line to the results file (:mod:`course_lib.scaling.results`) as soon as it
finishes. Run again, the sweep skips the runs already recorded, so a killed sweep
resumes where it stopped; ``--checkpoint-dir`` also resumes the interrupted run from
its last checkpoint. Two sweeps on one file (``--jobs 2``, or two shells, or array jobs
on a shared filesystem) claim each run before training it and never train one twice.

Grid file::

    {"data":   {"kind": "keyvalue", "vocab_size": 64, "key_length": 4,
                "value_length": 4, "n_keys": 1000000, "zipf_exponent": 1.3},
     "defaults": {"batch_size": 64, "context_length": 32, "warmup_fraction": 0.05},
     "models": [{"name": "d16", "n_layer": 2, "d_model": 16, "n_head": 1, "lr": 0.03},
                ...],
     "budgets": [1e11, 3.16e11, 1e12],    # IsoFLOP: D = C / (6 N) for every model...
     "budget_flops": "counted",           # (or D = C / counted FLOPs per token)
     "tokens_per_param": [2, 2000],       # ...whose D / N falls in this range
                                          # (or {"1e11": ["d16", "d24"], ...}: chosen models)
     "tokens": [1e6],                     # and/or fixed token counts for every model
     "seeds": [0, 1, 2],                  # every run above once per seed
     "runs": [{...one explicit run...}]}

A model's ``"lr"`` may be a list: one run per learning rate. ``"kind": "tokens"`` with
``"path"`` (a ``.npy`` of token ids) trains on a corpus instead (chapter 3's token
files); ``"kind": "markov"`` on the finite Markov language of chapter 9's exhibit.

Compute is counted, not assumed: a run is charged its counted FLOPs (weights,
attention and output layer, :func:`course_lib.models.flops.flops_per_token`), and
``--max-flops`` caps what the *results file* may hold in all — across invocations,
shards and jobs that share it (``--max-flops 0`` allows nothing).

Command line::

    python -m course_lib.scaling.sweep --grid grid.json --out results.jsonl --dry-run
    python -m course_lib.scaling.sweep --grid grid.json --out results.jsonl --jobs 2

Scaling out: ``--shard i/n`` keeps every n-th run starting at run i (0-based), so n
independent processes — on one machine, or as a cluster array job — share a grid
without talking to each other. A Slurm array of 8 jobs, each writing its own file::

    #!/bin/bash
    #SBATCH --job-name=scaling-sweep
    #SBATCH --array=0-7
    #SBATCH --cpus-per-task=4          # or: --gres=gpu:1
    #SBATCH --time=04:00:00
    #SBATCH --requeue                  # a preempted job restarts and resumes
    python -m course_lib.scaling.sweep --grid grid.json --shard ${SLURM_ARRAY_TASK_ID}/8 \\
        --out results/sweep-${SLURM_ARRAY_TASK_ID}.jsonl \\
        --checkpoint-dir $SCRATCH/sweep-checkpoints

and ``course_lib.scaling.results.load_results(*glob("results/sweep-*.jsonl"))`` reads them
together. (One large run over several GPUs is a different job: ``torchrun``
data-parallel training, :mod:`course_lib.training.loop`.)
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path

import torch

from course_lib.models import flops
from course_lib.scaling.budget import BudgetExceededError, FlopBudget
from course_lib.scaling.results import (
    append_record,
    claim_run,
    finished_ids,
    load_results,
    release_run,
)
from course_lib.scaling.runs import (
    Data,
    KeyValueData,
    MarkovData,
    RunSpec,
    TokenData,
    data_from_dict,
    run_id,
    run_one,
    vocab_size_of,
)

__all__ = ["KeyValueData", "MarkovData", "TokenData", "RunSpec", "run_id", "run_one",
           "expand_grid", "load_grid", "shard", "parse_shard", "spent_flops", "run_sweep",
           "main"]

_GRID_KEYS = {"data", "defaults", "models", "budgets", "budget_flops", "tokens_per_param",
              "tokens", "seeds", "runs", "comment"}


# ----------------------------------------------------------------------- grids
def _positive_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and value > 0


def expand_grid(grid: dict, source: str = "grid") -> tuple[Data, list[RunSpec]]:
    """The data and the runs a grid describes (see the module docstring).

    IsoFLOP runs come first, cheapest budget first: for each budget ``C`` and model
    (every model, or those a dict ``{budget: [names]}`` lists), ``D = C / (6 N)`` with
    ``N`` the model's non-embedding parameters — or, with ``"budget_flops":
    "counted"``, ``D = C / f`` with ``f`` the counted training FLOPs per token
    (attention and output layer included) — kept if ``D / N`` lies in
    ``tokens_per_param``. Then the fixed-``tokens`` runs, then the explicit ``runs``;
    each once per entry of ``seeds`` (default: the run's own seed). A run that would
    repeat an earlier one (same model and settings, steps within 1%) is left out: the
    earlier run serves for both. Errors name ``source`` and the entry.
    """
    if not isinstance(grid, dict):
        raise ValueError(f"{source}: expected a JSON object; got {type(grid).__name__}")
    unknown = set(grid) - _GRID_KEYS
    if unknown:
        raise ValueError(f"{source} has unknown key(s) {sorted(unknown)}; expected some of "
                         f"{sorted(_GRID_KEYS)}")
    if "data" not in grid:
        raise ValueError(f"{source} needs a 'data' entry (for example {{'kind': 'keyvalue'}})")
    data = data_from_dict(grid["data"], f"{source}: data")
    defaults = dict(grid.get("defaults", {}))
    known = {f.name for f in fields(RunSpec)}
    entries = ([("defaults", defaults)]
               + [(f"models[{i}]", m) for i, m in enumerate(grid.get("models", []))]
               + [(f"runs[{i}]", r) for i, r in enumerate(grid.get("runs", []))])
    for where, entry in entries:
        if not isinstance(entry, dict):
            raise ValueError(f"{source}: {where} must be a JSON object; got {entry!r}")
        if set(entry) - known:
            raise ValueError(f"{source}: {where} has unknown key(s) "
                             f"{sorted(set(entry) - known)}; expected RunSpec fields "
                             f"{sorted(known)}")

    def spec(where: str, values: dict) -> RunSpec:
        missing = {"name", "n_layer", "d_model", "n_head", "lr", "tokens"} - set(values)
        if missing:
            raise ValueError(f"{source}: {where} is missing {sorted(missing)}")
        try:
            return RunSpec(**values)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{source}: {where}: {err}") from None

    counting = grid.get("budget_flops", "6ND")
    if counting not in ("6ND", "counted"):
        raise ValueError(f"{source}: budget_flops must be '6ND' (Kaplan's C = 6ND, N "
                         f"non-embedding) or 'counted' (attention and output layer too); "
                         f"got {counting!r}")
    # non-embedding N does not depend on the vocabulary; counted FLOPs do
    vocab = vocab_size_of(data) if counting == "counted" else (data.vocab_size or 2)
    bases = []  # (where, name suffix, RunSpec fields without tokens, non-embedding N)
    for i, model in enumerate(grid.get("models", [])):
        where = f"models[{i}] ({model.get('name', '?')!r})"
        model = defaults | dict(model)
        if "lr" not in model:
            raise ValueError(f"{source}: {where} has no 'lr'; every model needs a "
                             f"learning rate (a number, or a list of them)")
        lrs = model.pop("lr")
        for lr in (lrs if isinstance(lrs, list) else [lrs]):
            base = model | {"lr": lr}
            probe = spec(where, base | {"tokens": 10**12})
            config = probe.model_config(vocab)
            n = flops.param_counts(config).non_embedding
            per_token = (flops.FLOPS_PER_PARAM_TOKEN * n if counting == "6ND" else
                         flops.flops_per_token(config, include_unembedding=True))
            bases.append((where, f"-lr{lr:g}" if isinstance(lrs, list) else "", base,
                          (n, per_token)))
    ratio = grid.get("tokens_per_param", (0, math.inf))
    if (not isinstance(ratio, (list, tuple)) or len(ratio) != 2
            or not all(isinstance(v, (int, float)) and v >= 0 for v in ratio)):
        raise ValueError(f"{source}: tokens_per_param must be [low, high]; got {ratio!r}")
    low, high = ratio
    budgets = grid.get("budgets", [])
    if not isinstance(budgets, dict):  # every model at every budget
        budgets = {budget: None for budget in budgets}
    models = {base["name"] for _, _, base, _ in bases}
    runs: list[RunSpec] = []
    for label, chosen in budgets.items():
        try:
            budget = float(label)
        except (TypeError, ValueError):
            budget = math.nan
        if not _positive_number(budget):
            raise ValueError(f"{source}: budgets has {label!r}; expected positive, finite "
                             f"numbers of FLOPs")
        if chosen is not None and set(chosen) - models:
            raise ValueError(f"{source}: budget {budget:g} names unknown model(s) "
                             f"{sorted(set(chosen) - models)}; the models are {sorted(models)}")
    for budget, chosen in sorted((float(c), names) for c, names in budgets.items()):
        for where, suffix, base, (n, per_token) in bases:
            tokens = round(budget / per_token)
            if (chosen is None or base["name"] in chosen) and low <= tokens / n <= high:
                runs.append(spec(where, base | {"name": f"{base['name']}-C{budget:.3g}{suffix}",
                                                "tokens": tokens, "budget": budget}))
    for tokens in grid.get("tokens", []):
        if not _positive_number(tokens):
            raise ValueError(f"{source}: tokens has {tokens!r}; expected positive numbers")
        for where, suffix, base, _ in bases:
            runs.append(spec(where, base | {"name": f"{base['name']}-D{tokens:.3g}{suffix}",
                                            "tokens": int(tokens)}))
    runs += [spec(f"runs[{i}]", defaults | run) for i, run in enumerate(grid.get("runs", []))]
    seeds = grid.get("seeds")
    if seeds is not None:
        if not isinstance(seeds, list) or not seeds or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise ValueError(f"{source}: seeds must be a list of non-negative integers; "
                             f"got {seeds!r}")
        runs = [spec(r.name, asdict(r) | {"name": f"{r.name}-s{seed}", "seed": seed})
                for r in runs for seed in seeds]
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"{source} gives two runs the same name: "
                         f"{sorted({n for n in names if names.count(n) > 1})}")
    if isinstance(data, KeyValueData):  # windows must hold whole segments
        for r in runs:
            try:
                data.check(r)
            except ValueError as err:
                raise ValueError(f"{source}: {err}") from None
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


def load_grid(path: str | os.PathLike) -> tuple[Data, list[RunSpec]]:
    """:func:`expand_grid` of a JSON file; errors name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"--grid {str(path)!r}: no such file") from None
    try:
        grid = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"grid {str(path)!r} is not valid JSON: {err}") from None
    return expand_grid(grid, source=f"grid {str(path)!r}")


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
def spent_flops(out: str | os.PathLike) -> float:
    """Counted training FLOPs of every run recorded in ``out`` (diverged runs included)."""
    path = Path(out)
    if not path.is_file():
        return 0.0
    return float(sum((r.get("result") or {}).get("flops") or 0.0 for r in load_results(path)))


def _check_file_cap(out, max_flops: float | None, cost: float, name: str) -> None:
    """Raise :class:`BudgetExceededError` if ``cost`` more FLOPs would take the results
    file past ``max_flops`` (what it already holds is counted afresh each time)."""
    if max_flops is None:
        return
    budget = FlopBudget(max_flops, f"results file {Path(out).name!r}")
    spent = spent_flops(out)
    if spent:
        budget.charge(min(spent, budget.total), "runs already recorded")
    budget.charge(cost, name)


def _train_and_record(spec: RunSpec, data: Data, out, *, max_flops, cost, command,
                      **kwargs) -> dict | None:
    """Claim, check the file's cap, train, append, release; ``None`` if the run is taken."""
    identifier = run_id(spec, data)
    if not claim_run(out, identifier):
        return None
    try:
        _check_file_cap(out, max_flops, cost, spec.name)
        record = run_one(spec, data, **kwargs)
        if command is not None:
            record["provenance"]["command"] = command
        append_record(out, record)
        return record
    finally:
        release_run(out, identifier)


def _describe(record: dict) -> str:
    res = record["result"]
    n = record["model"]["non_embedding_params"]
    if record.get("status") == "diverged":
        return f"N={n:,}: diverged at step {res['diverged_at_step']}"
    return (f"N={n:,} D={res['tokens']:.3g} val {res['final_val_loss']:.4f} nats/token, "
            f"{res['wall_time_s']:.1f} s")


def run_sweep(
    runs: Sequence[RunSpec],
    data: Data,
    out: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_interval: int = 0,
    weights_dir: str | os.PathLike | None = None,
    max_flops: float | None = None,
    budget: FlopBudget | None = None,
    jobs: int = 1,
    threads: int | None = None,
    progress: bool = True,
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Train every run not yet recorded in ``out``; append each record as it finishes.

    Returns the records of the runs trained now (by this process and its jobs). Runs
    already in ``out`` (same ``run_id``) or claimed by another live process are
    skipped, so calling this again after an interruption resumes. ``max_flops`` caps
    the counted FLOPs the file may hold in all; ``budget`` (a
    :class:`~course_lib.scaling.budget.FlopBudget`) is charged by this call's runs. A run
    either would overdraw raises :class:`~course_lib.scaling.budget.BudgetExceededError`
    before it trains. ``jobs > 1`` trains that many runs at once, each in its own
    process with ``threads`` torch threads (default 1), longest first. ``weights_dir``
    keeps every trained model (:func:`course_lib.scaling.runs.load_run_model`).
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer; got {jobs!r}")
    if max_flops is not None and not (isinstance(max_flops, (int, float))
                                      and math.isfinite(max_flops) and max_flops >= 0):
        raise ValueError(f"max_flops must be a non-negative number of FLOPs or None; "
                         f"got {max_flops!r}")
    done = finished_ids(out)
    todo = [r for r in runs if run_id(r, data) not in done]
    log(f"{len(runs)} runs in this shard: {len(runs) - len(todo)} already in {out}, "
        f"{len(todo)} to train")
    if not todo:
        return []
    kwargs = {"device": device, "checkpoint_dir": checkpoint_dir,
              "checkpoint_interval": checkpoint_interval, "progress": progress,
              "weights_dir": weights_dir}
    if jobs > 1:
        if budget is not None:
            raise ValueError("a FlopBudget object cannot be shared by jobs; use max_flops")
        return _run_jobs(todo, data, out, jobs, threads, max_flops, command, kwargs, log)
    vocab = vocab_size_of(data)
    planned = [r.planned_flops(vocab) for r in todo]
    new, start = [], time.perf_counter()
    for i, spec in enumerate(todo):
        record = _train_and_record(spec, data, out, max_flops=max_flops, cost=planned[i],
                                   command=command, budget=budget, **kwargs)
        if record is None:
            log(f"[{i + 1}/{len(todo)}] {spec.name}: taken by another process, skipped")
            continue
        new.append(record)
        share = sum(planned[: i + 1]) / sum(planned)
        log(f"[{i + 1}/{len(todo)}] {spec.name}: {_describe(record)}; {share:.0%} of the "
            f"FLOPs done in {(time.perf_counter() - start) / 60:.1f} min")
    return new


def _job(index, todo, data, out, max_flops, threads, command, kwargs, queue) -> None:
    """One worker process of :func:`run_sweep`: claim the next free run, train it, repeat."""
    torch.set_num_threads(threads or 1)
    vocab = vocab_size_of(data)
    try:
        for spec in todo:
            record = _train_and_record(spec, data, out, max_flops=max_flops,
                                       cost=spec.planned_flops(vocab), command=command,
                                       **kwargs)
            if record is not None:
                queue.put(("done", index, spec.name, _describe(record)))
    except BudgetExceededError as err:
        queue.put(("budget", index, str(err), ""))
    except BaseException as err:  # noqa: BLE001 - reported by the parent, then re-raised
        queue.put(("error", index, f"{type(err).__name__}: {err}", ""))
        raise
    finally:
        queue.put(("exit", index, "", ""))


def _run_jobs(todo, data, out, jobs, threads, max_flops, command, kwargs, log) -> list[dict]:
    vocab = vocab_size_of(data)
    todo = sorted(todo, key=lambda r: -r.planned_flops(vocab))  # longest first: balanced end
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_job, args=(i, todo, data, out, max_flops, threads,
                                                  command, kwargs, queue))
               for i in range(jobs)]
    for worker in workers:
        worker.start()
    running, problems, start, finished = jobs, [], time.perf_counter(), 0
    try:
        while running:
            kind, index, text, extra = queue.get()
            if kind == "exit":
                running -= 1
            elif kind == "done":
                finished += 1
                log(f"[job {index}] {text}: {extra}; {finished} runs in "
                    f"{(time.perf_counter() - start) / 60:.1f} min")
            else:
                problems.append((kind, text))
    finally:
        for worker in workers:
            worker.join()
    for kind, text in problems:
        if kind == "budget":
            raise BudgetExceededError(text)
        raise RuntimeError(f"a sweep job failed: {text}")
    ids = {run_id(r, data) for r in todo}
    return [r for r in load_results(out) if r["run_id"] in ids]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course_lib.scaling.sweep",
                                description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", required=True, help="grid file (JSON)")
    p.add_argument("--out", required=True, help="results file (JSONL), appended to")
    p.add_argument("--shard", default="0/1", help="i/n: this process trains runs i, i+n, …")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained at once, one process each (default 1)")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: auto)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per process (default: torch's, 1 with --jobs)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="resume an interrupted run from its checkpoints here")
    p.add_argument("--checkpoint-interval", type=int, default=200, help="steps")
    p.add_argument("--save-weights", default=None, metavar="DIR",
                   help="keep each run's trained weights in DIR/<run_id>/ (sha256-checked)")
    p.add_argument("--max-flops", type=float, default=None,
                   help="the most counted training FLOPs the results file may hold, over "
                        "all invocations (0 allows none; default: no limit)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their cost")
    p.add_argument("--no-progress", action="store_true", help="no per-step progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        data, runs = load_grid(args.grid)
        index, count = parse_shard(args.shard)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    runs = shard(runs, index, count)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dry_run:
        vocab = vocab_size_of(data)
        print(f"{'run':28s} {'steps':>7s} {'tokens':>12s} {'6ND':>9s} {'counted':>9s}  id")
        for spec in runs:
            print(f"{spec.name:28s} {spec.steps:7d} {spec.trained_tokens:12,d} "
                  f"{spec.compute(vocab):9.3g} {spec.planned_flops(vocab):9.3g}  "
                  f"{run_id(spec, data)}")
        print(f"{len(runs)} runs, C = 6ND = {sum(r.compute(vocab) for r in runs):.3g} FLOPs, "
              f"{sum(r.planned_flops(vocab) for r in runs):.3g} counted")
        return 0
    try:
        run_sweep(runs, data, args.out, device=args.device,
                  checkpoint_dir=args.checkpoint_dir,
                  checkpoint_interval=args.checkpoint_interval if args.checkpoint_dir else 0,
                  weights_dir=args.save_weights, max_flops=args.max_flops,
                  jobs=args.jobs, threads=args.threads,
                  progress=not args.no_progress,
                  command="python -m course_lib.scaling.sweep " + " ".join(
                      sys.argv[1:] if argv is None else argv))
    except BudgetExceededError as err:
        print(f"stopped: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
