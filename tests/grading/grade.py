"""Autograde a folder of submitted lab notebooks, offline (``make grade SUBMISSIONS=...``).

    python tests/grading/grade.py SUBMISSIONS [--labs _build/labs/graded]
                                  [--out _build/grades] [--timeout 600] [--cell-timeout 120]
                                  [--jobs 1]

SUBMISSIONS holds one folder per student, named by the student's id, with the
lab notebooks in either of nbgrader's layouts::

    SUBMISSIONS/<student>/<lab>.ipynb
    SUBMISSIONS/<student>/<lab>/<lab>.ipynb      (nbgrader's submitted/ folder)

where ``<lab>`` is a graded lab built by ``make labs`` (``01_cross_entropy``...).
Each notebook is graded by nbgrader in a sandbox of its own — a temporary
folder with its own ``HOME``, temporary folder and copy of the gradebook, the
kernel refusing writes outside it (``tests/grading/contain.py``) — in a child
process with a wall-clock limit. A notebook that loops, raises, imports what
is missing, is not JSON or writes outside its folder is scored (what it earned
before, or 0) and flagged; the run goes on. OUT receives:

* ``grades.csv`` — one row per submission: score, maximum, status, flags;
* ``cell_grades.csv`` — one row per graded cell (visible and hidden tests);
* ``feedback/<student>/<lab>/<lab>.html`` — nbgrader's feedback page;
* ``autograded/<student>/<lab>/`` — the executed notebooks;
* ``gradebook.db`` — nbgrader's SQLite gradebook with every score (open it with
  ``nbgrader formgrader`` for manual review);
* ``report.json`` — provenance (tool versions, time, settings) and the results.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import html
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from nbgrader_course import CELL_TIMEOUT_S, COURSE_ID  # noqa: E402

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")


class InputError(ValueError):
    """The command line names something that is not what it should be."""


@dataclass
class Submission:
    """One submitted notebook and what grading it gave."""

    student: str
    lab: str
    path: Path
    score: float = 0.0
    max_score: float = 0.0
    status: str = "pending"
    flags: list[str] = field(default_factory=list)
    cells: dict[str, list[float]] = field(default_factory=dict)
    feedback: str = ""
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)


# --- finding the submissions ------------------------------------------------------------

def labs_of(labs: Path) -> dict[str, float]:
    """The graded labs built in ``labs`` and their points (from its manifest)."""
    manifest = labs / "manifest.json"
    if not (labs / "gradebook.db").is_file() or not manifest.is_file():
        raise InputError(f"--labs {labs}: no graded labs there (expected gradebook.db and "
                         "manifest.json, written by `make labs`); run `make labs` first")
    return {name: info["points"] for name, info in
            json.loads(manifest.read_text(encoding="utf-8"))["labs"].items()}


def find_submissions(folder: Path, labs: dict[str, float]) -> list[Submission]:
    """The submissions in ``folder`` (layouts in the module docstring)."""
    if not folder.exists():
        raise InputError(f"SUBMISSIONS={folder}: no such folder; expected a folder with one "
                         "sub-folder per student holding <lab>.ipynb or <lab>/<lab>.ipynb")
    if not folder.is_dir():
        raise InputError(f"SUBMISSIONS={folder}: is a file; expected a folder with one "
                         "sub-folder per student")
    found = []
    problems = [f"{p}: a notebook must be in its student's folder, "
                f"{folder}/<student>/{p.name}" for p in sorted(folder.glob("*.ipynb"))]
    for student_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        student = student_dir.name
        if student.startswith("."):
            continue
        if not STUDENT_ID.match(student):
            problems.append(f"{student_dir}: a student folder's name must be the student's "
                            "id (letters, digits, _ . @ + -)")
            continue
        for path in sorted(student_dir.rglob("*.ipynb")):
            rel = path.relative_to(student_dir).parts
            if ".ipynb_checkpoints" in rel:
                continue
            lab = rel[0] if len(rel) == 2 else path.stem
            if len(rel) > 2 or lab not in labs or (len(rel) == 2 and path.stem != lab):
                problems.append(f"{path}: not a graded lab's notebook; expected "
                                f"{student}/<lab>.ipynb or {student}/<lab>/<lab>.ipynb "
                                f"with <lab> one of {sorted(labs)}")
                continue
            found.append(Submission(student, lab, path, max_score=labs[lab]))
    if not found:
        raise InputError(f"SUBMISSIONS={folder}: no lab notebooks found; expected "
                         "<student>/<lab>.ipynb or <student>/<lab>/<lab>.ipynb with <lab> "
                         f"one of {sorted(labs)}" + ("".join(f"\n  {p}" for p in problems)))
    seen: dict[tuple[str, str], Path] = {}
    for s in found:
        if (s.student, s.lab) in seen:
            raise InputError(f"SUBMISSIONS={folder}: two notebooks for {s.student}'s "
                             f"{s.lab}: {seen[s.student, s.lab]} and {s.path}")
        seen[s.student, s.lab] = s.path
    for p in problems:
        print(f"skipped: {p}", file=sys.stderr)
    return found


def read_notebook(path: Path) -> str | None:
    """``None`` if ``path`` is a valid notebook, else what is wrong with it."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
        nb = nbformat.read(path, as_version=4)
    except json.JSONDecodeError as err:
        return (f"{path.name} is not JSON ({err.msg} at line {err.lineno}, column "
                f"{err.colno}); expected a notebook saved by Jupyter")
    except (UnicodeDecodeError, OSError) as err:
        return f"{path.name} cannot be read as a notebook ({err})"
    except Exception as err:  # noqa: BLE001 — nbformat raises several kinds
        return f"{path.name} is not a notebook ({type(err).__name__}: {err})"
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as err:
        return f"{path.name} is not a valid notebook ({err.message})"
    return None


# --- watching for writes outside ------------------------------------------------------

def snapshot(roots: list[Path], skip: tuple[str, ...] = ("_build", "__pycache__")
             ) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under ``roots``, skipping folders named in ``skip``.

    Hidden folders (``.git``, ``.venv``, tools' caches) are skipped too: the run checks
    the environment once, before and after all submissions.
    """
    seen = {}
    for root in roots:
        if root.is_file():
            st = root.stat()
            seen[str(root)] = (st.st_size, st.st_mtime_ns)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in skip and not d.startswith(".")]
            for name in filenames:
                p = os.path.join(dirpath, name)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                seen[p] = (st.st_size, st.st_mtime_ns)
    return seen


def changes(before: dict, after: dict) -> list[str]:
    """Files created, deleted or changed between two snapshots."""
    out = [f"created {p}" for p in after.keys() - before.keys()]
    out += [f"deleted {p}" for p in before.keys() - after.keys()]
    out += [f"changed {p}" for p in before.keys() & after.keys() if before[p] != after[p]]
    return sorted(out)


# --- grading one submission --------------------------------------------------------------

def sandbox_env(box: Path, lab_dir: Path) -> dict[str, str]:
    """Environment of a submission's worker and kernel: everything points into ``box``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTER", "IPYTHON", "GRADER_", "MPL", "XDG_"))}
    home = box / "home"
    env.update(HOME=str(home), TMPDIR=str(box / "tmp"), IPYTHONDIR=str(home / ".ipython"),
               XDG_CACHE_HOME=str(home / ".cache"), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"),
               MPLCONFIGDIR=str(home / ".config" / "matplotlib"),
               JUPYTER_CONFIG_DIR=str(home / ".jupyter"), JUPYTER_RUNTIME_DIR=str(
                   box / "tmp" / "jupyter"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg",
               GRADER_EVENTS=str(box / "events.log"),
               GRADER_ALLOWED_WRITES=os.pathsep.join([str(lab_dir), str(home),
                                                      str(box / "tmp")]))
    return env


def prepare(box: Path, labs: Path, s: Submission, mpl: Path) -> Path:
    """Lay out the sandbox ``box`` as an nbgrader course with this one submission."""
    course = box / "course"
    shutil.copytree(mpl, box / "home" / ".config" / "matplotlib")  # its font cache
    for d in (box / "home" / ".ipython" / "profile_default" / "startup", box / "tmp"):
        d.mkdir(parents=True)
    shutil.copy2(HERE / "contain.py",
                 box / "home" / ".ipython" / "profile_default" / "startup" / "00-contain.py")
    shutil.copytree(labs / "source" / s.lab, course / "source" / s.lab)
    shutil.copy2(labs / "gradebook.db", course / "gradebook.db")
    submitted = course / "submitted" / s.student / s.lab
    if s.path.parent.name == s.lab and s.path.parent.parent.name == s.student:
        shutil.copytree(s.path.parent, submitted, symlinks=False,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    else:
        submitted.mkdir(parents=True)
        shutil.copy2(s.path, submitted / f"{s.lab}.ipynb")
    return course


def failure_page(s: Submission, why: str) -> str:
    """A feedback page for a submission nbgrader could not grade."""
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(s.lab)}"
            f" — {html.escape(s.student)}</title></head><body>\n<h1>{html.escape(s.lab)}: "
            f"{s.score:g} / {s.max_score:g}</h1>\n<p>Your notebook could not be graded in "
            f"full: {html.escape(why)}</p>\n<p>Flags: {html.escape('; '.join(s.flags) or 'none')}"
            "</p>\n</body></html>\n")


def start(s: Submission, labs: Path, out: Path, mpl: Path, *, timeout: float,
          cell_timeout: int, watch: list[Path]) -> dict | None:
    """Check ``s`` and lay out its sandbox; return its job for a worker (None: nothing to run)."""
    feedback_dir = out / "feedback" / s.student / s.lab
    feedback_dir.mkdir(parents=True, exist_ok=True)
    page = feedback_dir / f"{s.lab}.html"
    s.feedback = str(page.relative_to(out))
    problem = read_notebook(s.path)
    if problem:
        s.status, s.flags = "invalid notebook", [problem]
        page.write_text(failure_page(s, problem), encoding="utf-8")
        return None
    box = Path(tempfile.mkdtemp(prefix=f"grade-{s.student}-{s.lab}-"))
    course = prepare(box, labs, s, mpl)
    lab_dir = course / "autograded" / s.student / s.lab
    return {"box": str(box), "course": str(course), "lab": s.lab, "student": s.student,
            "env": sandbox_env(box, lab_dir), "timeout": timeout,
            "cell_timeout": cell_timeout, "watch": [str(w) for w in watch],
            "result": str(box / "result.json")}


def finish(s: Submission, job: dict, out: Path, worker_log: str) -> None:
    """Read what the worker left in the sandbox of ``s`` into ``s`` and ``out``; clean up."""
    box, page = Path(job["box"]), out / s.feedback
    course = Path(job["course"])
    try:
        result_file = Path(job["result"])
        result = json.loads(result_file.read_text()) if result_file.is_file() else {}
        if result.get("timed_out"):
            s.flags.append(f"stopped after the notebook time limit of {job['timeout']:g} s")
        s.flags += result.get("changes", [])
        events = box / "events.log"
        if events.is_file():
            s.flags += [f"blocked {line}" for line in
                        events.read_text(encoding="utf-8", errors="replace").splitlines()[:20]]
        s.cells = result.get("cells", {})
        s.stages = result.get("seconds", {})
        s.score = float(result.get("score", 0.0))
        if "max_score" in result:
            s.max_score = float(result["max_score"])
        nb_feedback = course / "feedback" / s.student / s.lab / f"{s.lab}.html"
        if result.get("stage") == "done" and nb_feedback.is_file():
            s.status = "graded"
            shutil.copy2(nb_feedback, page)
        else:
            why = ((result.get("error") or "").strip().splitlines() or [""])[-1]
            s.status = "not graded in full"
            if not result.get("timed_out"):
                s.flags.append(f"nbgrader: {why}" if result else
                               f"no result from the grader ({worker_log})")
            page.write_text(failure_page(s, s.flags[-1]), encoding="utf-8")
        lab_dir = course / "autograded" / s.student / s.lab
        if lab_dir.is_dir():
            shutil.copytree(lab_dir, out / "autograded" / s.student / s.lab,
                            dirs_exist_ok=True, symlinks=True)
        if any(f.startswith(("created", "deleted", "changed", "blocked")) for f in s.flags):
            s.status += ", wrote outside its folder"
        (out / "logs").mkdir(exist_ok=True)
        (out / "logs" / f"{s.student}-{s.lab}.log").write_text(result.get("log", ""),
                                                               encoding="utf-8")
    except Exception as err:  # noqa: BLE001 — one submission must not stop the run
        s.status = "grader error"
        s.flags.append(f"{type(err).__name__}: {err}")
        page.write_text(failure_page(s, s.flags[-1]), encoding="utf-8")
    finally:
        shutil.rmtree(box, ignore_errors=True)
        s.seconds = s.stages.get("feedback", 0.0)


class Worker:
    """A worker process (``worker.py``) that grades the jobs it is sent, one at a time."""

    def __init__(self, log: Path) -> None:
        self.log = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, str(HERE / "worker.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, start_new_session=True)

    def grade(self, job_file: Path, limit: float) -> bool:
        """Send one job; True once it is done, False if the worker died or overran."""
        import selectors

        try:
            self.proc.stdin.write(f"{job_file}\n".encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        deadline = time.monotonic() + limit
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while sel.select(timeout=max(0.0, deadline - time.monotonic())):
                line = self.proc.stdout.readline()
                if not line:  # the worker died
                    return False
                if line.startswith(b"done"):
                    return True
        return False

    def stop(self) -> None:
        """End the worker and every process it left behind."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()


def run_workers(pending: list[dict], jobs: int, logs: Path) -> None:
    """Grade ``pending`` jobs with ``jobs`` workers, each taking the next job when free.

    A worker that overruns a job's limit (its notebook time limit plus a minute for
    nbgrader itself) or dies is killed and replaced; that job gets no result.
    """
    import queue
    import threading

    todo: queue.Queue = queue.Queue()
    for job in pending:
        todo.put(job)
    job_dir = Path(tempfile.mkdtemp(prefix="grade-jobs-"))

    def serve(k: int) -> None:
        worker = None
        try:
            while True:
                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    return
                worker = worker or Worker(logs / f"worker-{k}.log")
                job_file = job_dir / f"{job['student']}-{job['lab']}.json"
                job_file.write_text(json.dumps(job), encoding="utf-8")
                if not worker.grade(job_file, job["timeout"] + 60):
                    worker.stop()
                    worker = None
        finally:
            if worker is not None:
                worker.stop()

    threads = [threading.Thread(target=serve, args=(k,)) for k in range(max(1, jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shutil.rmtree(job_dir, ignore_errors=True)


# --- the gradebook and the reports ------------------------------------------------------

def merge_into_gradebook(db: Path, done: list[Submission]) -> None:
    """Record the scores of the submissions ``done`` in the run's gradebook ``db``."""
    import warnings

    from nbgrader.api import Gradebook

    with warnings.catch_warnings(), Gradebook(f"sqlite:///{db}", COURSE_ID) as gb:
        # nbgrader 0.9's session use makes SQLAlchemy 2 warn; the rows are written all the same
        warnings.simplefilter("ignore")
        for s in done:
            gb.update_or_create_student(s.student)
            submission = gb.update_or_create_submission(s.lab, s.student)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    got = s.cells.get(grade.name)
                    grade.auto_score = got[0] if got else 0.0
            gb.db.commit()


def write_reports(out: Path, done: list[Submission], settings: dict) -> None:
    """``grades.csv``, ``cell_grades.csv`` and ``report.json`` in ``out``."""
    import nbgrader

    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "lab", "score", "max_score", "status", "flags",
                         "feedback", "seconds"])
        for s in done:
            writer.writerow([s.student, s.lab, f"{s.score:g}", f"{s.max_score:g}", s.status,
                             " | ".join(s.flags), s.feedback, s.seconds])
    with open(out / "cell_grades.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "lab", "exercise", "test", "score", "max_score"])
        for s in done:
            for name, (score, most) in sorted(s.cells.items()):
                exercise, _, part = name.rpartition("-")
                writer.writerow([s.student, s.lab, exercise, part, f"{score:g}", f"{most:g}"])
    report = {"tool": f"nbgrader {nbgrader.__version__}",
              "python": platform.python_version(),
              "graded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "by": "tests/grading/grade.py", "settings": settings,
              "submissions": [asdict(s) | {"path": str(s.path)} for s in done]}
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def warm_matplotlib(mpl: Path) -> None:
    """Build matplotlib's font cache once, read by every kernel (which may not write it)."""
    mpl.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], check=False,
                   env=os.environ | {"MPLCONFIGDIR": str(mpl)}, capture_output=True)


def grade(submissions: Path, labs: Path, out: Path, *, timeout: float = 600,
          cell_timeout: int = CELL_TIMEOUT_S, jobs: int = 1,
          watch: list[Path] | None = None, check_environment: bool = True
          ) -> list[Submission]:
    """Grade every submission in ``submissions`` against the labs in ``labs`` into ``out``.

    ``watch``: folders compared before and after each submission, besides the
    submissions, the labs and the run's gradebook (default: the repository).
    ``check_environment``: also compare the Python environment before and after the run.
    """
    submissions, labs, out = submissions.absolute(), labs.resolve(), out.resolve()
    known = labs_of(labs)
    todo = find_submissions(submissions, known)
    if out.resolve() in (submissions.resolve(), labs.resolve(), ROOT):
        raise InputError(f"--out {out}: must be a folder of its own, not the submissions, "
                         "the labs or the repository")
    if out.exists() and any(out.iterdir()) and not (out / "report.json").is_file():
        raise InputError(f"--out {out}: exists and is not an earlier grading run (no "
                         "report.json); expected a new folder or one `make grade` wrote")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy2(labs / "gradebook.db", out / "gradebook.db")
    mpl = out / ".matplotlib"
    warm_matplotlib(mpl)
    watch = [ROOT] if watch is None else watch
    watch = watch + [submissions.resolve(), labs.resolve(), out / "gradebook.db"]
    environment = [Path(sys.prefix)] if check_environment else []
    venv_before = snapshot(environment, skip=("__pycache__",))
    started = time.monotonic()

    pending = []
    for s in todo:
        try:
            job = start(s, labs, out, mpl, timeout=timeout, cell_timeout=cell_timeout,
                        watch=watch)
        except Exception as err:  # noqa: BLE001 — one submission must not stop the run
            s.status, s.flags = "grader error", [f"{type(err).__name__}: {err}"]
            job = None
        if job is not None:
            pending.append((s, job))
    (out / "logs").mkdir(exist_ok=True)
    run_workers([job for _, job in pending], jobs, out / "logs")
    for s, job in pending:
        finish(s, job, out, "see logs/worker-*.log")
    done = todo
    merge_into_gradebook(out / "gradebook.db", done)
    for s in done:
        print(f"{s.student:>16s} {s.lab:24s} {s.score:5g} / {s.max_score:<5g} {s.status}"
              + (f"  [{'; '.join(s.flags)[:200]}]" if s.flags else ""))
    venv_changes = changes(venv_before, snapshot(environment, skip=("__pycache__",)))
    if venv_changes:
        print(f"warning: the Python environment changed during grading: {venv_changes[:5]}",
              file=sys.stderr)
    write_reports(out, done, {"timeout_s": timeout, "cell_timeout_s": cell_timeout,
                              "jobs": jobs, "labs": str(labs),
                              "submissions": str(submissions),
                              "wall_s": round(time.monotonic() - started, 1),
                              "environment_changes": venv_changes[:20]})
    shutil.rmtree(mpl, ignore_errors=True)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path,
                        help="folder of submissions: <student>/<lab>.ipynb or "
                             "<student>/<lab>/<lab>.ipynb")
    parser.add_argument("--labs", type=Path, default=ROOT / "_build" / "labs" / "graded",
                        help="the graded labs built by `make labs` (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "grades",
                        help="where grades, feedback and the gradebook go (replaced)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds one notebook may take in all (default: %(default)s)")
    parser.add_argument("--cell-timeout", type=int, default=CELL_TIMEOUT_S,
                        help="seconds one cell may run before it is interrupted "
                             "(default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="submissions graded side by side (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.cell_timeout <= 0 or args.jobs < 1:
        parser.error("--timeout and --cell-timeout must be > 0 and --jobs >= 1")
    try:
        done = grade(args.submissions, args.labs, args.out, timeout=args.timeout,
                     cell_timeout=args.cell_timeout, jobs=args.jobs)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{len(done)} submissions graded: {args.out / 'grades.csv'}, feedback in "
          f"{args.out / 'feedback'}, gradebook {args.out / 'gradebook.db'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
