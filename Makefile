# The two commands of the README. Each one sets itself up on a fresh machine first:
# a virtual environment in .venv, the Python packages, and the local DynamoDB (dynalite, npm).
#
#   make up      run the whole stack on http://127.0.0.1:8080 (extra flags: make up ARGS="--port 9090")
#   make test    run the test suite (extra pytest arguments: make test PYTEST_ARGS="tests/stack -x")

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.cedarflow-installed

.PHONY: up test setup browser lint clean-data

up: setup
	$(BIN)/cedarflow up $(ARGS)

test: setup browser
	$(BIN)/pytest $(PYTEST_ARGS)

# The browser sign-in tests drive a headless Chromium (Debian/Ubuntu package `chromium`).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  { echo "make test needs Chromium for the browser tests: install the chromium package" >&2; exit 1; }

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
