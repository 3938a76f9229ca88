"""Student copies hide every solution; lab checks test each self-check both ways.

The lab checks themselves (every student copy executed top to bottom, each
exercise's mistake and solution) run under nbval in ``make nbval-labs``; the
tests here check how they are built, and run the machinery on a tiny chapter.
"""

from __future__ import annotations

import ast
import filecmp
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from build_labs import (LAB_PART, MISTAKE_KEY, SOLUTION_TAG, STUB_TAG, build, exercises,
                        lab_check_copy, student_copy, stubbed_names)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def labs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("labs")
    build(NOTEBOOKS, out)
    return out


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def chapter(request) -> nbformat.NotebookNode:
    return nbformat.read(request.param, as_version=4)


def solution_lines(nb) -> set[str]:
    lines = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and SOLUTION_TAG in cell.metadata.get("tags", []):
            lines |= {ln.strip() for ln in cell.source.splitlines()
                      if len(ln.strip()) > 12 and not ln.strip().startswith(("def ", '"""', "#"))}
    return lines


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_solution_survives_in_the_student_copy(labs, path):
    original = nbformat.read(path, as_version=4)
    student = nbformat.read(labs / "student" / path.name, as_version=4)
    text = "\n".join(c.source for c in student.cells)
    taught = "\n".join(c.source for c in original.cells
                       if SOLUTION_TAG not in c.metadata.get("tags", []))
    # a line the chapter also shows outside any solution (shared boilerplate) is no leak
    leaked = [ln for ln in solution_lines(original) if ln in text and ln not in taught]
    assert not leaked, f"solution lines left in the student copy: {leaked[:3]}"
    assert not re.search(r"solution-(start|end)|:tags:.*solution", text)
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    assert not any(MISTAKE_KEY in c.metadata for c in student.cells), "mistakes removed"
    stubs = [c for c in student.cells if STUB_TAG in c.metadata.get("tags", [])]
    assert len(stubs) == sum(SOLUTION_TAG in c.metadata.get("tags", []) for c in original.cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_instructor_copy_is_the_chapter(labs, path):
    assert filecmp.cmp(path, labs / "instructor" / path.name, shallow=False)


def test_copies_run_where_they_are_written(labs):
    """The chapters load cached results from ``results/``: each copy has them beside it."""
    for kind in ("student", "instructor"):
        assert (labs / kind / "results" / "shakespeare_gpt" / "manifest.json").is_file()


def test_every_solution_has_a_mistake_that_is_code(chapter):
    """Each solution cell carries a plausible wrong answer, which the lab check runs."""
    for e in exercises(chapter):
        for i in e.solutions:
            wrong = chapter.cells[i].metadata.get(MISTAKE_KEY)
            assert wrong, (f"exercise {e.label}: solution cell {i} has no "
                           f"metadata[{MISTAKE_KEY!r}] (a plausible wrong answer)")
            ast.parse(wrong)
            assert wrong.strip() != chapter.cells[i].source.strip()
            assert all(len(line) <= 76 for line in wrong.splitlines())


def imported_names(nb) -> set[str]:
    names = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def test_stubs_blank_out_only_answers(chapter):
    """Data an exercise gives sits in a cell of its own, not in the solution: a stub sets
    every name its solution assigns to ``...``, so given data would be lost. Given data is
    a name the statement refers to, assigned from constants alone (literals, modules,
    CONSTANTS), that the self-check does not read."""
    modules = imported_names(chapter)
    for e in exercises(chapter):
        read = {n.id for n in ast.walk(ast.parse(chapter.cells[e.check].source))
                if isinstance(n, ast.Name)}
        for i in e.solutions:
            for node in ast.parse(chapter.cells[i].source).body:
                if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
                    continue
                used = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
                constant = all(n in modules or n.isupper() for n in used)
                for name in stubbed_names(ast.unparse(node)):
                    named = re.search(rf"`{name}`", e.statement)
                    assert not (named and constant and name not in read), (
                        f"exercise {e.label}: the statement names `{name}`, the solution "
                        "builds it from constants, the self-check does not read it: it is "
                        "data the exercise gives; move it to a cell before the solution")


def test_every_exercise_is_found_with_its_self_check(chapter):
    found = exercises(chapter)
    assert found, "a chapter has exercises"
    for e in found:
        assert e.solutions and e.check > max(e.solutions)
        assert "checks." in chapter.cells[e.check].source


def test_the_lab_check_begins_with_the_student_copy(chapter):
    """The student copy runs top to bottom, as is; the rounds of mistakes and solutions
    come after it. Cells it shares with the chapter keep the chapter's outputs."""
    student = [c for c in student_copy(chapter).cells if c.cell_type == "code"]
    lab = [c for c in lab_check_copy(chapter).cells if c.cell_type == "code"]
    parts = [c.metadata[LAB_PART] for c in lab if c.metadata[LAB_PART] != "assert"]
    first = [c for c in lab if c.metadata[LAB_PART] != "assert"][:len(student)]
    assert "student" not in parts[len(student):], "the rounds come after the student copy"
    marked = "_lab_seen = len(__import__('course_lib.core.checks').core.checks.history())\n"
    assert [c.source.removeprefix(marked) for c in first] == [c.source for c in student]
    assert all(c.metadata[LAB_PART] == "student" for c in first)
    chapter_code = [c for c in chapter.cells if c.cell_type == "code"]
    for lab_cell, original, stub in zip(first, chapter_code, student):
        stubbed = STUB_TAG in stub.metadata.get("tags", [])
        if not stubbed and not lab_cell.source.startswith(marked):
            assert lab_cell.outputs == original.outputs


# --- the machinery, on a chapter of three cells --------------------------------------

def tiny_chapter(solution: str, mistake: str, check: str) -> nbformat.NotebookNode:
    cells = [
        nbformat.v4.new_code_cell("from course_lib.core import checks"),
        nbformat.v4.new_markdown_cell("```{exercise} X\n:label: ex-x\n\nStore 2 in `x`.\n```\n"
                                      "````{solution-start} ex-x\n:class: dropdown\n````"),
        nbformat.v4.new_code_cell(solution, metadata={"tags": [SOLUTION_TAG],
                                                      MISTAKE_KEY: mistake}),
        nbformat.v4.new_markdown_cell("````{solution-end}\n````"),
        nbformat.v4.new_code_cell(check),
    ]
    return nbformat.v4.new_notebook(cells=cells)


def run_lab_check(nb) -> None:
    lab = lab_check_copy(nb)
    NotebookClient(lab, timeout=120, kernel_name="python3").execute()


def test_a_lab_check_passes_a_self_check_that_tells_right_from_wrong():
    run_lab_check(tiny_chapter("x = 2", "x = 3", 'checks.check_value("x", x, expected=2)'))


@pytest.mark.parametrize("mistake, check, why", [
    ("x = 2.0", 'checks.check_value("x", x, expected=2)', "failed"),  # accepts the mistake
    ("x = 3", 'checks.check_value("x", float(x), expected=2)', "TypeError"),  # stub breaks it
])
def test_a_lab_check_fails_a_self_check_that_cannot_fail_or_breaks(mistake, check, why):
    with pytest.raises(CellExecutionError, match=why):
        run_lab_check(tiny_chapter("x = 2", mistake, check))


def test_stub_keeps_signature_docstring_and_names():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("```{exercise} X\n:label: ex-x\n```\n"
                                      "````{solution-start} ex-x\n:class: dropdown\n````\nWhy."),
        nbformat.v4.new_code_cell('def f(a, b=2):\n    """Doc."""\n    return a + b\n'
                                  'answer: float = f(1)\nprint(answer)',
                                  metadata={"tags": [SOLUTION_TAG]}),
        nbformat.v4.new_markdown_cell("````{solution-end}\n````"),
    ])
    student = student_copy(nb)
    assert [c.cell_type for c in student.cells] == ["markdown", "code"]
    assert "Why." not in student.cells[0].source
    code = student.cells[1].source
    assert 'def f(a, b=2):\n    """Doc."""\n    raise NotImplementedError' in code
    assert "answer = ...  # your answer" in code and "print" not in code
    compile(code, "stub", "exec")
