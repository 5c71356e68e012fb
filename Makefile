# Developer commands. `make run` and `make test` are the README's quick start; .ci/run calls `make test`.
.DEFAULT_GOAL := all
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
ARQ_WORKER ?= batched
# every process measured by make testcov (the tests' subprocesses run elsewhere) writes its data here
COVERAGE := COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/coverage

.PHONY: help system-deps install run sandbox format lint mypy docs pytest test-fast test-arq test testcov bench bench-quick all clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade 'pip>=25.1'
	$(BIN)/python -m pip install -q -e . --group dev
	rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)  ## create .venv with callq and the dev tools

system-deps:  ## the system programs the tests need (redis-server, promtool), with apt where missing
	./.ci/system-deps

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

docs: install  ## the documentation site in site/, built strictly (a warning or a broken link fails)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

pytest: install  ## the tests alone
	$(BIN)/pytest

test-fast: install  ## the pure and single-process tests (all but tests/integration/), in well under a minute
	$(BIN)/pytest -m "not integration"

test-arq: install  ## arq's own tests (its sdist, fetched from PyPI once) on callq's worker; ARQ_WORKER=arq: on arq's
	$(BIN)/python -m tests.arq_suite.run --worker $(ARQ_WORKER)

test: system-deps lint mypy docs pytest test-arq bench-quick  ## everything CI runs: system programs, lint, types, the docs, all tests, arq's tests, the benchmarks' smoke run

testcov: install  ## the tests, arq's suite and the benchmarks' smoke run under branch coverage; fails under the floor
	rm -f .coverage .coverage.*
	$(COVERAGE) run -m pytest
	$(COVERAGE) run -m tests.arq_suite.run --worker $(ARQ_WORKER)
	$(COVERAGE) run -m ops.bench --quick
	$(COVERAGE) combine --quiet
	$(COVERAGE) report

bench: install  ## the benchmarks (minutes), figures printed
	$(BIN)/python -m ops.bench

bench-quick: install  ## the benchmarks in a minute, to check they work (no timing asserted)
	$(BIN)/python -m ops.bench --quick

all: test

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis site .coverage .coverage.* htmlcov
