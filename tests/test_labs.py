"""Student copies hide every solution and still run; instructor copies are the chapters."""

from __future__ import annotations

import filecmp
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from build_labs import SOLUTION_TAG, build, student_copy

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def labs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("labs")
    build(NOTEBOOKS, out)
    return out


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
    stubs = [c for c in student.cells if "exercise-stub" in c.metadata.get("tags", [])]
    assert len(stubs) == sum(SOLUTION_TAG in c.metadata.get("tags", []) for c in original.cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_instructor_copy_is_the_chapter(labs, path):
    assert filecmp.cmp(path, labs / "instructor" / path.name, shallow=False)


def test_student_copy_runs_and_every_check_says_not_done(labs):
    """Chapter 1 as a student receives it: runs to the end; each self-check fails politely."""
    nb = nbformat.read(labs / "student" / "01_cross_entropy.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    text = []
    for cell in nb.cells:
        if cell.cell_type == "code" and "checks." in cell.source:
            for out in cell.outputs:
                text.append(out.get("text", "") or out.get("data", {}).get("text/plain", ""))
    checks = "\n".join(text)
    assert checks.count("❌") >= 4 and "✅" not in checks
    assert "not done yet" in checks


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
