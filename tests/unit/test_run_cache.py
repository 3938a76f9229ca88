"""Expensive runs are computed once, recomputed when their spec changes, stored atomically."""

import json

import pytest

from course_lib.core.store import cached_run, load_runs


def test_computed_once_then_loaded_and_recomputed_when_the_spec_changes(tmp_path):
    path, calls = tmp_path / "results" / "runs.json", []

    def compute(value):
        calls.append(value)
        return {"accuracy": value}

    first = cached_run(path, "a", {"n": 50, "layers": (1, 2)}, lambda: compute(0.5))
    again = cached_run(path, "a", {"n": 50, "layers": [1, 2]}, lambda: compute(0.7))
    assert first == again and calls == [0.5]
    assert set(first["provenance"]) >= {"versions", "device", "threads", "wall_time_s", "finished"}
    cached_run(path, "b", {"n": 50}, lambda: compute(0.6))
    changed = cached_run(path, "a", {"n": 100, "layers": [1, 2]}, lambda: compute(0.8))
    assert changed["result"] == {"accuracy": 0.8} and calls == [0.5, 0.6, 0.8]
    assert sorted(load_runs(path)) == ["a", "b"]
    forced = cached_run(path, "b", {"n": 50}, lambda: compute(0.9), recompute=True)
    assert forced["result"]["accuracy"] == 0.9
    assert [p.name for p in path.parent.iterdir()] == ["runs.json"]  # no temporary left


def test_a_failed_run_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "runs.json"
    cached_run(path, "a", {}, lambda: {"x": 1})
    before = path.read_text()
    with pytest.raises(ZeroDivisionError):
        cached_run(path, "b", {}, lambda: {"x": 1 / 0})
    with pytest.raises(ValueError, match="run 'c' returned NaN or infinity"):
        cached_run(path, "c", {}, lambda: {"x": float("nan")})
    assert path.read_text() == before


def test_bad_files_and_names(tmp_path):
    path = tmp_path / "runs.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="holds list, expected an object of runs"):
        load_runs(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="is not a results file"):
        load_runs(path)
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        cached_run(tmp_path / "x.json", "", {}, dict)
    assert json.loads(json.dumps(load_runs(tmp_path / "missing.json"))) == {}


def test_compute_minutes_sums_the_recorded_wall_times(tmp_path):
    from course_lib.core.store import compute_minutes

    path = tmp_path / "runs.json"
    assert compute_minutes(path) == 0
    path.write_text(json.dumps({name: {"spec": {}, "result": {}, "provenance": {
        "wall_time_s": seconds}} for name, seconds in (("a", 90.0), ("b", 30.0))}))
    assert compute_minutes(path) == 2.0
