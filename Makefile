# Two commands on a fresh machine with Python 3.11, 3.12 or 3.13: `make run` and `make test`.
# (Azure Functions runs 3.10-3.13; the code needs 3.11 or later: asyncio.timeout, StrEnum.)
# Another interpreter in its own venv: `make test PY=python3.13 VENV=.venv313`.
PY ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint migrate bench outdated clean azurite

$(STAMP): requirements.txt requirements-dev.txt
	$(PY) scripts/check_python.py
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

# Another port: `make run PORT=7080` or `FUNCTIONS_HTTPWORKER_PORT=7080 make run`.
PORT ?= $(or $(FUNCTIONS_HTTPWORKER_PORT),7071)

run: $(STAMP)  ## install, migrate + seed the embedded SQLite database, serve on http://127.0.0.1:$(PORT)
	$(BIN)/python -m local_host --port $(PORT)

test: $(STAMP)  ## the whole suite: lint, types, unit, integration, multi-process storms; coverage at the end
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q --cov --cov-report=term

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

migrate: $(STAMP)
	$(BIN)/python -m core.storage.migrate --seed

bench: $(STAMP)
	$(BIN)/python -m bench.all

AZURITE := tools/azurite/node_modules/.bin/azurite

$(AZURITE): tools/azurite/package.json tools/azurite/package-lock.json
	npm ci --prefix tools/azurite --no-audit --no-fund --loglevel=error
	touch $(AZURITE)

# The storage emulator on its default ports (UseDevelopmentStorage=true), data under .data/azurite.
azurite: $(AZURITE)
	mkdir -p .data/azurite
	$(AZURITE) --silent --skipApiVersionCheck --loose --disableTelemetry --location .data/azurite

outdated: $(STAMP)  ## the pinned packages that have newer releases
	$(BIN)/pip list --outdated --disable-pip-version-check

clean:
	rm -rf .venv .venv313 .data tools/azurite/node_modules .pytest_cache .coverage .coverage.* htmlcov .mypy_cache .ruff_cache
	rm -rf test-output .hypothesis
