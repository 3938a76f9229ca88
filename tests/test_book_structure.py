"""The book's structure: table of contents, chapter anatomy, citations, glue keys.

Fast checks that run before nbval and the build, so that a missing page, an
uncited key or an exercise without a solution is reported by name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from execute_notebooks import INSTALL_TAG, colab_cell_source

ROOT = Path(__file__).resolve().parent.parent
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BIB_KEYS = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "book/references.bib").read_text(), re.M))
MAX_CELLS, MAX_CODE_LINES, MAX_LINE = 60, 40, 76  # 76: the width of a code block on the page


def toc_files() -> list[str]:
    files = [TOC["root"]]
    for part in TOC.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def source_of(entry: str) -> Path | None:
    for suffix in (".md", ".ipynb"):
        if (ROOT / (entry + suffix)).is_file():
            return ROOT / (entry + suffix)
    return None


def test_toc_lists_only_pages_that_exist():
    missing = [entry for entry in toc_files() if source_of(entry) is None]
    assert not missing, f"_toc.yml lists pages that do not exist: {missing}"


def test_every_chapter_and_book_page_is_in_the_toc():
    listed = set(toc_files())
    pages = [p.relative_to(ROOT).with_suffix("").as_posix()
             for p in NOTEBOOKS + sorted((ROOT / "book").glob("*.md"))]
    orphans = [p for p in pages if p not in listed]
    assert not orphans, f"pages missing from _toc.yml: {orphans}"


def test_bibliography_parses():
    from pybtex.database import parse_file

    entries = parse_file(str(ROOT / "book/references.bib")).entries
    assert set(entries) == BIB_KEYS


def test_bibliography_has_no_duplicate_keys():
    keys = re.findall(r"^@\w+\{([^,]+),", (ROOT / "book/references.bib").read_text(), re.M)
    assert len(keys) == len(set(keys))


def cited_keys(text: str) -> set[str]:
    keys = set()
    for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
        keys.update(k.strip() for k in group.split(","))
    return keys


@pytest.mark.parametrize("page", sorted((ROOT / "book").glob("*.md")), ids=lambda p: p.name)
def test_book_pages_cite_only_known_papers(page):
    unknown = cited_keys(page.read_text(encoding="utf-8")) - BIB_KEYS
    assert not unknown, f"{page.name} cites keys missing from references.bib: {unknown}"


@pytest.mark.parametrize("page", sorted((ROOT / "book").glob("*.md")), ids=lambda p: p.name)
def test_book_pages_quote_only_glued_values(page):
    """``{glue:text}`../notebooks/NN.ipynb::key:fmt``` must name a chapter and a key it glues."""
    for doc, key in re.findall(r"\{glue(?::\w+)?\}`([^`:]+\.ipynb)::(\w+)", page.read_text()):
        chapter = (page.parent / doc).resolve()
        assert chapter.is_file(), f"{page.name} quotes {key!r} from a missing {doc}"
        source = chapter.read_text(encoding="utf-8")
        assert re.search(rf"glue\(\s*\\?[\"']{key}\\?[\"']", source), (
            f"{page.name} quotes {key!r}, which {chapter.name} never glues")


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def notebook(request) -> nbformat.NotebookNode:
    nb = nbformat.read(request.param, as_version=4)
    nb.metadata["path"] = request.param.name
    return nb


def markdown(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_chapter_has_goals_summary_exercises_references(notebook):
    text = markdown(notebook)
    assert "**You will learn to**" in notebook.cells[0].source, "first cell states the goals"
    for heading in ("## Summary", "## Exercises", "## References"):
        assert re.search(rf"^{heading}\s*$", text, re.M), f"missing section {heading!r}"
    assert "**Budget:**" in notebook.cells[0].source, "first cell states the time budget"


def test_chapter_is_readable(notebook):
    assert len(notebook.cells) <= MAX_CELLS, f"{len(notebook.cells)} cells (at most {MAX_CELLS})"
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or "remove-cell" in cell.metadata.get("tags", []):
            continue  # cells hidden from the page (the Colab install) are exempt
        lines = cell.source.splitlines()
        assert len(lines) <= MAX_CODE_LINES, f"cell {i} has {len(lines)} lines (a screen is {MAX_CODE_LINES})"
        long = [line for line in lines if len(line) > MAX_LINE]
        assert not long, f"cell {i} has lines over {MAX_LINE} characters: {long[:2]}"


def test_chapter_was_executed_top_to_bottom_without_errors(notebook):
    code = [c for c in notebook.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert None not in counts, "a code cell has no stored execution: run `make execute`"
    assert counts == sorted(counts), "cells were executed out of order: run `make execute`"
    for i, cell in enumerate(code):
        for out in cell.outputs:
            assert out.output_type != "error", f"code cell {i} stored an error: {out.get('ename')}"
            if out.output_type == "stream" and out.name == "stderr":
                assert "Warning" not in out.text, f"code cell {i} printed a warning: {out.text[:200]}"


def test_chapter_cites_only_known_papers(notebook):
    unknown = cited_keys(markdown(notebook)) - BIB_KEYS
    assert not unknown, f"cites keys missing from references.bib: {unknown}"


def test_every_glue_key_quoted_is_glued(notebook):
    used = set(re.findall(r"\{glue(?::\w+)?\}`([A-Za-z_]\w*)", markdown(notebook)))
    glued = set()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            glued.update(re.findall(r"""glue\(\s*["'](\w+)["']""", cell.source))
    assert used <= glued, f"prose quotes values no cell glues: {used - glued}"


def test_every_exercise_has_a_solution_and_a_self_check(notebook):
    cells = notebook.cells
    exercises = [(i, m.group(1)) for i, c in enumerate(cells) if c.cell_type == "markdown"
                 for m in re.finditer(r"```\{exercise\}[^\n]*\n:label: ([\w-]+)", c.source)]
    assert exercises, "a chapter has exercises"
    for index, label in exercises:
        start = next((i for i, c in enumerate(cells)
                      if c.cell_type == "markdown" and f"{{solution-start}} {label}" in c.source), None)
        assert start is not None and start >= index, f"exercise {label} has no solution after it"
        end = next(i for i in range(start, len(cells)) if "{solution-end}" in cells[i].source)
        solution_code = [c for c in cells[start:end] if c.cell_type == "code"]
        assert solution_code, f"solution of {label} has no code cell"
        assert all("solution" in c.metadata.get("tags", []) for c in solution_code), (
            f"code in the solution of {label} must be tagged 'solution' (student copies strip it)")
        after = cells[end + 1] if end + 1 < len(cells) else None
        assert after is not None and after.cell_type == "code" and "checks." in after.source, (
            f"exercise {label} needs a self-check cell right after its solution")


def test_first_code_cell_installs_the_course_on_colab(notebook):
    first = next(c for c in notebook.cells if c.cell_type == "code")
    assert INSTALL_TAG in first.metadata.get("tags", []), "first code cell is the Colab install"
    assert first.source == colab_cell_source(), (
        "the install cell is stale (repository URL or data pins changed): run `make execute`")


def _code(notebook):
    return [(i, c) for i, c in enumerate(notebook.cells) if c.cell_type == "code"]


def _tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def test_ignored_outputs_are_checked_elsewhere(notebook):
    """An output nbval ignores must be checked: by the cell itself (tagged ``check``), by a
    check cell after it (past any other ignored cells), or be excused by its metadata's
    ``ignore_reason`` (a widget, a temporary path, timings — which no test checks)."""
    code = _code(notebook)
    for n, (i, cell) in enumerate(code):
        tags = _tags(cell)
        if "nbval-ignore-output" not in tags or "check" in tags or (
                cell.metadata.get("ignore_reason")):
            continue
        if "solution" in tags:
            continue  # its self-check follows the solution
        later = [c for _, c in code[n + 1:]]
        following = next((c for c in later if "nbval-ignore-output" not in _tags(c)
                          or "check" in _tags(c)), None)
        assert following is not None and "check" in _tags(following), (
            f"cell {i} is tagged nbval-ignore-output, but no check cell follows it: check "
            "its numbers with checks.expect_close in a cell tagged 'check', or say in "
            "metadata['ignore_reason'] why they need no check")


def test_check_cells_show_every_result(notebook):
    """A self-check's result is shown only if it is the cell's last expression or printed."""
    for i, cell in _code(notebook):
        if "checks.check_" not in cell.source or cell.source.lstrip().startswith("%"):
            continue
        body = ast.parse(cell.source).body
        for stmt in body[:-1]:
            if (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
                    and "checks.check_" in ast.unparse(stmt.value.func)):
                assert False, (f"cell {i}: the result of {ast.unparse(stmt.value.func)} "
                               f"(line {stmt.lineno}) is never shown; wrap it in print()")


TIMING_WORDS = ("perf_counter", "timeit", "benchmark", "latency", "throughput", "speedup",
                "seconds", "wall_time", "mfu")


def test_no_check_asserts_a_timing(notebook):
    """Timings depend on the machine and its load: benchmarks print them, checks never
    compare them (neither tolerance checks nor a learner's self-checks)."""
    for i, cell in _code(notebook):
        if "check" not in _tags(cell) and "checks.check_" not in cell.source:
            continue
        words = [w for w in TIMING_WORDS if w in cell.source.lower()]
        assert not words, f"check cell {i} uses {words}: no check may depend on a timing"
