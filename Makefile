# Two commands: `make run` (a node on embedded defaults) and `make test` (everything).
# Both create .venv when missing and install what is needed; when nothing changed
# the install step is a stamp check and costs nothing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: run console test lint typecheck unit bench bench-node setup clean

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
	@echo "aria-node on the embedded defaults; attach a console from another terminal with:"
	@echo "    $(BIN)/aria-console            (or: make console)"
	$(BIN)/aria-node

console: $(STAMP)
	$(BIN)/aria-console

lint: $(STAMP)
	$(BIN)/ruff check aria_actors tests benchmarks bin/aria-node bin/aria-console
	$(BIN)/ruff format --check aria_actors tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict aria_actors

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck unit

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench_runtime.py

bench-node: $(STAMP)
	$(BIN)/python benchmarks/bench_node.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
