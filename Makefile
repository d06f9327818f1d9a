# Serverless ML: `make demo` runs the whole pipeline locally; `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
# A python3.12 (the Lambda runtime's version): $(PYTHON312) if given, else the first that runs among
# python3.12 on PATH and pyenv's 3.12 installs.
PYTHON312 ?= $(shell for c in python3.12 $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12 2>/dev/null | sort -rV); do \
	$$c -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { command -v $$c; break; }; done)
PY312_DIR = $(dir $(realpath $(PYTHON312)))
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
# `sam build` resolves python3.12 from PATH
SAM = PATH="$(PY312_DIR):$$PATH" $(BIN)/sam

.PHONY: help venv demo test lint validate build unit integration e2e packaging clean bench-training

help:
	@echo "make demo   - train on data/housing.csv locally (moto + the real state machine) and predict"
	@echo "make test   - ruff, sam validate --lint, ASL check, sam build, and all pytest suites"
	@echo "make build  - sam build"
	@echo "make bench-training - training benchmarks (ARGS=--full for the big ones)"
	@echo "make clean  - remove .venv and .aws-sam"

$(BIN)/.installed: pyproject.toml
	@test -n "$(PYTHON312)" || { echo "python3.12 not found: install it or run make PYTHON312=/path/to/python3.12"; exit 1; }
	$(PYTHON312) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/python -m mllocal.demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

validate: venv
	$(SAM) validate --lint
	$(BIN)/python -m mllocal.lint_asl

build: venv
	$(SAM) build

unit: venv
	$(BIN)/python -m pytest tests/unit -q

integration: venv
	$(BIN)/python -m pytest tests/integration -q

e2e: venv
	$(BIN)/python -m pytest tests/e2e -q

packaging: build
	$(BIN)/python -m pytest tests/packaging -q

test: lint validate build
	$(BIN)/python -m pytest tests -q

# prints figures, asserts nothing; ARGS=--full for the 1,000,000-row shard and 64 shards
bench-training: venv
	$(BIN)/python benchmarks/training.py $(ARGS)

clean:
	rm -rf $(VENV) .aws-sam
