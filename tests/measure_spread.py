"""How far each tolerance check moves between arithmetics (``make spread``).

    python tests/measure_spread.py [--variants native-1 default-2 ...] [--jobs 2]
                                   [--out _build/spread] [notebooks ...]

Executes copies of the chapters once per *variant* — torch's kernels for this
processor (``native``) or its portable ones (``default``, i.e.
``ATEN_CPU_CAPABILITY=default``), with 1 or 2 threads — with
``$COURSE_CHECK_LOG`` set, so that every :func:`course_lib.core.checks.expect_close`
records the value it measured. A check outside its tolerance is recorded too
(the copies are executed with errors allowed). Then, for every check, it prints
the reference, the largest deviation from it over the variants, and the ratio
of the tolerance to that deviation, and writes the whole table as JSON
(``OUT/spread.json``). ``tests/README.md`` says how a tolerance is chosen from it.

This is a measurement tool, not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_labs import copy_results  # noqa: E402
from execute_notebooks import execute  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {  # name: environment
    "native-1": {"OMP_NUM_THREADS": "1"},
    "native-2": {"OMP_NUM_THREADS": "2"},
    "default-1": {"OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "default"},
    "default-2": {"OMP_NUM_THREADS": "2", "ATEN_CPU_CAPABILITY": "default"},
}


def run_variant(name: str, paths: list[Path], out: Path, jobs: int) -> None:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    copy_results(folder)
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    env |= VARIANTS[name] | {"PYTHONHASHSEED": "0", "OMP_WAIT_POLICY": "PASSIVE",
                             "MKL_NUM_THREADS": VARIANTS[name]["OMP_NUM_THREADS"]}

    def one(path: Path) -> None:
        copy = folder / path.name
        copy.write_bytes(path.read_bytes())
        log = folder / f"{path.stem}.jsonl"
        log.unlink(missing_ok=True)
        subprocess.run([sys.executable, __file__, "--one", str(copy)], check=True,
                       env=env | {"COURSE_CHECK_LOG": str(log)})
        print(f"  {name}: {path.name} done", flush=True)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, paths))


def table(paths: list[Path], out: Path, variants: list[str]) -> list[dict]:
    values: dict[tuple[str, str], dict] = defaultdict(dict)
    for variant in variants:
        for path in paths:
            log = out / variant / f"{path.stem}.jsonl"
            if not log.is_file():
                continue
            for line in log.read_text().splitlines():
                r = json.loads(line)
                entry = values[path.stem, r["name"]]
                entry.update(reference=r["reference"], atol=r["atol"], rtol=r["rtol"])
                entry.setdefault("values", {})[variant] = r["value"]
                entry.setdefault("deviation", {})[variant] = r["deviation"]
    rows = []
    for (chapter, name), e in values.items():
        worst = max(e["deviation"].values())
        ref = e["reference"]
        scale = max(abs(v) for v in (ref if isinstance(ref, list) else [ref]))
        allowed = e["atol"] + e["rtol"] * scale
        rows.append({"chapter": chapter, "name": name, **e, "max_deviation": worst,
                     "allowed": allowed,
                     "tolerance_over_spread": allowed / worst if worst else None})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed at once")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "spread")
    parser.add_argument("--report-only", action="store_true",
                        help="only tabulate the logs already in OUT")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # a child: execute one copy in the environment it was given
        execute(args.one.resolve(), timeout=3600, allow_errors=True)
        return 0
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    if not args.report_only:
        for variant in args.variants:
            print(f"variant {variant}: {VARIANTS[variant]}", flush=True)
            run_variant(variant, paths, args.out, args.jobs)
    rows = table(paths, args.out, args.variants)
    (args.out / "spread.json").write_text(json.dumps(rows, indent=1))
    print(f"\n{'chapter':22s} {'check':52s} {'max dev':>9s} {'allowed':>9s} {'ratio':>7s}")
    for r in rows:
        ratio = f"{r['tolerance_over_spread']:7.1f}" if r["tolerance_over_spread"] else "  exact"
        print(f"{r['chapter'][:22]:22s} {r['name'][:52]:52s} {r['max_deviation']:9.2e} "
              f"{r['allowed']:9.2e} {ratio}")
    print(f"\n{len(rows)} checks; table in {args.out / 'spread.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
