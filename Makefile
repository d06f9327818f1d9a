# Serverless ML: `make demo` runs the whole pipeline locally; `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
# checkov lives in its own environment: its pins clash with aws-sam-cli's
TOOLS := .venv-tools
CHECKOV_VERSION := 3.3.30
# A python3.12 (the Lambda runtime's version): $(PYTHON312) if given, else the first that runs among
# python3.12 on PATH and pyenv's 3.12 installs.
PYTHON312 ?= $(shell for c in python3.12 $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12 2>/dev/null | sort -rV); do \
	$$c -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { command -v $$c; break; }; done)
PY312_DIR = $(dir $(realpath $(PYTHON312)))
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
# `sam build` resolves python3.12 from PATH
SAM = PATH="$(PY312_DIR):$$PATH" $(BIN)/sam

.PHONY: help venv demo demo-tune local bench bench-quick bench-preprocess bench-large bench-ingest bench-serving bench-training bench-tuning openapi security test lint typecheck validate build unit integration e2e packaging clean

help:
	@echo "make demo   - train on data/housing.csv locally (moto + the real state machine) and predict"
	@echo "make demo-tune - a small tuning job on data/housing.csv locally, its trials live (the SDK over HTTP)"
	@echo "make local  - serve the whole API on http://127.0.0.1:3000 (moto, real handlers and state machines)"
	@echo "make test   - ruff, mypy, sam validate --lint, ASL check, sam build, and all pytest suites"
	@echo "make typecheck - mypy over mlcore, mllocal, mlclient and every functions/*/app.py ([tool.mypy])"
	@echo "make bench  - every benchmark, repeated; writes docs/benchmarks.md and docs/*.png"
	@echo "make build  - sam build"
	@echo "make bench-preprocess - peak memory and rows/s of the streaming Preprocess on 200k and 2M rows"
	@echo "make bench-large - distributed Preprocess: peak memory per function, wall time per stage (ARGS=--gib 5)"
	@echo "make bench-ingest - peak memory and MB/s of registering a 256 MiB CSV already in S3"
	@echo "make bench-serving - Predict latency (warm), cold import and size of the built Predict"
	@echo "make openapi - regenerate docs/openapi.json from the API functions' code"
	@echo "make bench-training - training benchmarks (ARGS=--full for the big ones)"
	@echo "make bench-tuning - tuning jobs: quality vs scikit-learn, a 32-trial job's time and cost (ARGS=--quick: small jobs)"
	@echo "make clean  - remove .venv and .aws-sam"

# pip shows what it downloads and installs, with progress bars: the first `make demo` is minutes of it, never silent.
# Updating an existing .venv (pyproject.toml changed), pip's ~170 "Requirement already satisfied" lines are left
# out (its exit status kept); not when creating it, as a pipe would hide pip's progress bars
PIP_PROGRESS := --progress-bar on --disable-pip-version-check
UPDATING := $(wildcard $(BIN)/python)
NOT_SATISFIED := $(if $(UPDATING),| { grep --line-buffered -v '^Requirement already satisfied' || test $$? = 1; })

$(BIN)/.installed: pyproject.toml client/pyproject.toml
	@test -n "$(PYTHON312)" || { echo "python3.12 not found: install it or run make PYTHON312=/path/to/python3.12"; exit 1; }
	@echo $(if $(UPDATING),"updating $(VENV) ($? changed)","creating $(VENV) with $(PYTHON312): the server's, the tools' and the client's dependencies (a few minutes, once)")
	$(if $(UPDATING),,$(PYTHON312) -m venv $(VENV))
	set -o pipefail; $(BIN)/pip install $(PIP_PROGRESS) --upgrade pip $(NOT_SATISFIED)
	set -o pipefail; $(BIN)/pip install $(PIP_PROGRESS) -e ".[dev]" $(NOT_SATISFIED)
	# the client is its own distribution (client/pyproject.toml): installed with every extra for the tests
	set -o pipefail; $(BIN)/pip install $(PIP_PROGRESS) -e "./client[report,pandas,aws]" $(NOT_SATISFIED)
	@echo "$(VENV) is ready"
	@touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/python -m mllocal.demo

demo-tune: venv
	$(BIN)/python -m mllocal.demo --tune

local: venv
	$(BIN)/python -m mllocal.server --port $(or $(PORT),3000)

bench: venv
	$(BIN)/python -m benchmarks.bench

bench-quick: venv
	$(BIN)/python -m benchmarks.bench --quick --out .bench/benchmarks.md

$(TOOLS)/bin/checkov:
	@test -n "$(PYTHON312)" || { echo "python3.12 not found"; exit 1; }
	$(PYTHON312) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --upgrade pip
	$(TOOLS)/bin/pip install --quiet "checkov==$(CHECKOV_VERSION)"

security: $(TOOLS)/bin/checkov
	$(TOOLS)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# one run: [tool.mypy] files and explicit_package_bases name each handler functions.<name>.app
typecheck: venv
	$(BIN)/mypy

validate: venv
	$(SAM) validate --lint
	$(BIN)/python -m mllocal.lint_asl

bench-serving: venv
	POWERTOOLS_TRACE_DISABLED=true POWERTOOLS_METRICS_DISABLED=true $(BIN)/python benchmarks/serving.py

openapi: venv
	$(BIN)/python -m mllocal.openapi

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

test: lint typecheck validate security build
	$(BIN)/python -m pytest tests -q

bench-preprocess: venv
	$(BIN)/python benchmarks/preprocess.py

bench-large: venv
	$(BIN)/python -m benchmarks.large $(ARGS)

bench-ingest: venv
	$(BIN)/python benchmarks/ingest.py

# prints figures, asserts nothing; ARGS=--full for the 1,000,000-row shard and 64 shards
bench-training: venv
	$(BIN)/python benchmarks/training.py $(ARGS)

bench-tuning: venv
	$(BIN)/python -m benchmarks.tuning $(ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam
