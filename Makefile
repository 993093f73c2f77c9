# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PORT ?= 8000
# Stage commands (mlops-lab, dvc, mlflow) come from the project's environment.
export PATH := $(BIN):$(PATH)

.PHONY: run setup test lint format serve swarm ui bench lock clean

## run: set up the environment from the lock file, run the whole pipeline, say what it made
run: setup
	dvc repro
	mlops-lab summary

## setup: the virtual environment, exactly requirements/dev.lock (uv removes what the lock dropped)
setup: $(VENV)/.installed

# uv itself, pinned in requirements/uv.txt, in a small environment of its own: `uv pip sync`
# would remove it from .venv, where the lock does not list it.
UV := $(CURDIR)/.uv/bin/uv
export UV_PYTHON_DOWNLOADS := never

$(UV): requirements/uv.txt
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet --disable-pip-version-check --requirement requirements/uv.txt
	touch $@

# Bytecode is compiled once, here: where Python may not write it (PYTHONDONTWRITEBYTECODE, as
# on these machines, or a read-only environment) every process would compile its imports
# again, 4 s of each pipeline stage and 1 s of each dvc command.
$(VENV)/.installed: $(UV) requirements/dev.lock pyproject.toml
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(UV) pip sync --quiet --compile-bytecode requirements/dev.lock
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(UV) pip install --quiet --no-deps --editable .
	touch $@

## test: formatting, lint, then every test tier (integration starts its own PostgreSQL and MLflow)
# Two workers keep both cores busy, so an OpenMP thread (scikit-learn's gradient boosting) that
# spins while it waits burns time the other worker needs: passive waiting saved 10% of a small
# pipeline's CPU and a third of the ablation test's, on a loaded machine (docs/testing.md).
test: setup lint
	OMP_WAIT_POLICY=PASSIVE $(BIN)/pytest --numprocesses 2 --dist loadfile --no-loadscope-reorder \
		--durations=40

DOCKERFILES := Dockerfile mlflow_docker/Dockerfile postgres_docker/Dockerfile nginx_docker/Dockerfile

lint: setup
	$(BIN)/black --check .
	$(BIN)/ruff check .
	$(BIN)/hadolint $(DOCKERFILES)

format: setup
	$(BIN)/black .
	$(BIN)/ruff check --fix .

## serve: the prediction service on 127.0.0.1:PORT (default 8000); MODEL_URI picks the model
serve: setup
	PORT=$(PORT) mlops-lab serve

## swarm: the compose stack on this Docker Swarm manager, on the compose stack's volumes
## (docs/swarm.md, "More than one machine")
swarm: setup
	mlops-lab swarm deploy

## ui: the MLflow UI on the embedded store (config.yaml's), at http://127.0.0.1:5000 (or PORT)
ui: setup
	mlops-lab ui $(if $(filter command line environment,$(origin PORT)),--port $(PORT))

## bench: time a cold and a no-op `dvc repro` in a fresh clone, with peak memory
bench: setup
	$(BIN)/python bench/pipeline.py

## lock: re-resolve every role's lock after changing pyproject.toml's dependencies. dev.lock is
## resolved first and the others within it, so a package has one version in every role.
LOCK := $(UV) pip compile --quiet --python-version 3.11
lock: $(UV)
	$(LOCK) pyproject.toml requirements/tracking-server.in --extra lab --extra spark --extra dev \
		-o requirements/dev.lock
	$(LOCK) pyproject.toml --extra lab -c requirements/dev.lock -o requirements/runtime.lock
	$(LOCK) pyproject.toml -c requirements/dev.lock -o requirements/serve.lock
	$(LOCK) requirements/tracking-server.in -c requirements/dev.lock \
		-o requirements/tracking-server.lock
	# The bench's MLServer peer: the packages it names bare at the versions the lab pins.
	pins=$$(grep -v -e '^#' -e '[<>=]' requirements/mlserver-peer.in | paste -sd'|'); \
	$(LOCK) requirements/mlserver-peer.in -c <(grep -E "^($$pins)==" requirements/dev.lock) \
		--custom-compile-command "make lock" -o requirements/mlserver-peer.lock

## clean: remove the environment and test caches (the runs in the tracking store are kept)
clean:
	rm -rf $(VENV) .uv .pytest_cache .ruff_cache
