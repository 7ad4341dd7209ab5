# The two commands of the README. Each one sets itself up on a fresh machine first:
# a virtual environment in .venv, the Python packages, and the local DynamoDB (dynalite, npm).
#
#   make up      run the whole stack on http://127.0.0.1:8080 (extra flags: make up ARGS="--port 9090")
#   make test    run the test suite (extra pytest arguments: make test PYTEST_ARGS="tests/stack -x")

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.cedarflow-installed

.PHONY: up test setup lint clean-data

up: setup
	$(BIN)/cedarflow up $(ARGS)

test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

setup: $(INSTALLED)
	$(BIN)/python -m gateway.stack.dynamodb_server --install

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(INSTALLED)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Removes the default data directory of `make up` (every experiment, run and model in it).
clean-data:
	rm -rf .cedarflow
