"""Kernel start-up file of a graded submission: writes only inside its sandbox.

``tests/grading/grade.py`` copies this file into the IPython start-up folder of
each submission's sandbox, so it runs in the kernel before the first cell.
It installs a Python audit hook (:pep:`578`), which cannot be removed, that

* refuses, with ``PermissionError``, to open a file for writing, or to create,
  remove, rename, link, truncate or change the mode of a path, outside the
  folders named in ``GRADER_ALLOWED_WRITES`` (the submission's own folder and
  the sandbox's home and temporary folders);
* refuses to start processes (``os.system``, ``subprocess``, ``exec``,
  ``spawn``, ``fork``), whose writes a hook could not see;

and notes each refusal, one line each, in the file ``GRADER_EVENTS`` (opened
before the hook, so that noting needs no new ``open``). The grader reports
those lines as flags of the submission. It is a guard for honest mistakes and
simple mischief, not a security boundary: code that loads C through
``ctypes`` can still get past it, which is why the grader also compares the
repository and its own folders before and after each submission.
"""

import os
import sys


def _install() -> None:
    allowed = [os.path.realpath(p) for p in
               os.environ.get("GRADER_ALLOWED_WRITES", "").split(os.pathsep) if p]
    events_fd = os.open(os.environ["GRADER_EVENTS"],
                        os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    path_events = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
                   "os.truncate", "os.utime", "shutil.rmtree", "os.setxattr",
                   "os.removexattr", "os.chflags", "os.lchflags", "os.lchmod"}
    two_path_events = {"os.rename", "os.link", "os.symlink", "shutil.copyfile",
                       "shutil.copymode", "shutil.copystat", "shutil.move"}
    process_events = {"os.system", "subprocess.Popen", "os.exec", "os.posix_spawn",
                      "os.spawn", "os.fork", "os.forkpty", "pty.spawn", "os.startfile"}
    realpath, fsdecode, getcwd, write = os.path.realpath, os.fsdecode, os.getcwd, os.write

    def inside(path: object) -> bool:
        if isinstance(path, int):  # a descriptor already open: its opening was checked
            return True
        try:
            text = fsdecode(path)
            full = realpath(text if os.path.isabs(text) else os.path.join(getcwd(), text))
        except (TypeError, ValueError, OSError):
            return False
        return any(full == a or full.startswith(a + os.sep) for a in allowed)

    def refuse(what: str, target: object) -> None:
        line = f"{what}: {target!r}\n"
        try:
            write(events_fd, line.encode("utf-8", "replace"))
        except OSError:
            pass
        raise PermissionError(f"the grader does not allow {what} outside the submission's "
                              f"folder: {target!r}")

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            wants = (mode is not None and any(m in mode for m in "wax+")) or \
                (mode is None and isinstance(flags, int) and flags & writing)
            if wants and path is not None and not inside(path):
                refuse("writing", path)
        elif event in path_events:
            if args and not inside(args[0]):
                refuse(event, args[0])
        elif event in two_path_events:
            for path in args[:2]:
                if not inside(path):
                    refuse(event, path)
        elif event == "sqlite3.connect":
            database = args[0] if args else None
            if database not in (None, ":memory:", b":memory:", "") and not inside(database):
                refuse(event, database)
        elif event in process_events:
            refuse("starting a process", args[:2] if args else event)

    sys.addaudithook(hook)


if os.environ.get("GRADER_EVENTS"):
    _install()
del _install
