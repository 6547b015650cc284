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

# The whole suite, then the end-to-end suites again in reference mode (every cache and
# fast path off, proxy/reference.py): a fast path that disagrees with its reference fails.
REFERENCE_SUITES := tests/codecs tests/guards tests/security tests/sql tests/mcp tests/credentials \
	tests/graph tests/test_pipeline.py tests/test_proxy_smoke.py tests/test_routing.py \
	tests/model tests/conditions

test: system-deps conformance-deps setup
	$(PY) -m pytest
	CALLWARDEN_REFERENCE=1 $(PY) -m pytest $(REFERENCE_SUITES)

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) bench/proxy_overhead.py
	$(PY) bench/sql_guard.py
