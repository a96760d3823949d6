# Two commands: `make run` (a node on embedded defaults) and `make test` (everything).
# Both create .venv when missing and install what is needed; when nothing changed
# the install step is a stamp check and costs nothing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: run test lint typecheck unit bench setup clean

setup: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $@

run: $(STAMP)
	$(BIN)/aria-node

lint: $(STAMP)
	$(BIN)/ruff check aria_actors tests benchmarks bin/aria-node
	$(BIN)/ruff format --check aria_actors tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict aria_actors

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck unit

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench_runtime.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
