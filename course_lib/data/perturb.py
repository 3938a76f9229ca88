"""Typos on demand: character noise for robustness tests (chapter 14).

:func:`add_typos` applies the four edits of a typist's slip — swap two neighbouring
letters, drop a letter, double a letter, hit a neighbouring key — to a chosen fraction
of the letters of a text, reproducibly from a seed.
"""

from __future__ import annotations

import random

from course_lib.core.validate import require_int, require_number

__all__ = ["EDITS", "add_typos"]

EDITS = ("swap", "delete", "insert", "substitute")
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {c: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row))
               for row in _ROWS for i, c in enumerate(row)}


def add_typos(text: str, rate: float, seed: int = 0) -> str:
    """``text`` with about ``rate`` of its letters hit by one random edit each.

    Only ASCII letters are edited (spaces and punctuation stay, so word boundaries
    survive); a substitution uses a neighbouring key on a QWERTY keyboard and keeps the
    case. The same ``text``, ``rate`` and ``seed`` always give the same result.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string; got {type(text).__name__}")
    # checked, not converted: the values as given seed the generator (0 and 0.0 differ)
    require_number("rate", rate, 0, 1, expected="a fraction of letters in [0, 1]")
    require_int("seed", seed, 0, expected="a non-negative integer")
    rng = random.Random(f"{seed}:{rate}:{text}")
    chars, out, i = list(text), [], 0
    while i < len(chars):
        c = chars[i]
        if not (c.isascii() and c.isalpha()) or rng.random() >= rate:
            out.append(c)
            i += 1
            continue
        edit = rng.choice(EDITS)
        nxt = chars[i + 1] if i + 1 < len(chars) else ""
        if edit == "swap" and nxt.isascii() and nxt.isalpha():
            out += [nxt, c]
            i += 2
            continue
        if edit == "insert":
            out += [c, c]
        elif edit == "substitute" or edit == "swap":
            near = rng.choice(_NEIGHBOURS[c.lower()])
            out.append(near.upper() if c.isupper() else near)
        i += 1  # "delete" appends nothing
    return "".join(out)
