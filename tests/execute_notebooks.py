"""Re-execute the chapters and store their outputs in place (``make execute``).

    python tests/execute_notebooks.py                    # every notebooks/NN_*.ipynb
    python tests/execute_notebooks.py notebooks/01_cross_entropy.ipynb

Before running, the first code cell is made the Colab install cell generated
from ``_config.yml`` (the repository URL, the project's one setting for it) and
``.ci/requirements-data.txt`` (the data packages): when ``course_lib`` is not
importable (a fresh Colab runtime) it installs the course and its data; anywhere
else it does nothing. ``tests/test_book_structure.py`` checks it is current.

Each notebook runs top to bottom in a fresh kernel of the current Python
environment, with its own folder as working directory. Widget state is stored
(so JupyterLab shows the last view of each control), per-cell timing metadata
is not (it would change on every run), and the file is replaced atomically, so
an interrupted run never leaves a half-written notebook. The wall time of each
notebook is printed: it is the number to compare with the chapter's budget.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
INSTALL_TAG = "colab-install"


def colab_cell_source() -> str:
    """Source of the guarded install cell, built from the project's own settings."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    url = config["repository"]["url"]
    data = [line.split("#")[0].strip()
            for line in (ROOT / ".ci" / "requirements-data.txt").read_text().splitlines()]
    data = " ".join(d for d in data if d)
    return (
        "# Colab (or any Python without the course): install course_lib and its data.\n"
        "# Everywhere else this cell does nothing.\n"
        "import importlib.util\n\n"
        'if importlib.util.find_spec("course_lib") is None:\n'
        f'    %pip install -q "git+{url}"\n'
        f"    %pip install -q --no-deps {data}"
    )


def ensure_colab_cell(nb: nbformat.NotebookNode) -> bool:
    """Make the first code cell the current install cell; return True if it changed."""
    source = colab_cell_source()
    code = [c for c in nb.cells if c.cell_type == "code"]
    if code and INSTALL_TAG in code[0].metadata.get("tags", []):
        changed = code[0].source != source
        code[0].source = source
        return changed
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INSTALL_TAG, "remove-cell"]})
    first_code = nb.cells.index(code[0]) if code else len(nb.cells)
    nb.cells.insert(first_code, cell)
    return True


def execute(path: Path, timeout: int, allow_errors: bool = False) -> float:
    """Execute ``path`` in place; return the wall time in seconds.

    ``allow_errors`` keeps going after a cell raises (``make spread`` uses it on copies).
    """
    nb = nbformat.read(path, as_version=4)
    ensure_colab_cell(nb)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        store_widget_state=True,
        record_timing=False,
        allow_errors=allow_errors,
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    if not _has_widgets(nb):
        nb.metadata.pop("widgets", None)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".ipynb.tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        nbformat.write(nb, handle)
    os.replace(tmp, path)
    return elapsed


def _has_widgets(nb: nbformat.NotebookNode) -> bool:
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return bool(state.get("state"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to execute (default: notebooks/[0-9]*.ipynb)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    total = 0.0
    for path in paths:
        print(f"executing {path.name} ...", flush=True)
        seconds = execute(path.resolve(), args.timeout)
        total += seconds
        print(f"  {path.name}: {seconds:.1f} s", flush=True)
    print(f"{len(paths)} notebook(s) in {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
