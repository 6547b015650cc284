# Two commands for a newcomer: `make demo` and `make test` (both set everything up).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup system-deps conformance-deps demo test lint bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[speed,test,deploy]'
	touch $@

setup: $(VENV)/.installed

system-deps:
	bash scripts/system-deps.sh

# The pinned MCP conformance CLI and Node 22 (npm registry) in .conformance/: quick when present.
conformance-deps:
	bash scripts/conformance-deps.sh

demo: setup
	$(VENV)/bin/callwarden demo

test: system-deps conformance-deps setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) bench/proxy_overhead.py
	$(PY) bench/sql_guard.py
