"""Write student and instructor copies of the chapters (``make labs``).

    python tests/build_labs.py [--out _build/labs] [notebooks ...]

Instructor copies are the chapters unchanged (solutions and outputs included).
Student copies differ in three ways:

* every code cell tagged ``solution`` becomes a stub: each top-level function
  keeps its signature and docstring but its body raises ``NotImplementedError``
  with a hint, each top-level assignment becomes ``name = ...`` (which the
  self-checks report as "not done yet"), and anything else is dropped;
* the worked solution text between ``{solution-start}`` and ``{solution-end}``
  is removed (the exercise statement stays);
* all outputs are cleared, so the learner's own run is what they see.

Self-check cells are kept, so a student runs the notebook top to bottom and
sees which exercises remain.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_TAG = "solution"
START = re.compile(r"`{3,}\{solution-start\}\s*([\w-]+)")
END = re.compile(r"`{3,}\{solution-end\}[^\n]*\n?`{3,}")


def stub_source(source: str, exercise: str) -> str:
    """Replace a solution's code by stubs that keep its names and signatures."""
    tree = ast.parse(source)
    lines = source.splitlines()
    parts = [f"# Exercise {exercise}: replace the stubs below with your solution,",
             "# then run the self-check cell that follows."]
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
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        parts.append(f"{name.id} = ...  # your answer")
    return "\n".join(parts) + "\n"


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
                cell.metadata["tags"] = [t for t in cell.metadata["tags"] if t != SOLUTION_TAG]
                cell.metadata["tags"].append("exercise-stub")
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


def build(paths: list[Path], out: Path) -> None:
    for kind in ("student", "instructor"):
        (out / kind).mkdir(parents=True, exist_ok=True)
    for path in paths:
        shutil.copyfile(path, out / "instructor" / path.name)
        nb = nbformat.read(path, as_version=4)
        nbformat.write(student_copy(nb), out / "student" / path.name)
        print(f"{path.name}: student and instructor copies written")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "labs")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    build(paths, args.out)
    print(f"copies in {args.out}/student and {args.out}/instructor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
