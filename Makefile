# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv when it is
# missing and (re)install the project into it, so they work on a fresh clone and are idempotent.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# What the test suite needs beyond the demo: pytest and ruff, Ray, tonic (event datasets) and the SNN
# libraries `bench layer` compares against (snnTorch, Norse, Sinabs, SpikingJelly).
TEST_EXTRAS ?= test,ray,neuromorphic,peers
TEST_STAMP  := $(VENV)/.installed-test
# Pin torch to the build this machine family ships on disk; pip would otherwise pull several GB.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
# The GPU machines' Triton, beside the venv: the compile check (tests/test_compile_check.py) compiles
# every kernel with it too, through PYTHONPATH, without replacing the venv's own.
TRITON_SIDE := $(VENV)/triton36/triton/__init__.py

# Bytecode: pip's own compile step byte-compiles every installed file (torch alone is over ten thousand,
# about two minutes on two cores) although a run imports a third of them. So pip installs with
# --no-compile and Python writes the bytecode of each module the first time it is imported, once. That
# needs bytecode writing on in the venv this Makefile owns, also where the environment turns it off
# (PYTHONDONTWRITEBYTECODE; then every process would compile its ~3,000 imports again, 10+ s each).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test lint format setup setup-test env leaderboard clean-demo compile-table

# The venv is made without ensurepip (5 s, most of it byte-compiling pip) where the host's pip can
# install into it (pip >= 22.3: --python); the first install then puts pip into the venv, uncompiled.
# Decided when the venv is made, not each time make starts (the check imports pip: about a second).
$(BIN)/python:
	if $(PYTHON) -m pip --python "$$($(PYTHON) -c 'import sys; print(sys.executable)')" --version >/dev/null 2>&1; \
	then $(PYTHON) -m venv --without-pip $(VENV); else $(PYTHON) -m venv $(VENV); fi

# One pip call (one resolution) for pip, torch and the project; `make demo` needs nothing more. A venv
# without pip yet is installed into by the host's pip.
$(STAMP): pyproject.toml | $(BIN)/python
	if [ -x $(BIN)/pip ]; then pip="$(BIN)/pip"; else pip="$(PYTHON) -m pip --python $(BIN)/python"; fi; \
	$$pip install -q --no-compile pip $(TORCH) -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q --no-compile -e ".[$(TEST_EXTRAS)]"
	touch $(TEST_STAMP)

$(TRITON_SIDE): | $(STAMP)
	$(BIN)/pip install -q --no-compile --target $(VENV)/triton36 triton==3.6.0 --no-deps

setup: $(STAMP)

setup-test: $(TEST_STAMP)

# The demo writes to an untracked folder so committed results never make it skip its cells. Its three
# suites run in one sweep (one start-up, one worker pool), the longest first so no core idles at the
# end; the sweep prints each suite's leaderboard, then the figures of the demo's own results.
DEMO_RESULTS := build/demo/digits.jsonl build/demo/digits_spiking.jsonl build/demo/digits_conv_spiking.jsonl
demo: setup
	$(BIN)/snnbench run suites/digits_spiking.yaml suites/digits.yaml suites/digits_conv_spiking.yaml --results-dir build/demo --force
	$(BIN)/snnbench plot $(DEMO_RESULTS) --out build/demo/plots

# The tests are single-threaded (tests/conftest.py): one pytest worker per core halves the wall time
# on the 2-core CI machine. TEST_JOBS=0 runs them in this process (a debugger, -x, -s).
TEST_JOBS ?= auto
test: lint $(TRITON_SIDE)
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist worksteal

# ruff's lint rules and format, and the layer contracts (pyproject's [tool.ruff] and [tool.importlinter]).
# `make format` rewrites the tree the way `ruff format --check` wants it.
lint: setup-test
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/lint-imports

env: setup
	$(BIN)/snnbench env

# Registers, spills and shared memory of every kernel for sm_80/sm_90, both Tritons, into docs/kernels.md.
compile-table: setup $(TRITON_SIDE)
	$(BIN)/python scripts/compile_table.py

leaderboard: setup
	$(BIN)/snnbench leaderboard --out results/LEADERBOARD.md

format: setup-test
	$(BIN)/python -m ruff format .

clean-demo:
	rm -rf build/demo
