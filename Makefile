# pronostico: `make demo` brings the local stack up, `make test` runs every test.
# Both install what is missing first (uv, the locked Python environment, Debian packages).

SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
export PATH := $(HOME)/.local/bin:$(PATH)
export PRONOSTICO_HOME ?= $(CURDIR)/var

VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3
SYSTEM := bootstrap/local/install_system_packages.sh
VENDOR := src/app/static/vendor/.built
CHECKOV := tools/checkov/.venv
AWSCLI := tools/awscli/.venv
GOAL_MODELS := tools/goal-models/.venv
SIMULATOR := tools/iam-simulate/node_modules/.installed

.PHONY: help install system demo down test test-fast rehearse lint format bench chaos lambda-zip aws-release clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(BIN)/.synced $(CHECKOV)/.synced $(AWSCLI)/.synced $(GOAL_MODELS)/.synced $(SIMULATOR) system $(VENDOR) ## uv, the locked environments, the Debian packages, the web's JS

# ensure_uv.sh prints the pinned uv's path: run that one, whatever other uv is on PATH
$(BIN)/.synced: pyproject.toml uv.lock
	uv=$$(bootstrap/local/ensure_uv.sh) && "$$uv" sync --locked --all-extras --python 3.11
	@touch $@

# checkov has an environment of its own: its pins clash with Airflow's.
$(CHECKOV)/.synced: tools/checkov/pyproject.toml tools/checkov/uv.lock
	uv=$$(bootstrap/local/ensure_uv.sh) && "$$uv" sync --locked --project tools/checkov --python 3.11
	@touch $@

# penaltyblog and statsmodels, the references tests/model/test_strong_baselines.py checks football.py against
$(GOAL_MODELS)/.synced: tools/goal-models/pyproject.toml tools/goal-models/uv.lock
	uv=$$(bootstrap/local/ensure_uv.sh) && "$$uv" sync --locked --project tools/goal-models --python 3.11
	@touch $@

# the AWS CLI 1.x for the deploy rehearsal's instances and the guide's commands (AWS_ENDPOINT_URL-aware)
$(AWSCLI)/.synced: tools/awscli/pyproject.toml tools/awscli/uv.lock
	uv=$$(bootstrap/local/ensure_uv.sh) && "$$uv" sync --locked --project tools/awscli --python 3.11
	@touch $@

# the IAM policy simulator that judges every request the rehearsal's AWS stand-in receives
$(SIMULATOR): tools/iam-simulate/package.json tools/iam-simulate/package-lock.json
	$(SYSTEM) node
	cd tools/iam-simulate && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

# the web pages' JS and CSS libraries, from the npm registry (package-lock.json) into src/app/static/vendor/,
# with python3 alone (no node); release.sh vendors the same way
$(VENDOR): src/app/frontend/package-lock.json src/app/frontend/build.sh src/app/frontend/vendor.py
	src/app/frontend/build.sh
	@touch $@

system:
	$(SYSTEM) java

# only what the stack runs: the tools the tests and the rehearsal use (checkov, the AWS CLI, the IAM simulator) wait
demo: $(BIN)/.synced $(VENDOR) ## the whole local stack with trained models, left running (make down stops it)
	$(SYSTEM) java nginx
	$(BIN)/python -m pronostico.local.demo

down: ## stop every process make demo started
	@[ -x $(BIN)/python ] && $(BIN)/python -m pronostico.local.demo --down || true

test: install ## every test: code, data, model, the stack, and the deploy rehearsal
	$(SYSTEM) java nginx mariadb chromium systemd rehearsal
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest

# the markers tell the truth (tests/tiers.py fails a test that starts one of the first four unmarked); slow leaves out
# the few tests of over ten seconds that need none of them (the strong baselines against their reference packages)
FAST := not spark and not airflow and not browser and not rehearsal and not chaos_only

test-fast: install ## the tests that need no Spark, Airflow, browser or deploy rehearsal (about a minute)
	$(SYSTEM) nginx mariadb systemd
	$(BIN)/pytest -m "$(FAST)"

rehearse: install ## the first AWS deploy against the stand-in, as the guide does it, into docs/DEPLOY.md
	$(SYSTEM) java nginx mariadb rehearsal
	$(BIN)/pytest tests/deploy; status=$$?; $(BIN)/python -m benchmarks --assemble deploy; exit $$status

bench: install ## measure serving, model time, the pipeline, freshness, matchups quality and tuning, and the prediction log at 10M rows (log_scale) into docs/BENCHMARKS.md (ONLY=serving ...)
	$(SYSTEM) java nginx wrk
	$(BIN)/python -m benchmarks $(ONLY)

chaos: install ## every fault test, long ones included, into docs/RELIABILITY.md
	$(SYSTEM) java nginx mariadb wrk
	$(BIN)/pytest -m chaos; status=$$?; $(BIN)/python -m benchmarks --assemble reliability; exit $$status

# packaging imports the standard library only, so no environment is needed
lambda-zip: ## the trigger Lambda's package: dist/lambda_trigger.zip
	PYTHONPATH=src $(PYTHON) -m pronostico.orchestration.packaging lambda-zip dist/lambda_trigger.zip

lint: $(BIN)/.synced ## ruff and the import contracts (pyproject.toml [tool.importlinter])
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

format: $(BIN)/.synced
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# needs python3, git, tar and gzip (and the AWS CLI to upload), not `make install`
aws-release: ## build the AWS release in dist/release/ (RELEASE_BUCKET=... also uploads it)
	PYTHON=$(PYTHON) bootstrap/aws/release.sh $(if $(RELEASE_BUCKET),--bucket $(RELEASE_BUCKET))

clean: down ## remove local state (var/) and build outputs
	rm -rf var dist build
