# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PORT ?= 8000
# Stage commands (mlops-lab, dvc, mlflow) come from the project's environment.
export PATH := $(BIN):$(PATH)

.PHONY: run setup test lint format serve ui bench lock clean

## run: set up the environment from the lock file, run the whole pipeline, show its metrics
run: setup
	dvc repro
	dvc metrics show

## setup: the virtual environment, installed exactly from requirements.lock
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --requirement requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	touch $@

## test: formatting, lint, then every test tier (integration starts its own PostgreSQL and MLflow)
test: setup lint
	$(BIN)/pytest --durations=15

DOCKERFILES := Dockerfile mlflow_docker/Dockerfile postgres_docker/Dockerfile

lint: setup
	$(BIN)/black --check .
	$(BIN)/ruff check .
	$(BIN)/hadolint $(DOCKERFILES)

format: setup
	$(BIN)/black .
	$(BIN)/ruff check --fix .

## serve: the prediction service under gunicorn on PORT (default 8000); MODEL_URI picks the model
serve: setup
	HOST=$${HOST:-127.0.0.1} PORT=$(PORT) mlops-lab serve

## ui: the MLflow UI on the embedded store (config.yaml's), at http://127.0.0.1:5000
ui: setup
	mlops-lab ui

## bench: time a cold and a no-op `dvc repro` in a fresh clone, with peak memory
bench: setup
	$(BIN)/python bench/pipeline.py

## lock: re-resolve requirements.lock after changing pyproject.toml's dependencies
lock: setup
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra tracking-server --python-version 3.11 \
		-o requirements.lock

## clean: remove the environment and test caches (the runs in the tracking store are kept)
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
