# Everything a developer repeats. The README's two commands do the same without make.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: tools install dev demo test test-fast lint manifests fmt typecheck check bench clean

$(BIN)/datafrost: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(BIN)/datafrost

tools:  ## promtool for the metrics tests (Debian's prometheus package; needs root or sudo)
	.ci/install-promtool

dev: install  ## run the platform on this machine
	$(BIN)/datafrost dev

demo: install  ## run the platform and send demo data
	$(BIN)/datafrost dev --demo

test: install  ## the whole suite (RabbitMQ/PostgreSQL tests skip with a reason when absent)
	$(BIN)/python -m pytest

test-fast: install  ## the suite without the tests that need external services
	$(BIN)/python -m pytest -m "not rabbitmq and not postgres"

lint: install  ## ruff, yamllint and the import layers
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/yamllint --strict .
	$(BIN)/lint-imports

manifests: install  ## regenerate knative/ from the function registry
	$(BIN)/datafrost manifests

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

check: lint typecheck test  ## what CI runs

bench: install  ## benchmarks against their anchors (ratios, higher is better)
	$(BIN)/python bench/broker.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
