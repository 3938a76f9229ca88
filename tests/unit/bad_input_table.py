"""The one check behind every bad-input table (tests/unit/test_bad_input*.py).

Each table is a list of ``(call, exception, words)``: calling ``call()`` must raise
``exception`` (or a subclass) with a message that contains every one of ``words`` —
the argument's name, the offending value and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

Case = tuple[Callable[[], object], type[BaseException], Sequence[str]]


def case_ids(cases: Sequence[Case], prefix: str) -> list[str]:
    """``prefix0``, ``prefix1``, …: stable ids, so a failure names its row of the table."""
    return [f"{prefix}{i}" for i in range(len(cases))]


def assert_clear_error(call: Callable[[], object], exc: type[BaseException],
                       words: Sequence[str]) -> None:
    """``call()`` raises ``exc`` and its message contains each of ``words``."""
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    missing = [w for w in words if w not in message]
    assert not missing, f"{missing!r} missing from: {message}"
