"""The nbgrader course behind the graded labs: its settings and the course's stubs.

nbgrader turns an instructor's *source* notebook into the student's *release*
notebook with a list of preprocessors. We keep nbgrader's list and replace one
step: instead of its ``ClearSolutions`` (which writes ``raise
NotImplementedError()`` in place of a solution region), :class:`CourseStubs`
applies the course's own rule, :func:`build_labs.student_copy` — functions keep
their signatures and docstrings, answers become ``name = ...``, worked
solutions leave the text. The release of a graded lab is therefore exactly the
student copy that ``make labs`` has always written, plus nbgrader's cell
metadata and the graded cells.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import (CheckCellMetadata, ClearHiddenTests, ClearMarkScheme,
                                    ClearOutput, ComputeChecksums, IncludeHeaderFooter,
                                    InstantiateTests, LockCells, NbGraderPreprocessor,
                                    SaveCells)
from traitlets.config import Config

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from build_labs import student_copy  # noqa: E402

# nbgrader runs its database migrations with the `alembic` command of its environment:
# make that environment's scripts findable when it is used without being activated.
_SCRIPTS = str(Path(sys.executable).parent)
if _SCRIPTS not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _SCRIPTS + os.pathsep + os.environ.get("PATH", "")

COURSE_ID = "llm-scaling-course"
#: Seconds one cell may run when a submission is graded before nbgrader interrupts it.
CELL_TIMEOUT_S = 120
#: Seconds for the lab's set-up cells (imports, given data), which run no submitted code.
SETUP_TIMEOUT_S = 600
#: Prefix of the nbgrader ids of a lab's set-up cells (tests/grading/assignments.py).
SETUP_ID = "setup-"


class CellTimeout:
    """nbclient's ``timeout_func``: the set-up cells get ``setup`` seconds, others ``cell``.

    The set-up cells (locked, before the first exercise) only import and build given
    data, but on a busy machine importing PyTorch alone can take longer than the limit
    a submitted cell deserves.
    """

    def __init__(self, cell: int, setup: int) -> None:
        self.cell, self.setup = cell, setup

    def __call__(self, cell: NotebookNode) -> int:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
        return self.setup if str(grade_id).startswith(SETUP_ID) else self.cell


class CourseStubs(NbGraderPreprocessor):
    """Release step: the course's student copy in place of nbgrader's ``ClearSolutions``."""

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict
                   ) -> tuple[NotebookNode, ResourcesDict]:
        """Stub every solution cell and drop the worked solutions (nbgrader metadata kept)."""
        resources["language"] = nb.metadata.get("kernelspec", {}).get("language", "python")
        return student_copy(nb), resources


def generate_preprocessors() -> list[type]:
    """nbgrader 0.9's ``GenerateAssignment.preprocessors`` with :class:`CourseStubs`."""
    return [IncludeHeaderFooter, InstantiateTests, LockCells, CourseStubs, ClearOutput,
            CheckCellMetadata, ComputeChecksums, SaveCells, ClearHiddenTests,
            ClearMarkScheme, ComputeChecksums, CheckCellMetadata]


def course_config(root: Path, *, cell_timeout: int = CELL_TIMEOUT_S,
                  setup_timeout: int = SETUP_TIMEOUT_S) -> Config:
    """nbgrader settings for the course folder ``root`` (its gradebook: ``root/gradebook.db``)."""
    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    c.GenerateAssignment.preprocessors = generate_preprocessors()
    c.Execute.timeout = cell_timeout
    c.Execute.timeout_func = CellTimeout(cell_timeout, max(cell_timeout, setup_timeout))
    c.Execute.interrupt_on_timeout = True
    # A kernel slow to answer after an interrupt: go on with the next cell rather than
    # fail the whole notebook (the notebook's own time limit still bounds it).
    c.Execute.raise_on_iopub_timeout = False
    # LimitOutput: a looping print must not make a feedback page of megabytes.
    c.LimitOutput.max_lines = 200
    return c


CONFIG_FILE = '''\
"""nbgrader settings of the course's graded labs, written by `make labs`
(tests/grading/nbgrader_course.py). Run nbgrader here: `nbgrader formgrader`,
`nbgrader generate_assignment`, `nbgrader autograde` (or `make grade` in the
repository, which adds a sandbox per submission)."""
import sys
sys.path.insert(0, {grading!r})
from nbgrader_course import course_config

c = get_config()  # noqa: F821
c.merge(course_config(__import__("pathlib").Path(__file__).resolve().parent))
'''


def write_config_file(root: Path) -> Path:
    """Write ``root/nbgrader_config.py``, so that nbgrader's own commands work in ``root``."""
    path = root / "nbgrader_config.py"
    path.write_text(CONFIG_FILE.format(grading=str(Path(__file__).resolve().parent)),
                    encoding="utf-8")
    return path


def api(root: Path, **settings: Any):
    """An ``NbGraderAPI`` on the course folder ``root``."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config = course_config(root, **settings)
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
