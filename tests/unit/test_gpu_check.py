"""The GPU check's plumbing, on a CPU: its report and its step list (tests/gpu_check.py)."""

import json

import gpu_check


def test_a_dry_run_writes_both_reports(tmp_path):
    status = gpu_check.main(["--dry-run", "--steps", "environment", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "report.json").read_text())
    assert status == 0 and report["dry_run"] and list(report["steps"]) == ["environment"]
    env = report["steps"]["environment"]
    assert env["status"] == "passed" and "versions" in env["provenance"]
    assert "| environment | passed |" in (tmp_path / "report.md").read_text()


def test_the_report_shows_mfu_and_names_what_did_not_pass():
    numbers = {"precision": "bf16", "batch_size": 16, "config": {"context_length": 1024},
               "peak_flops": 989e12, "peak_source": "datasheet",
               "ours_step_s": 0.05, "ours_tokens_per_s": 327680.0, "ours_mfu": 0.42,
               "hf_step_s": 0.06, "hf_tokens_per_s": 273066.0, "hf_mfu": 0.35}
    text = gpu_check.markdown({
        "dry_run": False, "command": "gpu_check.py", "finished": "now", "seconds": 400,
        "steps": {"environment": {"status": "passed", "device_name": "NVIDIA H200"},
                  "notebooks": {"status": "failed", "seconds": 200},
                  "bench": {"status": "passed", "seconds": 60, "numbers": numbers}}})
    assert text.startswith("# GPU check — NVIDIA H200")
    assert "989 TFLOP/s (datasheet)" in text and "| course_lib GPT | 50.0 | 327,680 | 42.0% |" in text
    assert "Not passed: notebooks" in text


def test_a_step_left_without_budget_is_skipped_not_run(tmp_path):
    status = gpu_check.main(["--dry-run", "--budget", "0", "--steps", "unit",
                             "--out", str(tmp_path)])
    report = json.loads((tmp_path / "report.json").read_text())
    assert status == 1 and report["steps"]["unit"]["status"] == "skipped"
    names = [s.name for s in gpu_check.STEPS]
    assert len(names) == len(set(names)) and names[0] == "environment"


def test_the_scaling_step_records_its_runs(tmp_path):
    status = gpu_check.main(["--dry-run", "--steps", "scaling", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "report.json").read_text())
    assert status == 0 and report["steps"]["scaling"]["numbers"]["runs"] == 2
    assert "Scaling grid: 2 runs" in (tmp_path / "report.md").read_text()
