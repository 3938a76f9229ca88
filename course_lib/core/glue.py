"""Store a value computed in a notebook so that the book's prose can quote it.

``glue("ppl", "12.3")`` in a code cell and ``{glue:text}`ppl``` in a Markdown
cell put the executed value into the sentence, so text never drifts from
results. This writes the same output as ``myst_nb.glue(..., display=False)``
(checked in ``tests/unit/test_glue.py``) without importing Sphinx into every
kernel, and works in a plain Jupyter or Colab session too.

Pass ``fmt`` to store the value already formatted: what nbval compares is then
exactly the precision the page shows, so a change in the tenth digit on other
hardware does not fail the regression test.
"""

from __future__ import annotations

from typing import Any

from IPython.core.formatters import format_display_data
from IPython.display import display

__all__ = ["GLUE_PREFIX", "glue"]

GLUE_PREFIX = "application/papermill.record/"


def glue(name: str, value: Any, fmt: str | None = None) -> None:
    """Record ``value`` under ``name`` for ``{glue:text}`name```.

    ``fmt`` is a format spec such as ``".3f"`` or ``",d"``; with it the stored
    value is the formatted string.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Python identifier such as 'final_loss'; got {name!r}")
    shown = format(value, fmt) if fmt is not None else value
    bundle, metadata = format_display_data(shown)
    metadata["scrapbook"] = {"name": name, "mime_prefix": GLUE_PREFIX}
    display({GLUE_PREFIX + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)
