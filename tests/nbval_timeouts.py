"""pytest plugin: nbval's timeouts, generous enough for a slow laptop or a busy CI machine.

Loaded with ``-p nbval_timeouts`` (``tests/`` on ``PYTHONPATH``; the Makefile does
both). nbval 0.11 has two timeouts:

* ``--nbval-cell-timeout`` (seconds a cell may run; nbval's default 2000) and
  ``--nbval-kernel-startup-timeout`` (default 60) are options; the Makefile sets them.
* After a cell has finished, nbval reads the cell's outputs from the kernel and
  gives up when none arrives for ``output_timeout`` seconds — 5, fixed in
  ``IPyNbCell.__init__`` with no option. A loaded machine can exceed that
  ("Timeout of 5 seconds exceeded waiting for output"), so this plugin adds
  ``--nbval-output-timeout`` and sets the attribute on every collected cell.
"""

from __future__ import annotations

import pytest

DEFAULT_OUTPUT_TIMEOUT = 300


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("nbval").addoption(
        "--nbval-output-timeout", type=float, default=DEFAULT_OUTPUT_TIMEOUT,
        help="seconds nbval waits for a finished cell's next output message "
             f"(nbval's fixed value is 5; default here {DEFAULT_OUTPUT_TIMEOUT})")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    timeout = config.getoption("--nbval-output-timeout")
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval's IPyNbCell
            item.output_timeout = timeout
