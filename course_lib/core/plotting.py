"""The course's figure style: one call, no hidden state beyond matplotlib's rcParams.

Colours are the Okabe–Ito palette, which stays distinguishable for readers
with the common forms of colour-vision deficiency and in greyscale print.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib as mpl

__all__ = ["PALETTE", "COURSE_RC", "use_course_style", "course_style"]

#: Okabe & Ito (2008), "Color Universal Design".
PALETTE: dict[str, str] = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}

COURSE_RC: dict[str, object] = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "figure.constrained_layout.use": True,
    "axes.prop_cycle": mpl.cycler(color=[PALETTE[k] for k in (
        "blue", "orange", "green", "vermillion", "sky", "purple", "black")]),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.frameon": False,
    "lines.linewidth": 2.0,
    "font.size": 10,
    "svg.hashsalt": "course",  # stable SVG ids between runs
}


def use_course_style() -> None:
    """Apply the course style to every later figure in this process."""
    mpl.rcParams.update(COURSE_RC)


@contextmanager
def course_style() -> Iterator[None]:
    """Apply the course style inside a ``with`` block only."""
    with mpl.rc_context(COURSE_RC):
        yield
