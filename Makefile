# RouterOps — the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install services stop run test test-faults bench bench-all load lint fmt

install: $(STAMP)

# Reinstall only when a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -qq --upgrade pip
	@$(PY) -m pip install -qq -r requirements-dev.txt
	@touch $(STAMP)

services:
	@scripts/services.sh start

stop:
	@scripts/services.sh stop

run: install services
	@scripts/run.sh

test: install services
	@scripts/ensure_browser.sh
	@$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: install services
	@$(PY) bench/ingest.py

# Every benchmark with a bar in an issue (several minutes; the 10M-row dashboard load takes longest).
bench-all: bench
	@$(PY) bench/segments.py
	@$(PY) bench/pipeline.py
	@$(PY) bench/dashboard.py

# Fault injection with real processes (own PostgreSQL, Redis, web, workers): prints the loss table.
test-faults: install
	@$(PY) scripts/faults.py

# Sustained load (default 10 minutes): latency, throughput, outbox lag, backlog, memory over time.
load: install
	@$(PY) bench/load.py $(LOAD_ARGS)

lint: install
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

fmt: install
	@$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .
