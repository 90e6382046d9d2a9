# vizochok-dispatch: every target sets up what it needs, so a fresh clone needs only `make`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000

.DEFAULT_GOAL := help
.PHONY: help install format lint typecheck test test-postgres bench demo run clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml receivers/python/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Python 3.11 or newer is required (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# The signer/verifier distribution (receivers/python) again, editable: edits there are live.
	$(BIN)/python -m pip install --quiet --no-deps -e ./receivers/python
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with its dev tools

format: $(STAMP) ## Format and auto-fix the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: $(STAMP) ## Ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy --strict over the package and the tests
	$(BIN)/mypy

test: $(STAMP) ## Run the tests (PostgreSQL too when VIZOCHOK_TEST_POSTGRES_URL is set)
	$(BIN)/pytest

test-postgres: $(STAMP) ## Run the tests with the local PostgreSQL on 127.0.0.1:5432
	VIZOCHOK_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test $(BIN)/pytest

bench: $(STAMP) ## Run the benchmarks in bench/ (not part of the tests)
	$(BIN)/python -m bench

demo: $(STAMP) ## Run the main job end to end against a demo tenant on 127.0.0.1
	$(BIN)/python -m vizochok_dispatch.demo

run: $(STAMP) ## Start the admin API on the embedded SQLite default (./vizochok.db), migrated
	$(BIN)/vizochok-dispatch db upgrade
	@echo "Create a tenant and its API key: $(BIN)/vizochok-dispatch tenants create NAME"
	@echo "(local tenant backends: VIZOCHOK_ALLOW_HTTP=true VIZOCHOK_ALLOWED_NETWORKS=127.0.0.0/8 make run)"
	@echo "Admin panel: http://127.0.0.1:$(PORT)/panel/ (sign in with the tenant's API key)"
	$(BIN)/vizochok-dispatch serve --host 127.0.0.1 --port $(PORT)

clean: ## Remove the virtualenv, caches and the demo's database
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .demo
