# The two commands of the README. Each creates or reuses .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,regions]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/roam demo

test: $(STAMP)
	@test -x /usr/bin/chromium || { echo "Chromium is missing: apt-get install -y chromium" >&2; exit 1; }
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench.token
	$(BIN)/python -m bench.sso
	$(BIN)/python -m bench.proxy
	$(BIN)/python -m bench.proxy_parts
