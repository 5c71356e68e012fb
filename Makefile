# Developer commands. `make run` and `make test` are the README's quick start; .ci/run calls `make test`.
.DEFAULT_GOAL := all
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# every process measured by make testcov (the tests' subprocesses run elsewhere) writes its data here
COVERAGE := COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/coverage

.PHONY: help install run sandbox format lint mypy pytest test-fast test testcov bench bench-quick all clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade 'pip>=25.1'
	$(BIN)/python -m pip install -q -e . --group dev
	rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)  ## create .venv with callq and the dev tools

run: install  ## a worker against the built-in sandbox portal, with a sample callback
	$(BIN)/callq worker --sandbox --demo

sandbox: install  ## a sandbox Bitrix24 portal on :8024
	$(BIN)/callq sandbox

format: install  ## format and fix imports
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: install  ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

mypy: install  ## mypy --strict over code and tests
	$(BIN)/mypy

pytest: install  ## the tests alone
	$(BIN)/pytest

test-fast: install  ## the pure and single-process tests (all but tests/integration/), in well under a minute
	$(BIN)/pytest -m "not integration"

test: lint mypy pytest bench-quick  ## everything CI runs: lint, types, all tests, the benchmarks' smoke run

testcov: install  ## what `make test` runs, under branch coverage (subprocesses too); fails under the floor
	rm -f .coverage .coverage.*
	$(COVERAGE) run -m pytest
	$(COVERAGE) run -m ops.bench --quick
	$(COVERAGE) combine --quiet
	$(COVERAGE) report

bench: install  ## the benchmarks (minutes), figures printed
	$(BIN)/python -m ops.bench

bench-quick: install  ## the benchmarks in a minute, to check they work (no timing asserted)
	$(BIN)/python -m ops.bench --quick

all: test

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .coverage .coverage.* htmlcov
