# One entry point for set-up, tests, demo and serving. `make test` works on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install lint test test-all demo serve bench fuzz clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,dev]'
	touch $(STAMP)

install: $(STAMP)

# ruff: lint and the formatter's check (configured in pyproject.toml; `ruff format .` fixes the second).
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Two pytest-xdist workers (one per core; tests/conftest.py gives each one torch thread), a whole test file at a
# time so module fixtures are built once; `make test WORKERS=0` runs in one process.
WORKERS ?= 2
XDIST := $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist loadfile --no-loadscope-reorder)

# The fast tier: every unit and integration test and one tiny end-to-end pass (tests/e2e/test_tiny_pipeline.py).
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(XDIST) --durations=10

# The full tier (what .ci/run runs): the fast tier plus the tests marked slow.
test-all: $(STAMP)
	$(PY) -m pytest -q $(XDIST) --durations=15

clean:
	rm -rf $(VENV) build *.egg-info

demo: $(STAMP)
	$(PY) scripts/demo.py

serve: $(STAMP)
	$(PY) scripts/demo.py --serve-only

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# Fuzz a running service's OpenAPI schema (start one with `make serve` first; PORT defaults to 3000).
PORT ?= 3000
fuzz: $(STAMP)
	$(VENV)/bin/schemathesis run http://127.0.0.1:$(PORT)/openapi.json --checks not_a_server_error \
		--include-path-regex '^/(classify|predict)$$' --max-examples 300
