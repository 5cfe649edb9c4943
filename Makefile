# shadowdiff — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run shell test lint typecheck pytest bench clean install install-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { apt-get install -y python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP) $@

install: $(STAMP)
install-test: $(TEST_STAMP)

## Start V1 (:8001), V2 (:8002), the proxy (:8000) and the admin plane (:8900) on SQLite.
run: $(STAMP)
	$(BIN)/shadowdiff up

## A shell with .venv/bin on PATH, so `shadowdiff promote ...` works as the README shows; `exit` to leave.
shell: $(STAMP)
	@echo "shadowdiff is on PATH in this shell ($(CURDIR)/$(BIN)); type exit to leave."
	@PATH="$(CURDIR)/$(BIN):$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)" $${SHELL:-/bin/sh}

## Lint, type-check and run the whole test suite.
test: $(TEST_STAMP) lint typecheck pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

pytest: $(TEST_STAMP)
	$(BIN)/pytest

## Side-by-side throughput and latency: direct, shadowdiff (mirror off/on), nginx mirror.
bench: $(TEST_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache *.db *.db-wal *.db-shm logs
