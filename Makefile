# tfjanitor - `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# sam build needs python3.13 for the layer's BuildMethod; pyenv provides it here.
SAM_ENV := PYENV_VERSION=3.11.7:3.12.1:3.13.0 SAM_CLI_TELEMETRY=0
ENV ?= seoul

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-unit test-integration test-e2e lint docs validate build deploy stackset bench bench-deployed cost clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/.installed ## create .venv with the package, moto, SAM CLI and test tools

demo: setup ## run a sweep on the embedded emulator against a backend real Terraform made
	$(BIN)/python scripts/demo.py

test: setup ## run every test (unit, emulator integration, real-terraform end to end)
	$(BIN)/python -m pytest

test-unit: setup ## pure domain tests, no network
	$(BIN)/python -m pytest tests/unit

test-integration: setup ## engine, CLI and handler against moto server
	$(BIN)/python -m pytest tests/integration

test-e2e: setup ## the real terraform binary against moto server
	$(BIN)/python -m pytest tests/e2e

lint: setup ## ruff lint and format check, mypy (strict on the pure rooms), the docs site built with --strict (broken links, pages not in the nav)
	$(BIN)/ruff check layers functions tests scripts bench
	$(BIN)/ruff format --check layers functions tests scripts bench
	$(BIN)/mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

docs: setup ## write the generated docs (finding kinds, template parameters, make cost's table, the bench's tables)
	$(BIN)/python scripts/docs.py

validate: setup ## sam validate --lint (offline)
	$(SAM_ENV) $(BIN)/sam validate --lint

build: setup ## sam build (layer built for python3.13 / arm64)
	$(SAM_ENV) $(BIN)/sam build

deploy: build ## sam deploy --config-env $(ENV) (see samconfig.toml)
	$(SAM_ENV) $(BIN)/sam deploy --config-env $(ENV)

stackset: build ## plain CloudFormation for a StackSet (build/stackset/) and the commands to deploy it to an OU
	$(BIN)/python scripts/stackset.py

bench: setup ## API calls, bytes, time and memory: tfjanitor vs a naive scanner; then the sweeper as deployed
	$(BIN)/python -m bench
	$(SAM_ENV) $(BIN)/python -m bench.as_deployed

bench-deployed: setup ## the built sweeper under the runtime interface client at its MemorySize and CPU share
	$(SAM_ENV) $(BIN)/python -m bench.as_deployed $(BENCH_ARGS)

cost: setup ## what one region's stack costs a month at the defaults (from the template and make bench's figures)
	$(BIN)/python scripts/cost.py

clean: ## remove build and run outputs (keeps .venv)
	rm -rf .aws-sam build demo-output bench/bench-output .pytest_cache .cache
