"""device, seeding, plotting, glue and checks: the small pieces every chapter uses."""

import random

import matplotlib
import numpy as np
import pytest
import torch

from course_lib.core import checks, device, glue, losses, plotting, seeding

# --- device --------------------------------------------------------------------

def test_auto_picks_cpu_when_nothing_else_exists(monkeypatch):
    monkeypatch.setattr(device, "_available", lambda kind: kind == "cpu")
    monkeypatch.delenv(device.ENV_VAR, raising=False)
    assert device.get_device() == torch.device("cpu")


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv(device.ENV_VAR, raising=False)
    monkeypatch.setattr(device, "_available", lambda kind: kind in ("cuda", "mps", "cpu"))
    assert device.get_device().type == "cuda"
    monkeypatch.setattr(device, "_available", lambda kind: kind in ("mps", "cpu"))
    assert device.get_device().type == "mps"


def test_environment_variable_and_argument_override(monkeypatch):
    monkeypatch.setenv(device.ENV_VAR, "cpu")
    monkeypatch.setattr(device, "_available", lambda kind: True)
    assert device.get_device().type == "cpu"
    assert device.get_device("mps").type == "mps"  # the argument wins over the variable
    monkeypatch.setenv(device.ENV_VAR, "auto")
    assert device.get_device().type == "cuda"


def test_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv(device.ENV_VAR, "gpu")
    with pytest.raises(ValueError, match=r"\$COURSE_DEVICE is 'gpu'"):
        device.get_device()


def test_describe_device_cpu():
    assert device.describe_device(torch.device("cpu")).startswith("cpu: ")


# --- seeding -------------------------------------------------------------------

def draws():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_set_seed_makes_every_library_repeat():
    seeding.set_seed(123)
    first = draws()
    seeding.set_seed(123)
    assert draws() == first
    seeding.set_seed(124)
    assert draws() != first


def test_make_generator_is_independent_of_global_state():
    a = torch.rand(4, generator=seeding.make_generator(7))
    torch.rand(100)
    b = torch.rand(4, generator=seeding.make_generator(7))
    assert torch.equal(a, b)


# --- plotting ------------------------------------------------------------------

def test_course_style_context_restores_rcparams():
    before = matplotlib.rcParams["axes.spines.top"]
    with plotting.course_style():
        assert matplotlib.rcParams["axes.spines.top"] is False
    assert matplotlib.rcParams["axes.spines.top"] == before


def test_palette_is_okabe_ito():
    assert len(plotting.PALETTE) == 8 and plotting.PALETTE["blue"] == "#0072B2"


# --- glue ------------------------------------------------------------------------

def captured_glue(monkeypatch, module, *args, **kwargs):
    seen = []
    monkeypatch.setattr(module, "display", lambda *a, **k: seen.append((a, k)), raising=False)
    module.glue(*args, **kwargs)
    return seen


def test_glue_writes_what_myst_nb_glue_writes(monkeypatch):
    import myst_nb.ext.glue as reference

    ours = captured_glue(monkeypatch, glue, "loss", 1.2345)
    monkeypatch.setattr(reference, "ipy_display", lambda *a, **k: ours_ref.append((a, k)))
    ours_ref: list = []
    reference.glue("loss", 1.2345, display=False)
    assert ours == ours_ref


def test_glue_with_format_stores_the_formatted_text(monkeypatch):
    (args, kwargs), = captured_glue(monkeypatch, glue, "ppl", 12.34567, fmt=".2f")
    assert args[0] == {glue.GLUE_PREFIX + "text/plain": "'12.35'"}
    assert kwargs["metadata"]["scrapbook"]["name"] == "ppl"


# --- checks ----------------------------------------------------------------------

def test_check_value_pass_fail_and_placeholder():
    assert checks.check_value("x", 1.0, expected=1.0)
    fail = checks.check_value("x", 2.0, expected=1.0, hint="divide by ln 2")
    assert not fail and "got 2, expected 1" in repr(fail) and "Hint: divide by ln 2" in repr(fail)
    assert "not attempted yet" in repr(checks.check_value("x", ..., expected=1.0))
    assert "expected shape" in repr(checks.check_value("v", [1.0, 2.0], expected=[1.0]))


def test_check_function_reports_stub_wrong_value_and_success():
    def stub(p):
        raise NotImplementedError

    cases = [([0.5, 0.5],), ([0.9, 0.1],)]
    assert "not attempted yet" in repr(checks.check_function("H", stub, reference=losses.entropy, cases=cases))
    wrong = checks.check_function("H", lambda p: losses.entropy(p, base=2), reference=losses.entropy,
                                  cases=cases, hint="natural log")
    assert not wrong and "case 1" in repr(wrong)
    right = checks.check_function("H", losses.entropy, reference=losses.entropy, cases=cases)
    assert right and repr(right) == "✅ H: all 2 cases match"


def test_check_function_rejects_non_callables_politely():
    assert "expected a function" in repr(checks.check_function("f", 3, reference=abs, cases=[(1,)]))


def test_as_tensor_keeps_python_floats_in_float64():
    from course_lib.core.validate import as_tensor

    t = as_tensor("x", [0.1, 1.1])
    assert t.dtype == torch.float64 and t[0].item() == 0.1 and t[1].item() == 1.1
    assert as_tensor("x", 0.1).item() == 0.1
