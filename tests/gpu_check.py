"""The GPU check (``make gpu-check``): everything a short loan of one GPU should verify.

    python tests/gpu_check.py [--dry-run] [--budget 480] [--out notebooks/results/gpu]

A GPU is lent rarely and for minutes, so this is one prepared script, in steps, each
with a time limit, the whole under ``--budget`` seconds (8 minutes on one H200):

1. ``environment`` — the device, its datasheet peaks, torch and CUDA versions;
2. ``unit``        — the unit tests with ``COURSE_DEVICE=cuda`` (``test_gpu.py`` among them);
3. ``notebooks``   — the chapters in GPU mode: ``make nbval DEVICE=cuda`` (nbval in lax
   mode: every cell must run, and every tolerance check, with its GPU tolerance, must pass);
4. ``bench``       — ``python -m course_lib.scaling.bench train`` in bf16 on the GPT-2-small shape:
   step times, tokens/s, and MFU against the datasheet's dense bf16 peak (from the table
   in ``course_lib.scaling.bench``, never a number written here) and against a measured bf16
   matmul;
5. ``scaling``     — chapter 9's GPU grid (``notebooks/results/scaling/gpu_corpus_grid.json``:
   GPTs of 0.8M to 85M parameters on the real text, bf16) into
   ``notebooks/results/gpu/corpus_sweep.jsonl``, which chapter 9 shows when it exists.
   The sweep resumes, so a second loan finishes what a first one started.

It writes ``report.json`` (every step's status, time, output tail and numbers, with
provenance) and a readable ``report.md`` to ``--out``; commit both. Steps after a
failed one still run; the exit status is 1 if any step failed. A step that would start
with too little of the budget left is recorded as skipped.

``--dry-run`` runs the same steps on a CPU in their smallest form (one chapter, the
bench's CPU shape), to test this script without a GPU; its report goes to
``_build/gpu-dry-run`` unless ``--out`` says otherwise.

To add a step (for example a scaling grid on the GPU), write a function ``step(ctx) ->
dict`` below and append ``Step(name, function, seconds)`` to :data:`STEPS`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass
class Context:
    dry_run: bool
    out: Path
    deadline: float
    env: dict = field(default_factory=dict)

    def left(self) -> float:
        return self.deadline - time.monotonic()


def _run(ctx: Context, command: list[str], limit: float, **env) -> dict:
    """Run ``command`` from the repository root; status, seconds and the output's tail."""
    start = time.monotonic()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              timeout=max(1.0, min(limit, ctx.left())),
                              env=os.environ | ctx.env | env)
        status = "passed" if done.returncode == 0 else "failed"
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        status = "timed out"
        output = (err.stdout or b"").decode(errors="replace") if isinstance(
            err.stdout, bytes) else (err.stdout or "")
    return {"status": status, "command": " ".join(command),
            "seconds": round(time.monotonic() - start, 1), "output_tail": output[-3000:]}


def environment(ctx: Context) -> dict:
    import torch

    from course_lib.scaling import bench
    from course_lib.core.provenance import provenance

    start = time.monotonic()
    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name() if cuda else "cpu"
    info = {"status": "passed" if cuda or ctx.dry_run else "failed",
            "device_name": name, "cuda_available": cuda,
            "torch_cuda": torch.version.cuda, "provenance": provenance(),
            "datasheet_peak_flops": {p: bench.known_peak_flops(name, p)
                                     for p in ("bf16", "fp32")}}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info |= {"memory_gib": round(props.total_memory / 2**30, 1),
                 "multiprocessors": props.multi_processor_count,
                 "capability": f"{props.major}.{props.minor}"}
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,power.limit",
                              "--format=csv,noheader"], capture_output=True, text=True)
        info["nvidia_smi"] = smi.stdout.strip()
    elif not ctx.dry_run:
        info["output_tail"] = "no CUDA device: run with --dry-run to test this script"
    return info | {"seconds": round(time.monotonic() - start, 1)}


def unit(ctx: Context) -> dict:
    workers = "2" if ctx.dry_run else "8"
    tests = ["tests/unit/test_gpu.py", "tests/unit/test_checks.py"] if ctx.dry_run else [
        "tests/unit"]
    return _run(ctx, [PYTHON, "-m", "pytest", "-q", "-n", workers, *tests], 180)


def notebooks(ctx: Context) -> dict:
    # the Makefile's nbval, with this interpreter (no .venv needed on a lent machine)
    here = ["STAMP=", f"PYTEST={PYTHON} -m pytest"]
    if ctx.dry_run:  # GPU mode's lax comparison, on one chapter, on the CPU
        chosen = ["NOTEBOOKS=notebooks/01_cross_entropy.ipynb", "DEVICE=cpu", "WORKERS=1",
                  "NBVAL_MODE=--nbval-lax"]
    else:  # 16 cores: every chapter at once, one thread each
        chosen = ["DEVICE=cuda", "WORKERS=12"]
    return _run(ctx, ["make", "--no-print-directory", "nbval", *here, *chosen], 300)


def bench(ctx: Context) -> dict:
    out = ctx.out / "bench_train.json"
    args = ["--preset", "cpu", "--device", "cpu", "--repeats", "2", "--warmup", "1",
            "--batch-size", "2"] if ctx.dry_run else [
        "--preset", "gpt2-small", "--device", "cuda", "--precision", "bf16",
        "--repeats", "10", "--warmup", "3"]
    result = _run(ctx, [PYTHON, "-m", "course_lib.scaling.bench", "train", *args, "--out", str(out)],
                  180)
    if result["status"] == "passed":
        r = json.loads(out.read_text())
        tokens = r["tokens_per_step"]
        result["numbers"] = {
            "precision": r["precision"], "config": r["config"], "batch_size": r["batch_size"],
            "peak_flops": r["peak_flops"], "peak_source": r["peak_source"],
            **{f"{who}_{what}": value for who, step in (("ours", r["ours_step_s"]),
                                                         ("hf", r["hf_step_s"]))
               for what, value in (("step_s", step), ("tokens_per_s", tokens / step),
                                   ("mfu", r["flops_per_token"] * tokens / step
                                    / r["peak_flops"]))},
            "ratio_ours_over_hf": r["ratio"]}
        if not ctx.dry_run:  # the same MFU against what the chip reaches on a matmul
            from course_lib.scaling.bench import measure_matmul_flops

            import torch
            matmul = measure_matmul_flops("cuda", torch.bfloat16, 8192, 10)
            result["numbers"]["measured_bf16_matmul_flops"] = matmul
            result["numbers"]["ours_mfu_vs_matmul"] = (
                result["numbers"]["ours_mfu"] * r["peak_flops"] / matmul)
    return result


def scaling(ctx: Context) -> dict:
    out = ctx.out / "corpus_sweep.jsonl"
    if ctx.dry_run:  # two tiny runs on the key-value language, on the CPU
        grid = ctx.out / "dry_grid.json"
        grid.write_text(json.dumps({
            "data": {"kind": "keyvalue", "vocab_size": 8, "key_length": 2,
                     "value_length": 2, "n_keys": 40, "val_tokens": 2048},
            "defaults": {"batch_size": 4, "context_length": 8},
            "models": [{"name": "a", "n_layer": 1, "d_model": 8, "n_head": 2, "lr": 0.01}],
            "tokens": [256, 512]}))
        out.unlink(missing_ok=True)
        device = "cpu"
    else:
        grid = ROOT / "notebooks/results/scaling/gpu_corpus_grid.json"
        device = "cuda"
    result = _run(ctx, [PYTHON, "-m", "course_lib.scaling.sweep", "--grid", str(grid), "--out",
                        str(out), "--device", device, "--no-progress"], 240)
    if out.exists():
        from course_lib.scaling.results import load_results

        records = load_results(out)
        result["numbers"] = {"runs": len(records), "runs_in_grid": None if ctx.dry_run else 12,
                             "losses": {r["spec"]["name"]: r["result"]["final_val_loss"]
                                        for r in records}}
    return result


@dataclass
class Step:
    name: str
    run: Callable[[Context], dict]
    seconds: float  # the time limit; a step starts only if this much budget is left


#: The steps, in order (a step is one function ``step(ctx) -> dict`` and a time limit).
STEPS = [
    Step("environment", environment, 10),
    Step("unit", unit, 120),
    Step("notebooks", notebooks, 240),
    Step("bench", bench, 90),
    Step("scaling", scaling, 240),
]


def markdown(report: dict) -> str:
    env = report["steps"].get("environment", {})
    lines = [f"# GPU check — {env.get('device_name', '?')}", "",
             f"Run {report['finished']} by `{report['command']}` in {report['seconds']} s"
             f"{' (dry run on a CPU)' if report['dry_run'] else ''}.", "",
             "| step | status | seconds |", "|---|---|---|"]
    lines += [f"| {name} | {s['status']} | {s.get('seconds', '')} |"
              for name, s in report["steps"].items()]
    numbers = report["steps"].get("bench", {}).get("numbers")
    if numbers:
        lines += ["", f"Benchmark, {numbers['precision']}, batch {numbers['batch_size']} × "
                  f"{numbers['config']['context_length']} tokens, peak "
                  f"{numbers['peak_flops'] / 1e12:.3g} TFLOP/s ({numbers['peak_source']}):", "",
                  "| model | step (ms) | tokens/s | MFU |", "|---|---|---|---|"]
        for who, label in (("ours", "course_lib GPT"), ("hf", "HF GPT2LMHeadModel")):
            lines.append(f"| {label} | {numbers[who + '_step_s'] * 1e3:.1f} | "
                         f"{numbers[who + '_tokens_per_s']:,.0f} | {numbers[who + '_mfu']:.1%} |")
    grid = report["steps"].get("scaling", {}).get("numbers")
    if grid:
        lines += ["", f"Scaling grid: {grid['runs']} runs recorded in corpus_sweep.jsonl "
                  "(chapter 9 shows them)."]
    failed = [n for n, s in report["steps"].items() if s["status"] not in ("passed",)]
    lines += ["", "All steps passed." if not failed else f"Not passed: {', '.join(failed)} "
              "(output tails in report.json)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="test the script on a CPU")
    parser.add_argument("--budget", type=float, default=480, help="seconds for all steps")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--steps", nargs="+", choices=[s.name for s in STEPS], default=None)
    args = parser.parse_args(argv)
    out = args.out or ROOT / ("_build/gpu-dry-run" if args.dry_run else "notebooks/results/gpu")
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    ctx = Context(args.dry_run, out, start + args.budget,
                  env={} if args.dry_run else {"COURSE_DEVICE": "cuda"})
    steps = {}
    for step in STEPS:
        if args.steps and step.name not in args.steps:
            continue
        if ctx.left() < min(step.seconds, 30):
            steps[step.name] = {"status": "skipped", "reason": "budget spent"}
            continue
        print(f"[{time.monotonic() - start:5.0f} s] {step.name} ...", flush=True)
        try:
            steps[step.name] = step.run(ctx)
        except Exception as err:  # noqa: BLE001 — one broken step must not lose the report
            steps[step.name] = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
        print(f"        {steps[step.name]['status']}", flush=True)
    report = {"dry_run": args.dry_run, "command": " ".join([Path(sys.argv[0]).name,
                                                             *(argv or sys.argv[1:])]),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "seconds": round(time.monotonic() - start, 1), "steps": steps}
    from course_lib.core.atomic import write_json_atomic

    write_json_atomic(out / "report.json", report)
    (out / "report.md").write_text(markdown(report), encoding="utf-8")
    print(f"report: {out / 'report.md'}")
    return 0 if all(s["status"] == "passed" for s in steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
