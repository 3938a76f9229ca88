"""checks.expect_close: the tolerance check on a chapter's results, and its nbval mask."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from nbval.plugin import get_sanitize_patterns

from course_lib.core import checks

SANITIZE = Path(__file__).resolve().parents[1] / "nbval_sanitize.cfg"


def sanitized(text: str) -> str:
    import re

    for regex, replace in get_sanitize_patterns(SANITIZE.read_text()):
        text = re.sub(regex, replace, text)
    return text


def test_a_value_within_tolerance_passes_and_prints_value_reference_tolerance(capsys):
    result = checks.expect_close("probe accuracy", 0.7341, 0.734, atol=0.01)
    line = capsys.readouterr().out.strip()
    assert result and result.deviation == pytest.approx(1e-4)
    assert line == "✅ probe accuracy: measured ⟨0.7341⟩, reference 0.734 (atol 0.01)"
    assert repr(result) == line


def test_a_value_outside_tolerance_raises_naming_value_reference_and_tolerance(capsys):
    with pytest.raises(checks.ToleranceError) as err:
        checks.expect_close("val loss", 5.70, 5.62, atol=0.02)
    assert isinstance(err.value, AssertionError)
    message = str(err.value)
    assert "val loss" in message and "5.7" in message and "5.62" in message
    assert "atol 0.02" in message
    assert capsys.readouterr().out.startswith("❌ val loss: measured ⟨5.7⟩")


def test_relative_and_absolute_tolerances_add_up_elementwise():
    checks.expect_close("v", [100.5, 1.0], [100.0, 1.0], atol=0.01, rtol=0.005)
    with pytest.raises(checks.ToleranceError):
        checks.expect_close("v", [100.0, 1.02], [100.0, 1.0], atol=0.01, rtol=0.005)


def test_tensors_and_arrays_are_accepted():
    checks.expect_close("t", torch.tensor([1.0, 2.0]), np.array([1.0, 2.0]), atol=1e-6)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), [1.0, float("nan")]])
def test_a_non_finite_value_fails(bad):
    with pytest.raises(checks.ToleranceError, match="not finite"):
        checks.expect_close("x", bad, [1.0, 1.0] if isinstance(bad, list) else 1.0,
                            atol=1e9)


def test_a_changed_shape_fails():
    with pytest.raises(checks.ToleranceError, match="shape"):
        checks.expect_close("x", [1.0, 2.0, 3.0], [1.0, 2.0], atol=1.0)


def test_a_tolerance_is_required():
    with pytest.raises(ValueError, match="give atol= or rtol="):
        checks.expect_close("x", 1.0, 1.0)


@pytest.mark.parametrize("kwargs, named", [
    ({"atol": -1.0}, "atol"), ({"rtol": float("nan")}, "rtol"),
    ({"atol": 0.1, "gpu_atol": "0.1"}, "gpu_atol"), ({"atol": True}, "atol")])
def test_bad_tolerances_are_refused_by_name(kwargs, named):
    with pytest.raises(ValueError, match=f"{named} must be a finite number >= 0"):
        checks.expect_close("x", 1.0, 1.0, **kwargs)


@pytest.mark.parametrize("name, value, reference", [
    ("", 1.0, 1.0), ("x", "one", 1.0), ("x", 1.0, float("nan")), ("x", [], [])])
def test_bad_input_is_refused(name, value, reference):
    with pytest.raises(ValueError):
        checks.expect_close(name, value, reference, atol=1.0)


def test_gpu_tolerances_apply_only_on_an_accelerator(monkeypatch):
    monkeypatch.setattr(checks, "_accelerator", lambda: None)
    with pytest.raises(checks.ToleranceError):
        checks.expect_close("loss", 2.0, 1.9, atol=0.01, gpu_atol=0.2)
    monkeypatch.setattr(checks, "_accelerator", lambda: "cuda")
    result = checks.expect_close("loss", 2.0, 1.9, atol=0.01, gpu_atol=0.2)
    assert result and result.device == "cuda" and "(atol 0.2 on cuda)" in repr(result)
    # a value computed on the CPU whatever the device keeps the CPU tolerance
    with pytest.raises(checks.ToleranceError):
        checks.expect_close("cpu value", 2.0, 1.9, atol=0.01)


def test_nbval_compares_everything_but_the_measured_value():
    a = repr(checks.expect_close("acc", 0.7341, 0.734, atol=0.01))
    b = repr(checks.expect_close("acc", 0.7352, 0.734, atol=0.01))
    assert a != b and sanitized(a) == sanitized(b)
    assert sanitized(a) == "✅ acc: measured ⟨VALUE⟩, reference 0.734 (atol 0.01)"
    other = repr(checks.expect_close("acc", 0.7341, 0.734, atol=0.02))
    assert sanitized(other) != sanitized(a)  # a changed tolerance is still seen


def test_every_check_can_be_logged_for_measuring_spreads(tmp_path, monkeypatch):
    log = tmp_path / "checks.jsonl"
    monkeypatch.setenv(checks.LOG_ENV_VAR, str(log))
    checks.expect_close("a", 1.0, 1.0, atol=0.1)
    checks.expect_close("b", [1.0, 2.0], [1.0, 2.5], atol=1.0)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["name"] for r in records] == ["a", "b"]
    assert records[1]["deviation"] == 0.5 and records[1]["value"] == [1.0, 2.0]
    assert {"cpu_capability", "threads", "device"} <= set(records[0])


def test_displaying_the_result_adds_no_second_line():
    result = checks.expect_close("a", 1.0, 1.0, atol=0.1)
    assert result._ipython_display_() is None


def test_self_checks_tell_not_attempted_from_failed_and_keep_a_history():
    start = len(checks.history())
    stub = checks.check_value("x", ..., expected=1.0)
    wrong = checks.check_value("x", 2.0, expected=1.0)
    right = checks.check_value("x", 1.0, expected=1.0)
    partly = checks.check_value("xs", [1.0, ...], expected=[1.0, 2.0])
    assert [stub.status, wrong.status, right.status, partly.status] == [
        "not attempted", "failed", "passed", "not attempted"]
    assert repr(stub).startswith("⬜ x: not attempted yet")
    assert checks.history()[start:] == [stub, wrong, right, partly]
    assert checks.check_function("f", ..., reference=abs, cases=[(1,)]).status == (
        "not attempted")
