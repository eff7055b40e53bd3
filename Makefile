# The two commands of the README. Each creates or reuses .venv and installs what it needs.
# The venv is made from Debian's CPython when the machine has it and it can make venvs: it
# is built with PGO and LTO, and the gateway's proxy needs ~15 % less CPU on it than on a
# CPython built without them, as pyenv builds by default (docs/performance.md). Anything
# else: the first python3 on PATH. Override with `make PYTHON=...`.
SYSTEM_PYTHON := $(shell /usr/bin/python3 -c 'import ensurepip, sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && echo /usr/bin/python3)
PYTHON ?= $(or $(SYSTEM_PYTHON),python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,demo,regions]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m demo

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
