# LLM Scaling Laws — Principles and Engineering Practice
#
#   make book      set up .venv (first time, or when a requirements file changes) and
#                  build the HTML book from the outputs stored in the notebooks
#   make test      the same set-up, then every check: the import layers, unit tests, nbval
#                  twice (the chapters, then their lab checks under a second arithmetic),
#                  strict build beside the autograder's end-to-end test, browser
#   make execute   re-run the notebooks and store their outputs
#   make lab       open JupyterLab on the notebooks
#   make labs      write student copies (solutions stubbed) and instructor copies to _build/labs,
#                  and the graded labs (nbgrader release, hidden tests, gradebook) to
#                  _build/labs/graded
#   make grade SUBMISSIONS=folder   autograde submitted labs offline: grades CSV, feedback
#                  pages and gradebook in _build/grades (book/instructors.md)
#   make spread    run chapters under each arithmetic CI uses and report how far every
#                  tolerance check moved (to choose tolerances; see tests/README.md)
#   make gpu-check on a machine with a GPU: unit tests, GPU-mode notebook checks and a
#                  bf16 benchmark, reported under notebooks/results/gpu/ (under 8 minutes)
#
# Options: PYTHON=python3.11 (interpreter for the venv), DEVICE=cuda|mps|cpu (the device the
# notebooks and tests use; default: auto-detect), NOTEBOOKS="notebooks/01_*.ipynb" (a subset).

PYTHON    ?= python3
VENV      ?= .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
NOTEBOOKS ?= $(sort $(wildcard notebooks/[0-9]*.ipynb))
PYTEST    := $(BIN)/python -m pytest
# nbval compares outputs after tests/nbval_sanitize.cfg; tests/nbval_timeouts.py lets a slow
# or busy machine take its time (nbval's fixed 5 s wait for a finished cell's output included).
NBVAL     := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
             -p nbval_timeouts --nbval-cell-timeout 3600 --nbval-output-timeout 300 \
             --nbval-kernel-startup-timeout 300
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
# The second arithmetic (make nbval-labs): torch's portable kernels instead of the ones
# chosen for this processor, and two threads per kernel (another order of summation).
# Idle threads sleep instead of spinning, so two kernels of two threads share 2 cores.
NB_ENV_2  := ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 \
             OMP_WAIT_POLICY=PASSIVE
LAB_CHECKS = $(patsubst notebooks/%,_build/labs/check/%,$(NOTEBOOKS))

# On a GPU nearly every training output differs from the CPU's stored text: nbval runs in
# lax mode, where every cell must run without error and the tolerance checks (which raise,
# with their GPU tolerances) decide; no text is compared. See tests/README.md.
ifneq ($(filter cuda% mps,$(DEVICE)),)
NBVAL_MODE ?= --nbval-lax
endif
NBVAL     += $(NBVAL_MODE)

.PHONY: setup book test unit grading book-and-grading nbval nbval-labs book-strict browser \
        execute lab labs grade \
        spread gpu-check clean

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

test: $(STAMP) unit nbval nbval-labs book-and-grading browser
	@echo "All checks passed."

unit: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(PYTEST) -q -n $(WORKERS) tests/unit tests/test_book_structure.py tests/test_labs.py \
	  --doctest-modules course_lib

# The autograder end to end (tests/test_grading.py: chapters 1, 4 and 8 graded as
# submitted solutions, untouched releases, partial and copied answers).
grading: $(STAMP)
	$(PYTEST) -q tests/test_grading.py

# The strict build is one process on one core; the autograder's test runs beside it.
book-and-grading: $(STAMP)
	$(MAKE) --no-print-directory -j2 book-strict grading

# First pass: the chapters as stored, with the arithmetic that wrote them.
nbval: $(STAMP)
	$(NB_ENV) PYTHONPATH=tests $(PYTEST) -q $(NBVAL) -n $(WORKERS) --dist loadfile $(NOTEBOOKS)

# Second pass, under the second arithmetic: each chapter's lab check — its student copy top
# to bottom (stored outputs compared, every self-check "not attempted"), then each exercise's
# mistake (its self-check must fail) and solution (it must pass). tests/build_labs.py.
nbval-labs: $(STAMP)
	$(BIN)/python tests/build_labs.py --check $(NOTEBOOKS)
	$(NB_ENV_2) PYTHONPATH=tests $(PYTEST) -q $(NBVAL) -n $(WORKERS) --dist loadfile \
	  $(LAB_CHECKS)

# Warnings are errors: a broken reference, citation or glue key fails the build.
book-strict: $(STAMP)
	rm -rf _build/html
	$(BIN)/jupyter-book build --keep-going -W .

browser: $(STAMP)
	$(PYTEST) -q tests/browser

execute: $(STAMP)
	$(NB_ENV) $(BIN)/python tests/execute_notebooks.py $(NOTEBOOKS)

spread: $(STAMP)
	$(BIN)/python tests/measure_spread.py $(NOTEBOOKS)

# On a lent GPU machine without .venv: `python tests/gpu_check.py` with any Python that has
# the pinned packages and a CUDA build of torch. `--dry-run` tests the script on a CPU.
gpu-check: $(STAMP)
	$(BIN)/python tests/gpu_check.py

labs: $(STAMP)
	$(BIN)/python tests/build_labs.py
	$(BIN)/python tests/grading/assignments.py --out $(GRADED_LABS)

# Autograde a folder of submissions (one sub-folder per student with <lab>.ipynb or
# <lab>/<lab>.ipynb) against the graded labs, each in a sandbox: tests/grading/grade.py.
GRADED_LABS ?= _build/labs/graded
GRADES      ?= _build/grades
GRADE_JOBS  ?= 2
grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "make grade: SUBMISSIONS is not set; expected" \
	  "SUBMISSIONS=folder with one sub-folder per student" >&2; exit 2; }
	test -f $(GRADED_LABS)/manifest.json || \
	  $(BIN)/python tests/grading/assignments.py --out $(GRADED_LABS)
	$(BIN)/python tests/grading/grade.py "$(SUBMISSIONS)" --labs $(GRADED_LABS) \
	  --out $(GRADES) --jobs $(GRADE_JOBS)

lab: $(STAMP)
	test -x $(BIN)/jupyter-lab || $(BIN)/python -m pip install --quiet "jupyterlab>=4,<5"
	$(BIN)/jupyter-lab notebooks/

clean:
	rm -rf _build
