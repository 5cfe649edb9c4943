# shadowdiff — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Installs come from the locks only (exact versions, every file's hash checked), from the package index alone: the
# machine's pip configuration (extra indexes, find-links, constraints) is ignored, so every machine gets the same.
LOCKED_PIP := PIP_CONFIG_FILE=/dev/null $(BIN)/pip --isolated --disable-pip-version-check
LOCK := $(BIN)/uv pip compile pyproject.toml requirements/build.in --universal --python-version 3.11 \
	--generate-hashes --no-header --quiet

.PHONY: run shell test lint typecheck pytest bench clean install install-test lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { apt-get install -y python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }

$(STAMP): pyproject.toml requirements/base.txt | $(BIN)/python
	$(LOCKED_PIP) install -q --require-hashes -r requirements/base.txt
	$(LOCKED_PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

$(TEST_STAMP): pyproject.toml requirements/test.txt | $(BIN)/python
	$(LOCKED_PIP) install -q --require-hashes -r requirements/test.txt
	$(LOCKED_PIP) install -q --no-deps --no-build-isolation -e .
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

## Refresh the locks (requirements/*.txt) from pyproject.toml, keeping current pins; UPGRADE=1: newest allowed.
lock: $(TEST_STAMP)
	$(LOCK) $(if $(UPGRADE),--upgrade) -o requirements/base.txt
	$(LOCK) $(if $(UPGRADE),--upgrade) --extra test -o requirements/test.txt

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache *.db *.db-wal *.db-shm logs
