"""Build the graded labs: nbgrader source and release assignments, hidden tests, gradebook.

    python tests/grading/assignments.py [--out _build/labs/graded] [--whole-chapter]
                                        [chapters ...]

One source of truth: each graded lab is generated from its chapter as it stands
(solution cells tagged ``solution``, self-checks after them, see
``tests/build_labs.py``) and from ``tests/grading/hidden_tests.toml``, which
only names *other inputs* for each exercise's self-check contract. For each
graded chapter the build writes an nbgrader course folder:

* ``source/<lab>/<lab>.ipynb`` — the instructor's version: the chapter's exercise
  section with the set-up cells its exercises need (``--whole-chapter``: the
  whole chapter), solutions in place, and after each self-check its graded
  cells: *visible* (the self-check re-run; it must pass) and *hidden* (the same
  self-check on the spec's inputs, inside nbgrader's ``BEGIN/END HIDDEN TESTS``);
* ``release/<lab>/<lab>.ipynb`` — what students get, made by nbgrader's
  ``generate_assignment`` with the course's stubs (:mod:`nbgrader_course`):
  solutions stubbed, self-checks visible, hidden tests removed;
* ``gradebook.db`` — nbgrader's SQLite gradebook: assignments, graded cells,
  points, and the hidden tests that ``autograde`` puts back;
* ``points.csv`` and ``manifest.json`` — points per exercise, provenance.

The build refuses to run when a graded chapter has an exercise without a spec
entry, when a spec entry names an exercise that no graded chapter has, or
when a spec's cases name a self-check that does not exist.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import csv
import datetime as dt
import json
import shutil
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from nbgrader_course import SETUP_ID  # noqa: E402
from build_labs import (END, SOLUTION_TAG, START, Exercise, exercises,  # noqa: E402
                        stubbed_names)

SPEC_PATH = HERE / "hidden_tests.toml"
NOTEBOOKS = ROOT / "notebooks"
GRADER_TAG = "grader"  # tag of the graded cells the build adds
SCHEMA = 3  # nbgrader's cell-metadata schema


class SpecError(ValueError):
    """The hidden-test spec and the chapters disagree."""


# --- the spec -------------------------------------------------------------------------

@dataclass
class HiddenSpec:
    """What ``hidden_tests.toml`` says about one exercise."""

    label: str
    visible: float
    hidden: float = 0.0
    cases: dict[str, str] = field(default_factory=dict)
    inputs: str = ""
    same: str = ""

    @property
    def kind(self) -> str:
        """``cases``, ``inputs`` or ``same``."""
        return "cases" if self.cases else "inputs" if self.inputs else "same"


def load_spec(path: Path = SPEC_PATH) -> tuple[list[str], dict[str, HiddenSpec]]:
    """The graded chapters and the per-exercise entries of the spec at ``path``."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise SpecError(f"hidden-test spec {path}: cannot read it as TOML ({err})") from None
    graded = raw.get("graded")
    if not isinstance(graded, list) or not all(isinstance(g, str) for g in graded):
        raise SpecError(f"{path}: `graded` must be a list of chapter names "
                        "such as \"01_cross_entropy\"")
    entries = {}
    for label, table in raw.get("exercise", {}).items():
        unknown = set(table) - {"visible", "hidden", "cases", "inputs", "same"}
        if unknown:
            raise SpecError(f"{path}: exercise {label}: unknown keys {sorted(unknown)}")
        spec = HiddenSpec(label, float(table.get("visible", 0)), float(table.get("hidden", 0)),
                          dict(table.get("cases", {})), table.get("inputs", ""),
                          table.get("same", ""))
        kinds = [k for k in ("cases", "inputs", "same") if table.get(k)]
        if len(kinds) != 1:
            raise SpecError(f"{path}: exercise {label}: give exactly one of `cases`, "
                            f"`inputs` or `same` (got {kinds or 'none'})")
        if spec.visible <= 0 or (spec.kind == "same") != (spec.hidden == 0):
            raise SpecError(f"{path}: exercise {label}: `visible` must be > 0, and `hidden` "
                            "> 0 exactly when there are hidden inputs (not for `same`)")
        for name, text in list(spec.cases.items()) + [("inputs", spec.inputs)]:
            try:
                ast.parse(text, mode="eval" if name != "inputs" else "exec")
            except SyntaxError as err:
                raise SpecError(f"{path}: exercise {label}: {name} is not Python: "
                                f"{err}") from None
        entries[label] = spec
    return graded, entries


def check_function_names(check_source: str) -> list[str]:
    """Names (first arguments) of the ``checks.check_function`` calls of a self-check."""
    names = []
    for node in ast.walk(ast.parse(check_source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "check_function" and node.args
                and isinstance(node.args[0], ast.Constant)):
            names.append(node.args[0].value)
    return names


def validate(graded: list[str], spec: dict[str, HiddenSpec],
             chapters: dict[str, nbformat.NotebookNode]) -> None:
    """Raise :class:`SpecError` listing every disagreement between spec and chapters."""
    problems = []
    missing = [g for g in graded if g not in chapters]
    if missing:
        problems.append(f"graded chapters not found in notebooks/: {missing}")
    seen = set()
    for name, nb in chapters.items():
        if name not in graded:
            continue
        for e in exercises(nb):
            seen.add(e.label)
            entry = spec.get(e.label)
            if entry is None:
                problems.append(f"{name}: exercise {e.label} has no entry in the spec "
                                f"(add [exercise.{e.label}] to {SPEC_PATH.name})")
                continue
            names = check_function_names(nb.cells[e.check].source)
            if entry.kind == "cases":
                for n in set(entry.cases) - set(names):
                    problems.append(f"exercise {e.label}: the spec gives cases for "
                                    f"{n!r}, but its self-check has check_function "
                                    f"calls {names}")
                for n in set(names) - set(entry.cases):
                    problems.append(f"exercise {e.label}: check_function {n!r} has no "
                                    "hidden cases in the spec")
            elif names and entry.kind == "same":
                problems.append(f"exercise {e.label}: its self-check calls check_function "
                                f"{names}: give hidden `cases`, not `same`")
    for label in sorted(set(spec) - seen):
        problems.append(f"the spec names exercise {label}, which no graded chapter "
                        f"({', '.join(graded)}) has")
    if problems:
        raise SpecError("hidden-test spec and chapters disagree:\n  " + "\n  ".join(problems))


# --- which cells a lab needs ------------------------------------------------------------

def _python(source: str) -> str:
    """``source`` with IPython syntax (magics) turned into plain Python."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _stored(nodes: list[ast.AST]) -> set[str]:
    """Names stored in ``nodes``, not looking into nested functions, classes or lambdas."""
    found: set[str] = set()
    todo = list(nodes)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            found.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
            continue
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Lambda):
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


class _Names(ast.NodeVisitor):
    """Global names a cell reads (in its functions too, minus their own locals)."""

    def __init__(self) -> None:
        self.reads: set[str] = set()
        self._locals: list[set[str]] = []

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load) and not any(node.id in s for s in self._locals):
            self.reads.add(node.id)

    def _scope(self, node: ast.AST, names: set[str], body: list[ast.AST]) -> None:
        self._locals.append(names)
        for child in body:
            self.visit(child)
        self._locals.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for d in node.decorator_list + node.args.defaults + node.args.kw_defaults:
            if d is not None:
                self.visit(d)
        args = node.args
        params = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
        params |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        self._scope(node, params | _stored(node.body), node.body)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for d in node.bases + node.decorator_list:
            self.visit(d)
        self._scope(node, _stored(node.body), node.body)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        args = node.args
        for d in args.defaults:
            self.visit(d)
        params = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
        params |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        self._scope(node, params, [node.body])

    def _comprehension(self, node: ast.AST) -> None:
        targets = _stored([g.target for g in node.generators])
        self.visit(node.generators[0].iter)
        parts = [g for g in node.generators]
        rest = [x for g in parts for x in g.ifs] + [g.iter for g in parts[1:]]
        elts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        self._scope(node, targets, rest + elts)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension


def cell_names(source: str) -> tuple[set[str], set[str], set[str], set[str]]:
    """(binds, reads, changes in place, modules) of a code cell's top level."""
    tree = ast.parse(_python(source))
    binds: set[str] = set()
    reads: set[str] = set()
    for statement in tree.body:  # in order: a name bound before it is read is the cell's own
        names = _Names()
        names.visit(statement)
        reads |= names.reads - binds
        binds |= _stored([statement])
    modules = {(a.asname or a.name).split(".")[0] for node in ast.walk(tree)
               if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
    changed = set()
    for node in tree.body:
        targets = (node.targets if isinstance(node, ast.Assign) else
                   [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                isinstance(node.value.func, ast.Attribute):
            targets = [node.value.func]  # a method call: obj.update(...)
        for t in targets:
            if not isinstance(t, (ast.Attribute, ast.Subscript)):
                continue
            while isinstance(t, (ast.Attribute, ast.Subscript)):
                t = t.value
            if isinstance(t, ast.Name):
                changed.add(t.id)
    return binds, reads - set(dir(builtins)), changed, modules


def exercise_section(nb: nbformat.NotebookNode, found: list[Exercise]) -> tuple[int, int]:
    """First and last cell index of the chapter's exercises (statements to last check)."""
    first = min(min(e.solutions) for e in found)
    start = max(i for i in range(first) if "{exercise}" in nb.cells[i].source)
    while start > 0 and nb.cells[start - 1].cell_type == "markdown" and \
            nb.cells[start - 1].source.lstrip().startswith("## Exercises"):
        start -= 1
    return start, max(e.check for e in found)


def needed_setup(nb: nbformat.NotebookNode, start: int, end: int) -> list[int]:
    """Indices of the code cells before ``start`` that cells ``start..end`` need.

    A backward slice on names: a cell is kept when it binds, or changes in place
    (``x[...] = ``, ``x.attr = ``, ``x.method(...)``), a name that a kept cell
    reads. The first two code cells (the Colab install and the imports, with
    their seeding) are always kept.
    """
    code = [i for i in range(start) if nb.cells[i].cell_type == "code"]
    info = {i: cell_names(nb.cells[i].source) for i in code}
    needed: set[str] = set()
    for cell in nb.cells[start:end + 1]:
        if cell.cell_type == "code":
            needed |= cell_names(cell.source)[1]
    keep = set(code[:2])
    modules = set().union(*(info[i][3] for i in code)) if code else set()
    for i in reversed(code):
        binds, reads, changed, _ = info[i]
        if i in keep or binds & needed or (changed - modules) & needed:
            keep.add(i)
            needed = (needed - binds) | reads
    for i in code[:2]:
        needed |= info[i][1]
    return sorted(keep)


# --- the source notebook ----------------------------------------------------------------

def _meta(grade_id: str, *, solution: bool = False, grade: bool = False,
          locked: bool = False, points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked,
            "schema_version": SCHEMA, "solution": solution}
    if points is not None:
        meta["points"] = points
    return meta


def with_cases(check_source: str, cases: dict[str, str]) -> str:
    """The self-check with each ``check_function(name, ..., cases=...)`` given new cases."""
    tree = ast.parse(check_source)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "check_function"):
            name = node.args[0].value
            for kw in node.keywords:
                if kw.arg == "cases":
                    kw.value = ast.parse(cases[name], mode="eval").body
    return ast.unparse(tree)


# Runs in the kernel. `_grader_passed`: the latest self-check results of these names all
# passed (the locked self-check cell has just run). `_grader_run`: run a piece of the
# contract, then every self-check it ran must pass. An AssertionError is what nbgrader
# scores as no credit.
PRELUDE = '''\
def _grader_passed(names, where):
    latest = {r.name: r for r in checks.history() if r.name in names}
    missing = [n for n in names if n not in latest]
    assert not missing, f"{where}: the self-check did not run ({', '.join(missing)})"
    failed = [latest[n] for n in names if not latest[n].passed]
    assert not failed, "\\n".join(repr(r) for r in failed)


def _grader_run(code, where, ns=None):
    import warnings
    seen = len(checks.history())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, where, "exec"), globals() if ns is None else ns)
    got = checks.history()[seen:]
    assert got, f"{where}: no self-check ran"
    assert all(r.passed for r in got), "\\n".join(repr(r) for r in got)


def _grader_answer(names):
    """The last executed cell that assigns all of `names` (the submitted answer cell)."""
    import ast
    for src in reversed(In[:-1]):
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        bound = {n.id for node in tree.body
                 if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign))
                 for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                 for n in ast.walk(t) if isinstance(n, ast.Name)}
        if set(names) <= bound:
            return src
    raise AssertionError("no cell assigns " + ", ".join(names))
'''


def check_names(check_source: str) -> list[str] | None:
    """Names of a self-check's ``check_value``/``check_function`` calls (None: not literal)."""
    names = []
    for node in ast.walk(ast.parse(check_source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("check_value", "check_function")):
            if not (node.args and isinstance(node.args[0], ast.Constant)):
                return None
            names.append(node.args[0].value)
    return names or None


def _hidden(code: str) -> str:
    return f"### BEGIN HIDDEN TESTS\n{code.rstrip()}\n### END HIDDEN TESTS"


def graded_cells(nb: nbformat.NotebookNode, e: Exercise, entry: HiddenSpec
                 ) -> list[nbformat.NotebookNode]:
    """The visible and (if any) hidden graded cells that follow exercise ``e``'s self-check."""
    check = nb.cells[e.check].source
    names = check_names(check)
    seen = (f"_grader_passed({names!r}, 'self-check of {e.label}')" if names else
            f"_grader_run({check!r}, 'self-check of {e.label}')")
    visible = nbformat.v4.new_code_cell(
        f"# Graded, {entry.visible:g} point(s): the self-check above must pass.\n"
        + _hidden(PRELUDE + "\n" + seen),
        metadata={"nbgrader": _meta(f"{e.label}-visible", grade=True, locked=True,
                                    points=entry.visible), "tags": [GRADER_TAG]})
    cells = [visible]
    if entry.kind == "cases":
        hidden_code = (f"_grader_run({with_cases(check, entry.cases)!r}, "
                       f"'hidden tests of {e.label}')")
        what = "the self-check's contract on other cases"
    elif entry.kind == "inputs":
        answers = {n for i in e.solutions for n in stubbed_names(nb.cells[i].source)}
        read = {n.id for n in ast.walk(ast.parse(check)) if isinstance(n, ast.Name)}
        names = sorted(answers & read or answers)  # the answers the self-check reads
        hidden_code = (
            "_grader_ns = dict(globals())\n"
            f"exec(compile({entry.inputs!r}, 'hidden inputs', 'exec'), _grader_ns)\n"
            f"exec(compile(_grader_answer({names!r}), 'your answer cell', 'exec'), "
            "_grader_ns)\n"
            f"_grader_run({check!r}, 'hidden tests of {e.label}', _grader_ns)")
        what = "your answer cell and the self-check again, on other given data"
    else:
        return cells
    cells.append(nbformat.v4.new_code_cell(
        f"# Graded, {entry.hidden:g} point(s), hidden tests: {what}. They run when the lab "
        "is graded.\n" + _hidden(PRELUDE + "\n" + hidden_code),
        metadata={"nbgrader": _meta(f"{e.label}-hidden", grade=True, locked=True,
                                    points=entry.hidden), "tags": [GRADER_TAG]}))
    return cells


def source_notebook(nb: nbformat.NotebookNode, spec: dict[str, HiddenSpec], title: str,
                    *, whole: bool = False) -> nbformat.NotebookNode:
    """The instructor's nbgrader version of chapter ``nb`` (see the module docstring)."""
    found = exercises(nb)
    start, end = exercise_section(nb, found)
    keep = (list(range(len(nb.cells))) if whole
            else sorted({0, *needed_setup(nb, start, end), *range(start, end + 1)}))
    after_check = {e.check: e for e in found}
    points = sum(spec[e.label].visible + spec[e.label].hidden for e in found)
    intro = nbformat.v4.new_markdown_cell(
        f"**Graded lab: {title}** ({points:g} points). "
        + ("The whole chapter, with its exercises. " if whole else
           "The chapter's exercises, after the set-up cells from the chapter that they "
           "need (read the chapter itself for the explanations). ")
        + "Replace each stub with your answer and run its self-check. Graded cells follow "
        "each self-check: the grader runs the self-check again and, where the answer "
        "depends on inputs, hidden tests — the same contract on other inputs. Keep each "
        "answer in its own cell; do not edit or delete the locked cells.",
        metadata={"tags": [GRADER_TAG]})
    cells = []
    for i in keep:
        cell = nbformat.from_dict(nb.cells[i])
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            solution = SOLUTION_TAG in cell.metadata.get("tags", [])
            grade_id = (f"answer-{i}" if solution else f"{SETUP_ID}{i}" if i < start
                        else f"cell-{i}")  # set-up cells get the longer time limit
            cell.metadata["nbgrader"] = _meta(grade_id, solution=solution, locked=not solution)
        cells.append(cell)
        if i == 0:
            cells.append(intro)
        if i in after_check:
            cells += graded_cells(nb, after_check[i], spec[after_check[i].label])
    out = nbformat.v4.new_notebook(cells=cells, metadata=nbformat.from_dict(nb.metadata))
    out.metadata.pop("widgets", None)
    out.metadata["course_lab"] = {"chapter": title, "source": "generated by "
                                  "tests/grading/assignments.py; do not edit"}
    nbformat.validate(out)
    return out


def _check_markers(nb: nbformat.NotebookNode) -> None:
    """Every worked solution opened is closed (``student_copy`` relies on it)."""
    opened = sum(bool(START.search(c.source)) for c in nb.cells if c.cell_type == "markdown")
    closed = sum(bool(END.search(c.source)) for c in nb.cells if c.cell_type == "markdown")
    if opened != closed:
        raise SpecError(f"{nb.metadata.get('title', 'a chapter')}: {opened} solution-start "
                        f"markers but {closed} solution-end markers")


# --- the build ----------------------------------------------------------------------------

def read_chapters(names: list[str] | None = None) -> dict[str, nbformat.NotebookNode]:
    """The chapters ``notebooks/NN_*.ipynb`` by name (all, or those of ``names``)."""
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    return {p.stem: nbformat.read(p, as_version=4) for p in paths
            if names is None or p.stem in names}


def copy_results(nb: nbformat.NotebookNode, folder: Path, *, everything: bool) -> None:
    """Copy the entries of ``notebooks/results/`` that the lab's code names in a string."""
    strings = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            tree = ast.parse(_python(cell.source))
            strings |= {n.value for n in ast.walk(tree)
                        if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    results = NOTEBOOKS / "results"
    for entry in sorted(results.iterdir()):
        if everything or any(t in (entry.name, entry.stem) or f"results/{entry.name}" in t
                             for t in strings):
            dest = folder / "results" / entry.name
            if entry.is_dir():  # a fresh copy: a stored artifact holds only its own files
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(entry, dest, ignore=shutil.ignore_patterns("*.partial"))
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(entry, dest)


def build(out: Path, chapters: list[str] | None = None, *, whole: bool = False,
          spec_path: Path = SPEC_PATH) -> dict:
    """Write the graded labs' nbgrader course to ``out``; return its manifest."""
    import nbgrader

    from nbgrader_course import api, write_config_file

    out = out.resolve()  # nbgrader's database URL and folders are taken as absolute
    graded, spec = load_spec(spec_path)
    every = read_chapters()
    validate(graded, spec, every)
    wanted = graded if not chapters else chapters
    unknown = [c for c in wanted if c not in graded]
    if unknown:
        raise SpecError(f"chapters {unknown} are not graded labs; graded: {graded}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    write_config_file(out)
    rows, labs = [], {}
    for name in wanted:
        nb = every[name]
        _check_markers(nb)
        source = source_notebook(nb, spec, name, whole=whole)
        folder = out / "source" / name
        folder.mkdir(parents=True)
        nbformat.write(source, folder / f"{name}.ipynb")
        copy_results(source, folder, everything=whole)
        result = api(out).generate_assignment(name, force=True, create=True)
        if not result["success"]:
            raise RuntimeError(f"nbgrader generate_assignment {name} failed:\n"
                               f"{result.get('log', '')}\n{result.get('error', '')}")
        total = 0.0
        for e in exercises(nb):
            entry = spec[e.label]
            rows.append({"lab": name, "exercise": e.label, "visible_points": entry.visible,
                         "hidden_points": entry.hidden, "hidden_tests": entry.kind,
                         "note": entry.same})
            total += entry.visible + entry.hidden
        labs[name] = {"points": total, "cells": len(source.cells),
                      "mode": "whole chapter" if whole else "exercises and their set-up"}
        print(f"{name}: graded lab written ({total:g} points, {len(source.cells)} cells)")
    with open(out / "points.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    manifest = {"tool": f"nbgrader {nbgrader.__version__}",
                "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "by": "tests/grading/assignments.py", "spec": str(spec_path.relative_to(ROOT))
                if spec_path.is_relative_to(ROOT) else str(spec_path), "labs": labs}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n",
                                       encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*",
                        help="graded chapters to build, e.g. 01_cross_entropy "
                             "(default: every chapter the spec grades)")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "labs" / "graded")
    parser.add_argument("--whole-chapter", action="store_true",
                        help="release the whole chapter, not only its exercises and set-up")
    args = parser.parse_args(argv)
    names = [Path(c).stem for c in args.chapters]
    try:
        build(args.out, names or None, whole=args.whole_chapter)
    except SpecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"graded labs in {args.out} (release/, source/, gradebook.db, points.csv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
