"""Measure this machine and the course's GPT: ``python -m course_lib.scaling.bench {hw,train}``.

``hw``     times square matrix multiplications and prints the FLOP/s reached,
           next to the datasheet peak when the GPU is in :data:`PEAK_FLOPS`.
``lora``   times a forward pass of a MiniLM-shaped BERT (random weights, built from
           its config) three ways: as it is, with LoRA adapters, and with the adapters
           merged into the weights (:mod:`course_lib.models.lora`); prints the ratios to the
           plain model (merged should be 1 up to noise).
``sweep``  trains a fixed set of short sweep runs (chapter 9's key-value language,
           widths 16 to 96) one at a time and then with ``--jobs 2``, and prints the
           sweep's speed as the sweep counts it — counted training FLOPs (weights,
           attention, output layer) per wall-clock second — with its fraction of the
           matmul peak measured on as many threads as there are jobs.
``stack``  what the sweep's speed was not gained by: times AdamW training steps of
           ``k`` same-shape models (the seeds of one IsoFLOP point) trained one after
           another, trained as one stacked model (``torch.func.stack_module_state`` +
           ``vmap``, attention by the math kernel, which has a batching rule), and —
           with ``--compile`` — each under ``torch.compile``; prints the ratios to the
           first. On the course's 2-core CPU neither was a speed-up (0.70-1.01x; README).
``step``   where else the speed was looked for: times one training step of a sweep-shaped
           GPT as the sweep trains it, with AdamW's fused CPU kernel instead of its
           per-tensor loop, and with the exact (erf) GELU in place of the tanh-approximated
           one — a different model, timed only to show what the tanh kernel costs — and
           prints the ratios (README: neither gives the 2x that issue asked for).
``train``  times a training step (forward, backward, AdamW) of the course's
           :class:`~course_lib.models.GPT` and of ``transformers``' ``GPT2LMHeadModel``
           built from the same config, with the same weights and batch, on the
           same device; prints step times, their ratio, tokens per second and the
           model FLOPs utilisation (MFU)

               MFU = (training FLOPs per token x tokens per second) / peak FLOP/s,

           with FLOPs per token from :func:`course_lib.models.flops.flops_per_token`
           (``6 N + 6 n_layer n_ctx d_model`` plus the output layer) and the peak
           from the table of known accelerators, from ``--peak-flops``, or — on a
           CPU or an unknown GPU — measured with a large matmul. No single number is
           hard-coded: a peak from the wrong device makes MFU meaningless.

Timing is done here, never in the tests: results depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from course_lib.core.atomic import write_json_atomic
from course_lib.core.device import describe_device, get_device
from course_lib.core.seeding import seeded
from course_lib.models import GPT, GPTConfig
from course_lib.models.flops import flops_per_token

__all__ = ["PEAK_FLOPS", "known_peak_flops", "measure_matmul_flops", "TrainBench",
           "bench_train_step", "bench_lora_merge", "bench_sweep", "bench_stack",
           "bench_step_variants", "main"]

#: Dense datasheet peaks in FLOP/s, (bf16 tensor cores, plain fp32), without sparsity.
#: Matched against ``torch.cuda.get_device_name()``; more specific names first.
PEAK_FLOPS: dict[str, tuple[float | None, float]] = {
    "H100 PCIe": (756e12, 51e12),
    "H100": (989e12, 67e12),  # SXM
    "H200": (989e12, 67e12),
    "A100": (312e12, 19.5e12),
    "L40S": (362e12, 91.6e12),
    "L4": (121e12, 30.3e12),
    "A10": (125e12, 31.2e12),
    "RTX 4090": (165.2e12, 82.6e12),
    "RTX 3090": (71e12, 35.6e12),
    "V100": (None, 15.7e12),  # no bf16
    "T4": (None, 8.1e12),  # no bf16
}

PRESETS = {
    "cpu": dict(vocab_size=8192, context_length=256, n_layer=4, n_head=4, d_model=256,
                batch_size=8),
    "gpt2-small": dict(vocab_size=50304, context_length=1024, n_layer=12, n_head=12,
                       d_model=768, batch_size=16),
}


def known_peak_flops(device_name: str, precision: str) -> float | None:
    """Datasheet peak FLOP/s for a GPU name and ``precision`` ("bf16" or "fp32"), if known."""
    words = device_name.replace("-", " ").split()
    for key, (bf16, fp32) in PEAK_FLOPS.items():
        parts = key.split()
        if any(words[i:i + len(parts)] == parts for i in range(len(words))):
            return bf16 if precision == "bf16" else fp32
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_matmul_flops(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                         size: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of an ``(n x n) @ (n x n)`` product (``2 n^3`` FLOPs), best of ``repeats``."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # warm-up: thread pools, kernels, caches
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


@dataclass
class TrainBench:
    """Median step times (seconds) and what follows from them.

    ``ratio`` is the median over repeats of (our step time / HF's step time) for
    steps timed back to back: on a shared machine, a pair sees the same load, so
    the ratio is steadier than either time. Below 1 means ours is faster.
    """

    device: str
    precision: str
    config: dict
    batch_size: int
    ours_step_s: float
    hf_step_s: float
    ratio: float
    tokens_per_step: int
    flops_per_token: float
    peak_flops: float
    peak_source: str

    def tokens_per_s(self, step_s: float) -> float:
        return self.tokens_per_step / step_s

    def mfu(self, step_s: float) -> float:
        return self.flops_per_token * self.tokens_per_s(step_s) / self.peak_flops


def _step_fn(model: torch.nn.Module, loss: Callable[[], torch.Tensor], autocast,
             device: torch.device) -> Callable[[], float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")

    def step() -> float:
        _sync(device)
        start = time.perf_counter()
        with autocast:
            value = loss()
        value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        return time.perf_counter() - start

    return step


def bench_train_step(config: GPTConfig, batch_size: int, *, device: torch.device,
                     precision: str = "fp32", repeats: int = 5, warmup: int = 2,
                     compile: bool = False, peak_flops: float | None = None) -> TrainBench:
    """Time training steps of ours and HF's GPT-2 alternately; medians of ``repeats``."""
    from transformers import GPT2LMHeadModel

    with seeded(0):  # the same models and batch every time; the caller's RNG untouched
        hf = GPT2LMHeadModel(config.to_hf()).to(device)
        hf.loss_type = "ForCausalLM"
        ours = GPT.from_hf(hf).to(device)
        x = torch.randint(config.vocab_size, (batch_size, config.context_length),
                          device=device)
    y = torch.roll(x, -1, dims=1)
    run_ours = torch.compile(ours) if compile else ours
    run_hf = torch.compile(hf) if compile else hf
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    steps = {"ours": _step_fn(ours, lambda: run_ours(x, y)[1], autocast, device),
             "hf": _step_fn(hf, lambda: run_hf(input_ids=x, labels=x).loss, autocast, device)}
    times: dict[str, list[float]] = {"ours": [], "hf": []}
    for i in range(warmup + repeats):
        # back to back, alternating which goes first: load drifts hit both alike
        for name in ("ours", "hf") if i % 2 == 0 else ("hf", "ours"):
            elapsed = steps[name]()
            if i >= warmup:
                times[name].append(elapsed)
    source = "--peak-flops"
    if peak_flops is None and device.type == "cuda":
        peak_flops = known_peak_flops(torch.cuda.get_device_name(device), precision)
        source = "datasheet"
    if peak_flops is None:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        peak_flops = max(measure_matmul_flops(device, dtype, n) for n in (1024, 2048))
        source = f"measured {precision} matmul"
    return TrainBench(
        device=describe_device(device), precision=precision, config=config.to_dict(),
        batch_size=batch_size, ours_step_s=statistics.median(times["ours"]),
        hf_step_s=statistics.median(times["hf"]),
        ratio=statistics.median(a / b for a, b in zip(times["ours"], times["hf"])),
        tokens_per_step=x.numel(),
        flops_per_token=flops_per_token(config, include_unembedding=True),
        peak_flops=peak_flops, peak_source=source)


@torch.no_grad()
def bench_lora_merge(*, device: torch.device, batch_size: int = 64, seq_len: int = 32,
                     r: int = 64, targets: tuple[str, ...] = ("query", "key", "value", "dense"),
                     repeats: int = 9, config=None) -> dict[str, float]:
    """Median forward time (s) of a MiniLM-shaped BERT: ``base``, ``lora``, ``merged``.

    ``config`` (a ``BertConfig``) replaces the MiniLM shape. Also returns ``max_gap``, the largest difference between the merged and the
    unmerged model's outputs (they compute the same function).
    """
    from transformers import BertConfig, BertModel

    from course_lib.models.lora import apply_lora, merge_lora

    config = config or BertConfig(hidden_size=384, num_hidden_layers=6,
                                  num_attention_heads=12, intermediate_size=1536)
    with seeded(0):
        model = BertModel(config).to(device).eval()
        ids = torch.randint(config.vocab_size, (batch_size, seq_len), device=device)

    def timed(m) -> tuple[float, torch.Tensor]:
        out = m(input_ids=ids).last_hidden_state  # warm-up
        times = []
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            out = m(input_ids=ids).last_hidden_state
            _sync(device)
            times.append(time.perf_counter() - start)
        return statistics.median(times), out

    base_s, _ = timed(model)
    apply_lora(model, r=r, alpha=16, target_modules=targets)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.normal_(0, 0.02)  # as after training
    lora_s, unmerged = timed(model)
    merged_s, merged = timed(merge_lora(model))
    return {"base": base_s, "lora": lora_s, "merged": merged_s,
            "max_gap": (merged - unmerged).abs().max().item()}


def _lora(args) -> int:
    device = get_device(args.device)
    print(f"device: {describe_device(device)}; MiniLM shape, batch {args.batch_size} x "
          f"{args.seq_len} tokens, LoRA rank {args.rank} on every linear map", flush=True)
    t = bench_lora_merge(device=device, batch_size=args.batch_size, seq_len=args.seq_len,
                         r=args.rank, repeats=args.repeats)
    for name in ("base", "lora", "merged"):
        print(f"  {name:7s} {t[name] * 1e3:8.2f} ms   ratio to base {t[name] / t['base']:.3f}")
    print(f"  merged vs unmerged outputs: max difference {t['max_gap']:.1e}")
    return 0


def _hw(args) -> int:
    device = get_device(args.device)
    print(f"device: {describe_device(device)}")
    dtypes = [torch.float32] + ([torch.bfloat16] if device.type == "cuda" else [])
    for dtype in dtypes:
        for n in args.sizes:
            rate = measure_matmul_flops(device, dtype, n, args.repeats)
            print(f"  {str(dtype):15s} {n:5d} x {n:<5d} matmul: {rate / 1e9:9.1f} GFLOP/s")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for precision in ("bf16", "fp32"):
            peak = known_peak_flops(name, precision)
            shown = f"{peak / 1e12:.1f} TFLOP/s" if peak else "not in the table"
            print(f"  datasheet peak {precision}: {shown}")
    return 0


def _train(args) -> int:
    device = get_device(args.device)
    preset = dict(PRESETS[args.preset or ("gpt2-small" if device.type == "cuda" else "cpu")])
    for key in ("vocab_size", "context_length", "n_layer", "n_head", "d_model", "batch_size"):
        if getattr(args, key) is not None:
            preset[key] = getattr(args, key)
    batch_size = preset.pop("batch_size")
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    config = GPTConfig(**preset)
    print(f"device: {describe_device(device)}, precision {precision}, batch {batch_size} x "
          f"{config.context_length} tokens, config {preset}", flush=True)
    r = bench_train_step(config, batch_size, device=device, precision=precision,
                         repeats=args.repeats, warmup=args.warmup, compile=args.compile,
                         peak_flops=args.peak_flops)
    print(f"peak: {r.peak_flops / 1e9:,.1f} GFLOP/s ({r.peak_source}); "
          f"{r.flops_per_token / 1e6:.2f} MFLOP per token (6N + attention + output layer)")
    print(f"{'model':22s} {'step (ms)':>10s} {'tokens/s':>10s} {'MFU':>7s}")
    for name, step_s in (("course_lib GPT", r.ours_step_s), ("HF GPT2LMHeadModel", r.hf_step_s)):
        print(f"{name:22s} {step_s * 1e3:10.1f} {r.tokens_per_s(step_s):10,.0f} "
              f"{r.mfu(step_s):7.1%}")
    print(f"ratio of step times, ours / HF: {r.ratio:.3f} (median of {args.repeats})")
    if args.out:
        write_json_atomic(args.out, asdict(r) | {"torch": torch.__version__,
                                                 "command": " ".join(sys.argv)})
    return 0


def bench_sweep(widths: tuple[int, ...] = (16, 32, 64, 96), steps: int = 300,
                jobs: int = 2) -> dict:
    """Counted FLOP/s of short sweep runs, one at a time and with ``jobs`` processes."""
    import tempfile

    from course_lib.scaling.runs import KeyValueData, RunSpec
    from course_lib.scaling.sweep import run_sweep

    data = KeyValueData()
    tokens = steps * 64 * 32
    specs = [RunSpec(name=f"d{d}", n_layer=2, d_model=d, n_head=max(1, d // 16),
                     tokens=tokens, lr=0.01) for d in widths]
    out = {}
    for mode, n_jobs in (("one at a time", 1), (f"--jobs {jobs}", jobs)):
        folder = Path(tempfile.mkdtemp())
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        start = time.perf_counter()
        records = run_sweep(specs, data, folder / "bench.jsonl", device="cpu", jobs=n_jobs,
                            progress=False, log=lambda _: None)
        wall = time.perf_counter() - start
        torch.set_num_threads(threads)
        counted = sum(r["result"]["flops"] for r in records)
        per_run = {r["spec"]["name"]: r["result"]["flops"] / r["result"]["wall_time_s"]
                   for r in records}
        out[mode] = {"flops": counted, "wall_s": wall, "flops_per_s": counted / wall,
                     "per_run_flops_per_s": per_run}
    return out


def _time(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def _adamw_step(model: GPT, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                y: torch.Tensor) -> None:
    """One training step as the sweep takes it: loss of ``(x, y)`` ``(B, T)``, backward,
    gradients clipped to norm 1, AdamW update."""
    model(x, y)[1].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def bench_stack(width: int, k: int = 3, steps: int = 10, compile_: bool = False) -> dict:
    """Seconds per training step of ``k`` GPTs of width ``width`` (depth 2, the sweep's
    batch 64 x 32 over 64 tokens): one after another, stacked with ``torch.func``,
    and (``compile_``) each compiled. ``"loss_gap"``: the stacked models' first losses
    against the separate ones' (the same weights and batches: float32 rounding)."""
    from torch.func import functional_call, stack_module_state, vmap
    from torch.nn.attention import SDPBackend, sdpa_kernel

    config = GPTConfig(vocab_size=64, context_length=32, n_layer=2,
                       n_head=max(1, width // 16), d_model=width)
    with seeded(0):
        models = [GPT(config) for _ in range(k)]
        x, y = torch.randint(64, (2, k, 64, 32))
    with torch.no_grad():
        first = [float(m(x[i], y[i])[1]) for i, m in enumerate(models)]

    def separate(nets):
        optimizers = [torch.optim.AdamW(m.parameters()) for m in nets]

        def step():
            for i, (m, opt) in enumerate(zip(nets, optimizers)):
                _adamw_step(m, opt, x[i], y[i])
        return step

    class Unchecked(torch.nn.Module):  # GPT.forward's token-id check cannot run under vmap
        def __init__(self, model: GPT) -> None:
            super().__init__()
            self.model = model

        def forward(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
            return self.model._forward(xs, ys, None)[1]

    wrapped = [Unchecked(m) for m in models]
    params, buffers = stack_module_state(wrapped)
    params = {n: torch.nn.Parameter(p.detach().clone()) for n, p in params.items()}
    loss = vmap(lambda p, b, xs, ys: functional_call(wrapped[0], (p, b), (xs, ys)))
    optimizer = torch.optim.AdamW(params.values())
    with sdpa_kernel(SDPBackend.MATH), torch.no_grad():
        stacked_first = loss(params, buffers, x, y).tolist()

    def stacked():
        with sdpa_kernel(SDPBackend.MATH):
            loss(params, buffers, x, y).sum().backward()
        optimizer.step()  # (no per-model clipping: the timing is the point here)
        optimizer.zero_grad(set_to_none=True)

    ways = {"one after another": separate(models), "stacked (vmap)": stacked}
    if compile_:
        ways["each compiled"] = separate([torch.compile(m) for m in models])
    out = {"loss_gap": max(abs(a - b) for a, b in zip(first, stacked_first))}
    for name, step in ways.items():
        step()  # warm-up (and compilation)
        out[name] = min(_time(step) for _ in range(steps))
    return out


def bench_step_variants(width: int, steps: int = 10) -> dict:
    """Seconds per AdamW training step (forward, backward, clipping, update) of one GPT of
    width ``width`` (depth 2, batch 64 x 32 over 64 tokens, as in the sweep), three ways:
    ``"as trained"``, ``"fused AdamW"`` (``torch.optim.AdamW(fused=True)``: the same update
    in one kernel) and ``"erf GELU"`` (the MLP's tanh-approximated GELU swapped for the
    exact one: another model). Best of ``steps`` steps after one warm-up step each."""
    import torch.nn.functional as F

    from course_lib.models.gpt import MLP

    config = GPTConfig(vocab_size=64, context_length=32, n_layer=2,
                       n_head=max(1, width // 16), d_model=width)
    with seeded(0):
        x, y = torch.randint(64, (2, 64, 32))

    def exact_gelu(mlp: MLP) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda h: mlp.dropout(mlp.proj(F.gelu(mlp.fc(h))))

    def way(fused: bool = False, erf: bool = False) -> Callable[[], None]:
        with seeded(0):
            model = GPT(config)
        if erf:
            for mlp in (m for m in model.modules() if isinstance(m, MLP)):
                mlp.forward = exact_gelu(mlp)
        optimizer = torch.optim.AdamW(model.parameters(), fused=fused or None)

        return lambda: _adamw_step(model, optimizer, x, y)

    out = {}
    for name, step in (("as trained", way()), ("fused AdamW", way(fused=True)),
                       ("erf GELU", way(erf=True))):
        step()
        out[name] = min(_time(step) for _ in range(steps))
    return out


def _step(args) -> int:
    torch.set_num_threads(args.threads)
    print(f"one GPT, depth 2, batch 64 x 32, {args.threads} thread(s); seconds per "
          f"training step, best of {args.steps}", flush=True)
    for width in args.widths:
        r = bench_step_variants(width, args.steps)
        base = r["as trained"]
        ratios = ", ".join(f"{name} {base / r[name]:.2f}x" for name in r
                           if name != "as trained")
        print(f"d = {width:3d}: {base * 1e3:6.1f} ms as trained; speed-up: {ratios}",
              flush=True)
    return 0


def _stack(args) -> int:
    torch.set_num_threads(args.threads)
    print(f"{args.k} models per stack, depth 2, batch 64 x 32, {args.threads} thread(s); "
          f"seconds per step of all {args.k}, best of {args.steps}", flush=True)
    for width in args.widths:
        r = bench_stack(width, args.k, args.steps, args.compile)
        base = r["one after another"]
        ratios = ", ".join(f"{name} {base / r[name]:.2f}x" for name in r
                           if name not in ("loss_gap", "one after another"))
        print(f"d = {width:3d}: {base * 1e3:7.1f} ms one after another; speed-up: {ratios}"
              f" (first losses agree to {r['loss_gap']:.1e})", flush=True)
    return 0


def _sweep(args) -> int:
    widths = tuple(args.widths)
    print(f"{len(widths)} runs of {args.steps} steps (batch 64 x 32 tokens), widths {widths}, "
          f"depth 2, one thread per process", flush=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.jobs)
    peak = measure_matmul_flops("cpu", torch.float32, 1024, 5)
    torch.set_num_threads(threads)
    result = bench_sweep(widths, args.steps, args.jobs)
    print(f"matmul peak on {args.jobs} threads: {peak / 1e9:.1f} GFLOP/s")
    for mode, r in result.items():
        rates = ", ".join(f"{k} {v / 1e9:.1f}" for k, v in r["per_run_flops_per_s"].items())
        print(f"{mode:14s}: {r['flops']:.3g} counted FLOPs in {r['wall_s']:.1f} s = "
              f"{r['flops_per_s'] / 1e9:.1f} GFLOP/s ({r['flops_per_s'] / peak:.0%} of the "
              f"peak); per run (GFLOP/s): {rates}")
    first, second = result.values()
    print(f"ratio --jobs {args.jobs} / one at a time: "
          f"{second['flops_per_s'] / first['flops_per_s']:.2f}")
    if args.out:
        write_json_atomic(args.out, {"peak_flops": peak, "results": result,
                                     "torch": torch.__version__,
                                     "command": " ".join(sys.argv)})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.scaling.bench",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    hw = sub.add_parser("hw", help="matmul FLOP/s of this machine")
    hw.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    tr = sub.add_parser("train", help="course_lib GPT vs transformers GPT-2: one training step")
    tr.add_argument("--preset", choices=sorted(PRESETS), default=None,
                    help="model and batch size (default: gpt2-small on CUDA, cpu elsewhere)")
    for key in ("vocab_size", "context_length", "n_layer", "n_head", "d_model", "batch_size"):
        tr.add_argument("--" + key.replace("_", "-"), type=int, default=None)
    tr.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                    help="default: bf16 on CUDA, fp32 elsewhere")
    tr.add_argument("--warmup", type=int, default=3)
    tr.add_argument("--compile", action="store_true", help="torch.compile both models")
    tr.add_argument("--peak-flops", type=float, default=None, help="override the peak FLOP/s")
    tr.add_argument("--out", default=None, help="also write the results as JSON")
    sw = sub.add_parser("sweep", help="counted FLOP/s of sweep runs, alone and with --jobs")
    sw.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 96])
    sw.add_argument("--steps", type=int, default=300)
    sw.add_argument("--jobs", type=int, default=2)
    sw.add_argument("--out", default=None, help="also write the results as JSON")
    st = sub.add_parser("stack", help="k same-shape models: one by one vs stacked (vmap)")
    st.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 96])
    st.add_argument("--k", type=int, default=3)
    st.add_argument("--steps", type=int, default=10)
    st.add_argument("--threads", type=int, default=1)
    st.add_argument("--compile", action="store_true", help="also time torch.compile")
    sp = sub.add_parser("step", help="one training step: as trained, fused AdamW, erf GELU")
    sp.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32, 64, 96])
    sp.add_argument("--steps", type=int, default=10)
    sp.add_argument("--threads", type=int, default=1)
    lo = sub.add_parser("lora", help="forward time: plain, LoRA, LoRA merged")
    lo.add_argument("--batch-size", type=int, default=64)
    lo.add_argument("--seq-len", type=int, default=32)
    lo.add_argument("--rank", type=int, default=64)
    for p in (hw, tr, lo):
        p.add_argument("--device", default=None, help="cuda, mps or cpu (default: auto)")
        p.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    return {"hw": _hw, "train": _train, "lora": _lora, "sweep": _sweep,
            "stack": _stack, "step": _step}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
