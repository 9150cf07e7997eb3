# The two commands a new user needs: `make demo` and `make test`. Both build the virtualenv
# themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint unit bench-payments clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/paymesh demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: install lint
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit tests/contract

bench-payments: install
	$(BIN)/python benchmarks/payments_load.py --sweep 200,500,1000,1500 --duration 10

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
