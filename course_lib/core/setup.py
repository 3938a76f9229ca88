"""The one call at the top of every chapter: seed, figure style, threads.

``setup_chapter(seed=0)`` seeds Python, NumPy and PyTorch (:func:`~course_lib.core.
seeding.set_seed`), applies the course's figure style and decides how many CPU threads
PyTorch uses:

* ``threads`` given — that many (chapter 13 times single-threaded on purpose);
* else ``$COURSE_THREADS`` if set;
* else ``$OMP_NUM_THREADS`` if set — ``make execute``, ``make nbval`` and CI set it to 1,
  since they run two notebooks side by side on two cores;
* else every core: a learner's notebook gets the whole machine.
"""

from __future__ import annotations

import os

import torch

from course_lib.core.plotting import use_course_style
from course_lib.core.seeding import set_seed
from course_lib.core.validate import require_int

__all__ = ["setup_chapter", "thread_count"]

THREADS_ENV_VAR = "COURSE_THREADS"


def thread_count(threads: int | None = None) -> int:
    """How many threads :func:`setup_chapter` gives PyTorch (rules in the module docstring)."""
    if threads is not None:
        return require_int("threads", threads, 1)
    for name in (THREADS_ENV_VAR, "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            try:
                count = int(value)
            except ValueError:
                count = 0
            if count < 1:
                raise ValueError(f"${name} must be a positive integer; got {value!r}")
            return count
    return os.cpu_count() or 1


def setup_chapter(seed: int = 0, threads: int | None = None) -> None:
    """Seed everything, use the course's figure style, set PyTorch's thread count.

    Call once, in a chapter's first code cell; :func:`thread_count` says how many
    threads it chose.
    """
    set_seed(seed)
    use_course_style()
    torch.set_num_threads(thread_count(threads))
