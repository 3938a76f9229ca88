"""Write student and instructor copies of the chapters (``make labs``), and lab checks.

    python tests/build_labs.py [--out _build/labs] [--check] [notebooks ...]

Instructor copies are the chapters unchanged (solutions and outputs included).
Student copies differ in three ways:

* every code cell tagged ``solution`` becomes a stub: each top-level function
  keeps its signature and docstring but its body raises ``NotImplementedError``
  with a hint, each top-level assignment becomes ``name = ...`` (which the
  self-checks report as "not attempted yet"), and anything else is dropped —
  so data and set-up that an exercise gives belong in a cell of their own,
  before the solution;
* the worked solution text between ``{solution-start}`` and ``{solution-end}``
  is removed (the exercise statement stays), and so is each solution cell's
  ``mistake`` (below);
* all outputs are cleared, so the learner's own run is what they see.

Self-check cells are kept, so a student runs the notebook top to bottom and
sees which exercises remain. Both copies get the chapters' ``results/``
folder beside them, so that they run where they are written.

**Mistakes.** Every solution cell carries, in its metadata under
``"mistake"``, the source of a plausible wrong answer (a forgotten factor,
the wrong axis...), which must make the self-check fail.

**Lab checks** (``--check``, run by ``make nbval-labs``) are what CI executes
of each chapter a second time: the student copy, top to bottom, with the
chapter's stored outputs to compare (so that nbval checks the chapter once
more, under another arithmetic), then one round of wrong answers and one of
solutions. After every self-check a generated cell asserts what it must have
reported: "not attempted" after a stub, a failure after a mistake, a pass
after the solution (whose outputs nbval compares with the chapter's).
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_TAG = "solution"
STUB_TAG = "exercise-stub"
MISTAKE_KEY = "mistake"
LAB_PART = "lab_part"  # metadata of a lab check's cells: student, mistake, solution, assert
START = re.compile(r"`{3,}\{solution-start\}\s*([\w-]+)")
END = re.compile(r"`{3,}\{solution-end\}[^\n]*\n?`{3,}")


def stub_source(source: str, exercise: str) -> str:
    """Replace a solution's code by stubs that keep its names and signatures."""
    tree = ast.parse(source)
    lines = source.splitlines()
    parts = [f"# Exercise {exercise}: replace the stubs below with your solution,",
             "# then run the self-check cell that follows."]
    blanked = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            header_end = node.body[0].lineno - 1
            doc = ast.get_docstring(node, clean=False)
            head = "\n".join(lines[node.lineno - 1 - len(node.decorator_list):header_end])
            indent = " " * (node.body[0].col_offset)
            body = f'{indent}"""{doc}"""\n' if doc else ""
            body += f'{indent}raise NotImplementedError("exercise {exercise}: write {node.name}")'
            parts.append(f"{head}\n{body}")
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for name in assigned_names(node):
                if name not in blanked:
                    blanked.add(name)
                    parts.append(f"{name} = ...  # your answer")
    return "\n".join(parts) + "\n"


def assigned_names(node: ast.stmt) -> list[str]:
    """Names a top-level assignment binds (``a, b = ...`` binds both)."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def stubbed_names(source: str) -> list[str]:
    """The names a solution's stub sets to ``...``."""
    tree = ast.parse(source)
    return [name for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
            for name in assigned_names(node)]


@dataclass
class Exercise:
    """An exercise of a chapter: its label, statement, solution cells and self-check."""

    label: str
    statement: str  # the markdown of the exercise directive
    solutions: list[int]  # indices of the solution code cells
    check: int  # index of the self-check cell that follows the solution


def exercises(nb: nbformat.NotebookNode) -> list[Exercise]:
    """The exercises of ``nb``, in order (each solution code cell tagged ``solution``)."""
    found, current = [], None
    statement = ""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            if "{exercise}" in cell.source:
                statement = cell.source
            start = START.search(cell.source)
            if start:
                current = Exercise(start.group(1), statement, [], -1)
            if END.search(cell.source) and current is not None:
                found.append(current)
        elif current is not None and current.check < 0:
            if SOLUTION_TAG in cell.metadata.get("tags", []):
                current.solutions.append(i)
            elif found and found[-1] is current:
                current.check, current = i, None
    return found


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a student version of ``nb`` (see the module docstring)."""
    nb = nbformat.from_dict(nb)
    nb.metadata.pop("widgets", None)
    cells, inside, exercise = [], False, "?"
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if SOLUTION_TAG in cell.metadata.get("tags", []):
                cell.source = stub_source(cell.source, exercise)
                cell.metadata.pop(MISTAKE_KEY, None)
                cell.metadata["tags"] = [t for t in cell.metadata["tags"] if t != SOLUTION_TAG]
                cell.metadata["tags"].append(STUB_TAG)
                cells.append(cell)
                continue
        if cell.cell_type == "markdown":
            start = START.search(cell.source)
            if start:
                exercise, inside = start.group(1), True
                kept = cell.source[: start.start()].rstrip()
                if kept:
                    cell.source = kept
                    cells.append(cell)
                continue
            if END.search(cell.source):
                inside = False
                kept = END.sub("", cell.source).strip()
                if kept:
                    cell.source = kept
                    cells.append(cell)
                continue
            if inside:
                continue
        cells.append(cell)
    nb.cells = cells
    return nb


# --- lab checks ----------------------------------------------------------------------

def _lab_cell(source: str, part: str, **metadata) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source, metadata={LAB_PART: part} | metadata)


def _copy(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``cell`` with an id of its own (a notebook's cell ids are unique)."""
    cell = nbformat.from_dict(cell)
    if "id" in cell:
        cell.id = uuid.uuid4().hex[:8]
    return cell


def _marked(check: nbformat.NotebookNode, part: str) -> nbformat.NotebookNode:
    """The self-check, run again with its outputs unchecked, noting where history stood."""
    cell = _copy(check)
    cell.source = ("_lab_seen = len(__import__('course_lib.core.checks').core.checks.history())\n"
                   + check.source)
    cell.outputs, cell.execution_count = [], None
    cell.metadata = {"tags": ["nbval-ignore-output"], LAB_PART: part}
    return cell


def _expect(status: str, label: str, stage: str) -> nbformat.NotebookNode:
    """A cell asserting what the self-checks of the cell above reported."""
    rule = {"not attempted": "all(s == 'not attempted' for s in _lab_got)",
            "failed": "'failed' in _lab_got",
            "passed": "all(s == 'passed' for s in _lab_got)"}[status]
    return _lab_cell(
        f"# lab check, {label}, {stage}: the self-check must say {status!r}\n"
        "_lab_got = [r.status for r in\n"
        "            __import__('course_lib.core.checks').core.checks.history()[_lab_seen:]]\n"
        f"assert _lab_got and {rule}, (\n"
        f"    {label!r}, {stage!r}, _lab_got)", "assert")


def lab_check_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student copy of ``nb`` plus a round of mistakes and one of solutions.

    Cells the student copy shares with the chapter keep the chapter's outputs,
    so nbval compares them; each self-check after a stub is followed by a cell
    asserting it said "not attempted". Then, for each exercise, its mistakes
    run and its self-check must fail; then its solution runs (outputs compared
    with the chapter's) and the self-check must pass.
    """
    student = student_copy(nb)
    chapter_code = [c for c in nb.cells if c.cell_type == "code"]
    student_code = [c for c in student.cells if c.cell_type == "code"]
    assert len(chapter_code) == len(student_code), "student copies keep every code cell"
    stored = {id(s): c for s, c in zip(student_code, chapter_code)}
    found = exercises(nb)
    checks_after_stub = {id(student_code[chapter_code.index(nb.cells[e.check])]): e
                         for e in found}
    cells = []
    for cell in student.cells:
        if cell.cell_type == "code" and STUB_TAG not in cell.metadata.get("tags", []):
            chapter = stored[id(cell)]
            if id(cell) in checks_after_stub:
                label = checks_after_stub[id(cell)].label
                cells += [_marked(cell, "student"), _expect("not attempted", label, "stub")]
                continue
            cell.outputs, cell.execution_count = chapter.outputs, chapter.execution_count
        cell.metadata[LAB_PART] = "student"
        cells.append(cell)
    for e in found:
        wrong = [nb.cells[i].metadata.get(MISTAKE_KEY) for i in e.solutions]
        if None in wrong:
            cells.append(_lab_cell(f"raise AssertionError(\"exercise {e.label}: a solution "
                                   f"cell has no '{MISTAKE_KEY}' in its metadata\")",
                                   "assert"))
            continue
        cells += [_lab_cell(src, "mistake") for src in wrong]
        cells += [_marked(nb.cells[e.check], "mistake"), _expect("failed", e.label, "mistake")]
    for e in found:
        for i in e.solutions:
            cell = _copy(nb.cells[i])
            cell.metadata = {LAB_PART: "solution", "tags": [
                t for t in nb.cells[i].metadata.get("tags", []) if t != SOLUTION_TAG]}
            cells.append(cell)
        again = _copy(nb.cells[e.check])
        again.source = ("_lab_seen = len(__import__('course_lib.core.checks').core.checks.history())\n"
                        + again.source)
        again.metadata[LAB_PART] = "solution"
        cells += [again, _expect("passed", e.label, "solution")]
    student.cells = [nbformat.v4.new_markdown_cell(
        "Lab check, generated by `tests/build_labs.py`: the student copy of this chapter, "
        "then each exercise's mistake and solution with their self-checks.")] + cells
    return student


def copy_results(folder: Path) -> None:
    """Put the chapters' ``results/`` beside copies written to ``folder`` — a fresh copy,
    so that no file of an earlier build is left in a stored artifact's folder (the store
    refuses a folder holding a file its manifest does not list)."""
    shutil.rmtree(folder / "results", ignore_errors=True)
    shutil.copytree(ROOT / "notebooks" / "results", folder / "results",
                    ignore=shutil.ignore_patterns("*.partial"))


def build(paths: list[Path], out: Path, *, check: bool = False) -> None:
    kinds = ("student", "instructor") + (("check",) if check else ())
    for kind in kinds:
        (out / kind).mkdir(parents=True, exist_ok=True)
        copy_results(out / kind)
    for path in paths:
        shutil.copyfile(path, out / "instructor" / path.name)
        nb = nbformat.read(path, as_version=4)
        nbformat.write(student_copy(nb), out / "student" / path.name)
        if check:
            nbformat.write(lab_check_copy(nb), out / "check" / path.name)
        print(f"{path.name}: {', '.join(kinds)} copies written")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "labs")
    parser.add_argument("--check", action="store_true",
                        help="also write lab checks to OUT/check (for make nbval-labs)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    build(paths, args.out, check=args.check)
    print(f"copies in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
