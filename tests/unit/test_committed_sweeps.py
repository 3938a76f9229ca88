"""The committed sweep results are exactly what their committed grids produce.

Every record under ``notebooks/results/scaling`` must be a run of the grid beside it
(same ``run_id``, same spec), so that ``python -m course_lib.scaling.sweep --grid G --out R``
reproduces the file: rerun, it finds every run done, and deleting a record makes it
train exactly that run again.
"""

from pathlib import Path

import pytest

from course_lib.models import flops
from course_lib.scaling import sweep
from course_lib.scaling.results import load_results
from course_lib.scaling.runs import RunSpec

RESULTS = Path(__file__).resolve().parents[2] / "notebooks" / "results" / "scaling"
PAIRS = sorted((g, g.with_name(g.name.replace("_grid.json", ".jsonl")))
               for g in RESULTS.glob("*_grid.json"))


@pytest.mark.parametrize("grid, results", [p for p in PAIRS if p[1].exists()],
                         ids=lambda p: p.name if isinstance(p, Path) else str(p))
def test_every_committed_record_is_a_run_of_its_grid(grid, results):
    data, runs = sweep.load_grid(grid)
    expected = {sweep.run_id(r, data): r for r in runs}
    for record in load_results(results):
        spec = RunSpec(**record["spec"])
        assert record["run_id"] in expected, f"{record['spec']['name']} is not in {grid.name}"
        assert spec == expected[record["run_id"]]
        assert sweep.run_id(spec, data) == record["run_id"]
        assert record["provenance"]["versions"]["course_lib"]


def test_the_block_comparison_matches_n_within_one_percent():
    """Chapter 4 compares GPT-2's and Llama's blocks 'at equal N': the grids say so."""
    data, runs = sweep.load_grid(RESULTS / "block_lr_grid.json")
    vocab = sweep.vocab_size_of(data)
    n = {r.name.split("-D")[0]: flops.param_counts(r.model_config(vocab)).non_embedding
         for r in runs}
    for width in (16, 32, 64):
        assert abs(n[f"llama-d{width}"] / n[f"gpt2-d{width}"] - 1) < 0.01


def test_the_committed_wsd_branches_are_runs_of_their_grid():
    """Chapter 11's branched WSD file: one record per seed of its grid, every length."""
    import json

    from course_lib.scaling.wsd import branch_steps, load_wsd_grid

    grid, _, specs = load_wsd_grid(RESULTS / "wsd_grid.json")
    saved = json.loads((RESULTS / "wsd.json").read_text())
    assert saved["grid"] == grid
    assert sorted(r["spec"]["seed"] for r in saved["records"]) == grid["seeds"]
    by_seed = {spec.seed: spec for spec in specs}
    for record in saved["records"]:
        spec = by_seed[record["spec"]["seed"]]
        assert RunSpec(**record["spec"]) == spec
        assert [r["steps"] for r in record["lengths"]] == branch_steps(
            spec.steps, grid["branches"], grid["decay_fraction"])
        assert record["wall_time_s"] > 0 and record["provenance"]["versions"]["course_lib"]


def test_the_ladder_keeps_the_weights_of_every_run():
    from course_lib.core.store import load_manifest

    for record in load_results(RESULTS / "ladder.jsonl"):
        manifest = load_manifest(RESULTS / "ladder_weights" / record["weights"])
        assert manifest["spec"]["run_id"] == record["run_id"]
