"""Grade submissions, each in its own sandbox (started by ``tests/grading/grade.py``).

    python tests/grading/worker.py < job file names, one a line

Each job file describes a submission already laid out by the parent in a
sandbox that is an nbgrader course of its own (``course``), with the
environment its kernel gets (``env``: ``HOME``, ``TMPDIR``... inside the
sandbox), a time limit and a result file. For each, one after the other, the
worker switches to that environment and folder, runs nbgrader's ``autograde``
(the submitted notebook executed with its locked and graded cells, hidden
tests included, restored from the sandbox's copy of the gradebook) and
``generate_feedback``, and writes the result file: nbgrader's log, each graded
cell's score, the total, and which watched files changed meanwhile. One
process grades many submissions so that nbgrader is imported once; the kernel
of each is a process of its own, killed when the submission's time runs out.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from grade import changes, snapshot  # noqa: E402
from nbgrader_course import api  # noqa: E402


def scores(course: Path, lab: str, student: str) -> dict:
    """Scores of the graded cells of ``student``'s ``lab`` in the course's gradebook."""
    import warnings

    from nbgrader.api import Gradebook

    with warnings.catch_warnings(), Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        warnings.simplefilter("ignore")
        submission = gb.find_submission(lab, student)
        cells = {}
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                cells[grade.name] = [float(grade.score), float(grade.max_score)]
        return {"cells": cells, "score": float(submission.score),
                "max_score": float(submission.max_score)}


def kill_children() -> None:
    """Kill every process this worker started (the kernel and whatever it started)."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            child.kill()
        except psutil.Error:
            pass


def grade_job(job: dict) -> dict:
    """Autograde and give feedback on one submission; return its result."""
    course = Path(job["course"])
    os.environ.clear()
    os.environ.update(job["env"])
    os.chdir(course)
    watch = [Path(p) for p in job["watch"]]
    before = snapshot(watch)
    start = time.monotonic()
    expired, finished = threading.Event(), threading.Event()

    def watchdog() -> None:
        """Past the time limit, keep killing whatever the job starts until it gives up."""
        if finished.wait(job["timeout"]):
            return
        expired.set()
        while not finished.is_set():
            kill_children()
            finished.wait(0.2)

    timer = threading.Thread(target=watchdog, daemon=True)
    timer.start()
    result: dict = {"stage": "autograde", "seconds": {}}
    try:
        grader = api(course, cell_timeout=job["cell_timeout"],
                     setup_timeout=max(1, int(job["timeout"])))
        graded = grader.autograde(job["lab"], job["student"], force=True, create=True)
        result["seconds"]["autograde"] = round(time.monotonic() - start, 2)
        result["log"] = graded.get("log", "")
        if not graded["success"]:
            result["error"] = graded.get("error", "nbgrader autograde failed")
        else:
            result.update(scores(course, job["lab"], job["student"]))
            result["stage"] = "feedback"
            feedback = grader.generate_feedback(job["lab"], job["student"], force=True)
            result["log"] += feedback.get("log", "")
            if not feedback["success"]:
                result["error"] = feedback.get("error", "nbgrader generate_feedback failed")
            else:
                result["stage"] = "done"
        result["seconds"]["feedback"] = round(time.monotonic() - start, 2)
    except Exception as err:  # noqa: BLE001 — the next submission must still be graded
        result["error"] = f"{type(err).__name__}: {err}"
    finally:
        finished.set()
        timer.join()
        kill_children()
    result["timed_out"] = expired.is_set()
    if result["timed_out"]:  # what ran before the limit does not count
        result.update(stage="stopped", cells={}, score=0.0)
        result["error"] = f"stopped after the notebook time limit of {job['timeout']:g} s"
    result["changes"] = changes(before, snapshot(watch))
    return result


def main(argv: list[str] | None = None) -> int:
    """Grade the job file named on each line of standard input; answer ``done`` to each."""
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    answer = os.fdopen(os.dup(1), "w")  # the parent reads only "done" lines here;
    os.dup2(2, 1)  # anything else written to standard output goes to the log
    sys.stdout = sys.stderr
    for line in sys.stdin:
        job = json.loads(Path(line.strip()).read_text(encoding="utf-8"))
        result = grade_job(job)
        Path(job["result"]).write_text(json.dumps(result, indent=1), encoding="utf-8")
        answer.write("done\n")
        answer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
