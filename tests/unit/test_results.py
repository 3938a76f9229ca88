"""Result files and the FLOP budget: round trips, atomic appends, clear refusals."""

import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from course_lib.scaling import results
from course_lib.scaling.budget import BudgetExceededError, FlopBudget

ROOT = Path(__file__).resolve().parents[2]


def record(run_id, loss=1.5, **spec):
    return {"run_id": run_id, "spec": {"lr": 0.01, "budget": 1e9} | spec,
            "model": {"non_embedding_params": 1000, "total_params": 1500,
                      "embedding_params": 500},
            "result": {"tokens": 2048, "flops_6nd": 6 * 1000 * 2048, "final_val_loss": loss}}


def test_records_round_trip_in_order(tmp_path):
    path = tmp_path / "sub" / "runs.jsonl"
    for i in range(3):
        results.append_record(path, record(f"r{i}", loss=1.0 + i))
    loaded = results.load_results(path)
    assert [r["run_id"] for r in loaded] == ["r0", "r1", "r2"]
    assert loaded[1] == record("r1", loss=2.0)
    assert results.finished_ids(path) == {"r0", "r1", "r2"}
    assert results.finished_ids(tmp_path / "missing.jsonl") == set()


def test_an_append_never_rewrites_what_is_there(tmp_path):
    path = tmp_path / "runs.jsonl"
    results.append_record(path, record("r0"))
    inode, before = path.stat().st_ino, path.read_bytes()
    results.append_record(path, record("r1"))
    assert path.stat().st_ino == inode and path.read_bytes().startswith(before)


def test_a_writer_killed_inside_its_line_loses_only_that_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    results.append_record(path, record("r0"))
    with open(path, "ab") as handle:  # what a SIGKILL in mid-write leaves
        handle.write(b'{"run_id": "r1", "spe')
    assert results.finished_ids(path) == {"r0"}  # the partial line is not a record
    results.append_record(path, record("r2"))
    assert [r["run_id"] for r in results.load_results(path)] == ["r0", "r2"]
    assert path.read_text().count("\n") == 2


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "runs.jsonl"
    threads = [threading.Thread(target=results.append_record, args=(path, record(f"r{i}")))
               for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.finished_ids(path) == {f"r{i}" for i in range(16)}


WRITER = """
import sys
from course_lib.scaling import results
for i in range(int(sys.argv[3])):
    results.append_record(sys.argv[1], {"run_id": f"{sys.argv[2]}-{i}", "pad": "x" * 3000})
"""


def test_processes_with_different_temporary_folders_lose_nothing(tmp_path):
    """Cluster jobs each get their own $TMPDIR: the lock must live beside the file."""
    path, n = tmp_path / "shared" / "runs.jsonl", 300
    procs = []
    for name in ("a", "b"):
        tmp = tmp_path / f"tmp-{name}"
        tmp.mkdir()
        env = os.environ | {"TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
        procs.append(subprocess.Popen([sys.executable, "-c", WRITER, str(path), name,
                                       str(n)], env=env))
    assert all(p.wait(timeout=300) == 0 for p in procs)
    ids = [r["run_id"] for r in results.load_results(path)]
    assert len(ids) == 2 * n and len(set(ids)) == 2 * n
    assert path.read_text().count("\n") == 2 * n
    assert (path.parent / "runs.jsonl.lock").exists()


def test_a_claimed_run_cannot_be_claimed_twice_until_its_owner_dies(tmp_path):
    path = tmp_path / "runs.jsonl"
    assert results.claim_run(path, "r0")
    claim = tmp_path / "runs.jsonl.claims" / "r0"
    owner = json.loads(claim.read_text())
    assert owner["pid"] == os.getpid()
    other = subprocess.run([sys.executable, "-c", "import sys; from course_lib.scaling import results;"
                            f" sys.exit(0 if results.claim_run({str(path)!r}, 'r0') else 3)"],
                           env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert other.returncode == 3  # taken by a live process (this one)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    claim.write_text(json.dumps(owner | {"pid": dead.pid}))  # its owner has exited
    assert results.claim_run(path, "r0")
    results.release_run(path, "r0")
    results.append_record(path, record("r0"))
    assert not results.claim_run(path, "r0")  # recorded: nothing left to claim


@pytest.mark.parametrize("bad, message", [
    ({"spec": {}}, "run_id"),
    ({"run_id": "x", "result": {"final_val_loss": math.nan}}, "NaN"),
])
def test_bad_records_are_refused(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        results.append_record(tmp_path / "r.jsonl", bad)


def test_a_corrupt_line_is_reported_by_number(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(record("r0")) + "\n" + '{"run_id": "r1", "spe\n')
    with pytest.raises(ValueError, match="line 2: not valid JSON"):
        results.load_results(path)


def test_shards_are_read_together_and_duplicates_kept_once(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    results.append_record(a, record("r0"))
    results.append_record(b, record("r1"))
    results.append_record(b, record("r0"))  # the same run recorded by two shards
    assert [r["run_id"] for r in results.load_results(a, b)] == ["r0", "r1"]
    results.append_record(b, record("r0", lr=0.5))
    with pytest.raises(ValueError, match="different specs"):
        results.load_results(a, b)
    with pytest.raises(FileNotFoundError, match="no results file"):
        results.load_results(tmp_path / "nope.jsonl")


def test_to_arrays_gives_columns_for_fitting():
    cols = results.to_arrays([record("r0", loss=2.0), record("r1", loss=1.0) | {"spec": {}}])
    assert cols["N"].tolist() == [1000, 1000] and cols["D"].tolist() == [2048, 2048]
    assert cols["loss"].tolist() == [2.0, 1.0]
    assert cols["budget"][0] == 1e9 and np.isnan(cols["budget"][1])
    assert np.isnan(cols["true_loss"]).all()


def test_budget_charges_until_it_refuses():
    budget = FlopBudget(1e12, "exploration")
    budget.charge(6e11, "first")
    assert budget.can_afford(4e11) and not budget.can_afford(4.1e11)
    with pytest.raises(BudgetExceededError) as err:
        budget.charge(5e11, "second")
    text = str(err.value)
    for part in ("'second'", "5e+11", "4e+11", "1e+12-FLOP exploration", "1 run"):
        assert part in text
    assert budget.spent == 6e11 and budget.remaining == 4e11
    budget.charge(4e11, "exactly the rest")
    assert budget.remaining == 0 and "100%" in repr(budget)


def test_a_zero_budget_allows_nothing():
    budget = FlopBudget(0, "none")
    assert budget.can_afford(0) and not budget.can_afford(1.0)
    with pytest.raises(BudgetExceededError, match="only 0 of the 0-FLOP"):
        budget.charge(1.0, "x")


@pytest.mark.parametrize("total", [-1, math.inf, math.nan, "1e12", True])
def test_budget_needs_a_non_negative_total(total):
    with pytest.raises(ValueError, match="total must be"):
        FlopBudget(total)


@pytest.mark.parametrize("cost", [-1.0, math.nan, "big"])
def test_budget_refuses_nonsense_costs(cost):
    with pytest.raises(ValueError, match="cost of run 'x'"):
        FlopBudget(1e9).charge(cost, "x")
