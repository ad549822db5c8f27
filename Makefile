# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint typecheck unit bench-inprocess bench-http bench-wrk bench-weight-loss bench-probes bench-instructions bench-paired demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/cds serve

demo: $(RUN_STAMP)
	$(BIN)/cds demo

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

unit: $(DEV_STAMP)
	$(BIN)/pytest -q

test: lint typecheck
	$(BIN)/pytest --cov --cov-report=term:skip-covered

bench-inprocess: $(DEV_STAMP)
	$(BIN)/python -m bench.inprocess

bench-http: $(DEV_STAMP)
	$(BIN)/python -m bench.http

bench-wrk: $(DEV_STAMP)
	$(BIN)/python -m bench.wrk

bench-weight-loss: $(DEV_STAMP)
	$(BIN)/python -m bench.weight_loss

bench-probes: $(DEV_STAMP)
	$(BIN)/python -m bench.probes

bench-instructions: $(DEV_STAMP)
	$(BIN)/python -m bench.instructions

bench-paired: $(DEV_STAMP)
	$(BIN)/python -m bench.paired

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
