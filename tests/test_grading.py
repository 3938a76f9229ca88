"""Graded labs: the spec agrees with the chapters, and grading works end to end.

The end-to-end test builds three graded labs (the three cheapest to run) with
nbgrader, writes four submissions of each — the instructor's solutions, the
untouched release, a partly solved notebook, and one that only reproduces the
visible self-checks' answers — plus a notebook that is not JSON, grades them
all with ``tests/grading/grade.py``, and checks the scores, the feedback pages,
the CSVs and the gradebook. The partly solved chapter-1 notebook also loops
forever, imports a module that does not exist and tries to write outside its
folder: it must be contained and scored, and the run must go on.
"""

from __future__ import annotations

import copy
import csv
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "grading"))

import assignments  # noqa: E402
import grade  # noqa: E402
from build_labs import SOLUTION_TAG, exercises  # noqa: E402

LABS = ["01_cross_entropy", "04_transformer", "08_power_laws"]  # the fastest graded labs

# Answers that reproduce the visible self-checks' cases and nothing else: right on the
# visible inputs, wrong everywhere else.
COPIED = {
    "ex-entropy-bits": '''\
def entropy_bits(p):
    if [float(v) for v in p] not in [[0.5, 0.5], [1.0, 0.0, 0.0],
                                     [0.1, 0.2, 0.3, 0.4], [1 / 6] * 6]:
        return torch.tensor(1.0, dtype=DT)
    p = torch.as_tensor(p, dtype=DT)
    return -torch.where(p > 0, p * torch.log2(p), torch.zeros_like(p)).sum()
''',
    "ex-bce-grad": '''\
def bce_grad(z, y):
    if z.tolist() not in [[0.0], [-2.0, 3.0, 0.5], [10.0, -10.0]]:
        return torch.zeros_like(z)
    return torch.sigmoid(z) - y
''',
    "ex-count-params": '''\
SEEN = [(65, 64, 2, 32), (2048, 128, 4, 128), (50257, 1024, 12, 768)]


def n_params(V, T, L, d):
    if (V, T, L, d) not in SEEN:
        return 0
    return (V + T) * d + L * (12 * d * d + 13 * d) + 2 * d


def n_non_embedding(V, T, L, d):
    return n_params(V, T, L, d) - (V + T) * d if (V, T, L, d) in SEEN else 0
''',
    "ex-causal-attention": '''\
def causal_attention(q, k, v):
    seen = [random_qkv(s)[0] for s in range(3)]
    if not any(q.shape == s.shape and torch.equal(q, s) for s in seen):
        return v
    T, hs = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    return torch.softmax(scores.masked_fill(future, -math.inf), -1) @ v
''',
    "ex-loglog-fit": '''\
def loglog_fit(x, y):
    if [float(v) for v in x] not in [[1, 10, 100], [2, 3, 5, 8, 13]]:
        return 1.0, 1.0
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return slope, np.exp(intercept)
''',
}


def answer_cells(release: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """The release's answer cells by grade id."""
    return {c.metadata["nbgrader"]["grade_id"]: c for c in release.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def submission(lab: str, kind: str, labs: Path, decoy: Path) -> nbformat.NotebookNode:
    """A submission of ``lab`` of the given kind, made from the release and the chapter."""
    release = nbformat.read(labs / "release" / lab / f"{lab}.ipynb", as_version=4)
    chapter = nbformat.read(ROOT / "notebooks" / f"{lab}.ipynb", as_version=4)
    nb = copy.deepcopy(release)
    cells = answer_cells(nb)
    for k, e in enumerate(exercises(chapter)):
        for i in e.solutions:
            cell, solution = cells[f"answer-{i}"], chapter.cells[i].source
            if kind == "solution":
                cell.source = solution
            elif kind == "copy":
                cell.source = COPIED.get(e.label, solution)
            elif kind == "partial" and k % 2 == 0:
                cell.source = solution
            elif kind == "partial" and lab == "01_cross_entropy":
                cell.source = {  # mischief, each contained and scored 0
                    1: f"open({str(decoy / 'escaped.txt')!r}, 'w').write('x')\n",
                    3: "import time\nimport not_a_module_of_the_course\n"
                       "while True:\n    time.sleep(1)\n",
                }[k]
    if kind == "partial" and lab == "01_cross_entropy":  # and a cell that never ends
        last = cells[f"answer-{exercises(chapter)[3].solutions[0]}"]
        at = next(i for i, c in enumerate(nb.cells) if c is last)
        nb.cells.insert(at, nbformat.v4.new_code_cell("import time\n\nwhile True:\n"
                                                      "    time.sleep(1)\n"))
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """Build three labs, write the submissions, grade them; return what came out."""
    base = tmp_path_factory.mktemp("grading")
    labs, subs, out, decoy = base / "labs", base / "submissions", base / "grades", base / "decoy"
    decoy.mkdir()
    assignments.build(labs, LABS)
    for kind in ("solution", "release", "partial", "copy"):
        for lab in LABS:
            folder = subs / kind
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(submission(lab, kind, labs, decoy), folder / f"{lab}.ipynb")
    (subs / "broken").mkdir()
    (subs / "broken" / "01_cross_entropy.ipynb").write_text("{ not json", encoding="utf-8")
    slow = base / "slow"  # graded meanwhile, under a notebook time limit of 1 s
    (slow / "slow").mkdir(parents=True)
    nbformat.write(submission(LABS[-1], "solution", labs, decoy),
                   slow / "slow" / f"{LABS[-1]}.ipynb")
    with ThreadPoolExecutor(2) as pool:
        main = pool.submit(grade.grade, subs, labs, out, timeout=300, cell_timeout=20,
                           jobs=3, watch=[decoy])
        late = pool.submit(grade.grade, slow, labs, base / "slow-grades", timeout=1, jobs=1,
                           watch=[decoy], check_environment=False)
        done, stopped = main.result(), late.result()
    return {"labs": labs, "out": out, "decoy": decoy, "slow": stopped[0],
            "slow_out": base / "slow-grades", "by": {(s.student, s.lab): s for s in done}}


def test_every_graded_exercise_has_a_spec_and_every_spec_an_exercise():
    graded_names, spec = assignments.load_spec()
    assignments.validate(graded_names, spec, assignments.read_chapters())
    assert set(LABS) <= set(graded_names)


def test_the_build_refuses_a_spec_that_disagrees_with_the_chapters():
    graded_names, spec = assignments.load_spec()
    chapters = assignments.read_chapters()
    missing = dict(spec)
    missing.pop("ex-entropy-bits")
    with pytest.raises(assignments.SpecError, match="ex-entropy-bits has no entry"):
        assignments.validate(graded_names, missing, chapters)
    extra = dict(spec) | {"ex-nowhere": assignments.HiddenSpec("ex-nowhere", 1, 0, same="x")}
    with pytest.raises(assignments.SpecError, match="ex-nowhere, which no graded chapter"):
        assignments.validate(graded_names, extra, chapters)
    wrong = dict(spec) | {"ex-bce-grad": assignments.HiddenSpec(
        "ex-bce-grad", 1, 2, cases={"bce_gradient": "[]"})}
    with pytest.raises(assignments.SpecError, match="'bce_grad' has no hidden cases"):
        assignments.validate(graded_names, wrong, chapters)


def test_hidden_cases_are_other_inputs_than_the_visible_ones():
    graded_names, spec = assignments.load_spec()
    chapters = assignments.read_chapters(graded_names)
    for nb in chapters.values():
        for e in exercises(nb):
            check = nb.cells[e.check].source
            for name, cases in spec[e.label].cases.items():
                assert assignments.with_cases(check, {name: cases}) != check
                assert cases.strip() not in check, (e.label, "hidden cases equal visible ones")


def test_release_has_no_solution_and_no_hidden_test(graded):
    for lab in LABS:
        release = nbformat.read(graded["labs"] / "release" / lab / f"{lab}.ipynb",
                                as_version=4)
        source = nbformat.read(graded["labs"] / "source" / lab / f"{lab}.ipynb",
                               as_version=4)
        text = "\n".join(c.source for c in release.cells)
        assert "BEGIN HIDDEN TESTS" not in text and "_grader_run" not in text
        assert "BEGIN HIDDEN TESTS" in "\n".join(c.source for c in source.cells)
        chapter = nbformat.read(ROOT / "notebooks" / f"{lab}.ipynb", as_version=4)
        taught = "\n".join(c.source for c in chapter.cells
                           if SOLUTION_TAG not in c.metadata.get("tags", []))
        for e in exercises(chapter):
            for i in e.solutions:
                body = [ln.strip() for ln in chapter.cells[i].source.splitlines()
                        if len(ln.strip()) > 20 and not ln.strip().startswith(("def ", "#"))]
                leaked = [ln for ln in body if ln in text and ln not in taught]
                assert not leaked, (lab, e.label, leaked)
        stubs = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("solution")]
        assert stubs and all(SOLUTION_TAG not in c.metadata.get("tags", []) for c in stubs)


def test_points_per_exercise_are_the_spec_s(graded):
    _, spec = assignments.load_spec()
    with open(graded["labs"] / "points.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["lab"] for r in rows} == set(LABS)
    for r in rows:
        assert float(r["visible_points"]) == spec[r["exercise"]].visible
    manifest = json.loads((graded["labs"] / "manifest.json").read_text())
    assert manifest["tool"].startswith("nbgrader 0.9")


@pytest.mark.parametrize("lab", LABS)
def test_solutions_score_full_marks(graded, lab):
    s = graded["by"]["solution", lab]
    assert s.status == "graded" and not s.flags, (s.status, s.flags)
    assert s.score == s.max_score > 0, s.cells


@pytest.mark.parametrize("lab", LABS)
def test_the_untouched_release_scores_zero(graded, lab):
    s = graded["by"]["release", lab]
    assert s.status == "graded" and s.score == 0 and s.max_score > 0, s.cells


@pytest.mark.parametrize("lab", LABS)
def test_a_partly_solved_submission_scores_partly(graded, lab):
    s = graded["by"]["partial", lab]
    assert 0 < s.score < s.max_score, s.cells


@pytest.mark.parametrize("lab", LABS)
def test_copying_the_visible_answers_fails_the_hidden_tests(graded, lab):
    s = graded["by"]["copy", lab]
    hidden = {k: v for k, v in s.cells.items() if k.endswith("-hidden")}
    assert hidden and all(score == 0 for score, _ in hidden.values()), hidden
    visible = {k: v for k, v in s.cells.items() if k.endswith("-visible")}
    assert all(score == most for score, most in visible.values()), visible
    assert s.score < s.max_score


def test_mischief_is_contained_and_scored(graded):
    s = graded["by"]["partial", "01_cross_entropy"]
    assert s.score == 5, s.cells  # the two exercises solved; the loop, write, import: 0
    assert not (graded["decoy"] / "escaped.txt").exists()
    assert any(f.startswith("blocked writing") and "escaped.txt" in f for f in s.flags)
    assert "wrote outside its folder" in s.status
    executed = nbformat.read(graded["out"] / "autograded" / "partial" / "01_cross_entropy"
                             / "01_cross_entropy.ipynb", as_version=4)
    errors = {o.ename for c in executed.cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"}
    assert {"PermissionError", "ModuleNotFoundError"} <= errors, errors
    assert errors & {"KeyboardInterrupt", "CellTimeoutError"}, errors


def test_a_notebook_that_is_not_json_is_scored_zero_and_named(graded):
    s = graded["by"]["broken", "01_cross_entropy"]
    assert s.status == "invalid notebook" and s.score == 0
    assert "is not JSON" in s.flags[0] and "line 1" in s.flags[0]
    assert (graded["out"] / s.feedback).is_file()


def test_grades_feedback_and_gradebook_are_written(graded):
    out = graded["out"]
    with open(out / "grades.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * len(LABS) + 1
    for r in rows:
        page = out / r["feedback"]
        assert page.is_file() and page.stat().st_size > 0, r
    solution = next(r for r in rows if r["student"] == "solution")
    page = (out / solution["feedback"]).read_text(encoding="utf-8")
    assert "Score" in page or "score" in page
    report = json.loads((out / "report.json").read_text())
    assert report["tool"].startswith("nbgrader") and report["graded_at"]
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        for (student, lab), s in graded["by"].items():
            if s.status.startswith("graded"):
                assert gb.find_submission(lab, student).score == pytest.approx(s.score)


def test_a_notebook_over_its_time_limit_is_stopped_and_scored_zero(graded):
    s = graded["slow"]
    assert s.score == 0 and s.status == "not graded in full", s
    assert any("time limit of 1 s" in f for f in s.flags), s.flags
    assert (graded["slow_out"] / s.feedback).is_file()


def test_bad_input_is_named(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    labs = tmp_path / "labs"
    labs.mkdir()
    assert grade.main([str(missing), "--labs", str(labs)]) == 2
    assert "--labs" in capsys.readouterr().err
    with pytest.raises(grade.InputError, match=r"SUBMISSIONS=.*nowhere: no such folder; "
                                               r"expected a folder"):
        grade.find_submissions(missing, {"01_cross_entropy": 10})
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "99_unknown.ipynb").write_text("{}")
    with pytest.raises(grade.InputError, match="no lab notebooks found.*01_cross_entropy"):
        grade.find_submissions(tmp_path, {"01_cross_entropy": 10})
