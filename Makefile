# pronostico: `make demo` brings the local stack up, `make test` runs every test.
# Both install what is missing first (uv, the locked Python environment, Debian packages).

SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
export PATH := $(HOME)/.local/bin:$(PATH)
export PRONOSTICO_HOME ?= $(CURDIR)/var

VENV := .venv
BIN := $(VENV)/bin
SYSTEM := bootstrap/local/install_system_packages.sh

.PHONY: help install system demo down test lint format bench chaos lambda-zip clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(BIN)/.synced system ## uv, the locked environment and the Debian packages

$(BIN)/.synced: pyproject.toml uv.lock
	bootstrap/local/ensure_uv.sh
	uv sync --locked --all-extras --python 3.11
	@touch $@

system:
	$(SYSTEM) java

demo: install ## the whole local stack with trained models, left running (make down stops it)
	$(BIN)/python -m pronostico.demo

down: ## stop every process make demo started
	@[ -x $(BIN)/python ] && $(BIN)/python -m pronostico.demo --down || true

test: install ## every test: code, data, model, and the stack
	$(SYSTEM) java nginx mariadb chromium
	$(BIN)/pytest

lint: $(BIN)/.synced ## ruff
	$(BIN)/ruff check .

format: $(BIN)/.synced
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: down ## remove local state (var/) and build outputs
	rm -rf var dist build
