# The two commands a new user needs: `make demo` and `make test`. Both build the virtualenv
# themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint unit bench bench-payments bench-cost profile chaos scaleout bench-scaleout fuzz clean

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

# The load benchmark: a sweep of arrival rates with the realistic mix, the sandboxes in their
# own process; JSON and PNG plots in bench-results/.
bench: install
	$(BIN)/python benchmarks/payments_load.py --sweep 50,100,150,200,250 --duration 10 --sandbox-process --json bench-results/bench.json --plots bench-results

bench-payments: install
	$(BIN)/python benchmarks/payments_load.py --sweep 200,500,1000,1500 --duration 10 --mix success

# Server CPU per payment by elimination (bus off, sandbox out of process): what limits it.
bench-cost: install
	$(BIN)/python benchmarks/payment_cost.py --rate 150 --duration 10

# py-spy on paymesh serve during the payments load: server CPU per payment by category, and
# the ceilings on payments/s that follow (issue 6).
profile: install
	$(BIN)/python benchmarks/profile_payments.py --rate 180 --duration 25

# SIGKILLs paymesh serve 20 times under load, clean PSPs then PSP faults (10% 5xx, 5% timeouts,
# duplicated and reordered webhooks); audits every invariant against the sandboxes' ledgers.
# Both profiles always run; non-zero if either finds a breach.
chaos: install
	$(BIN)/python benchmarks/chaos.py; clean=$$?; \
	$(BIN)/python benchmarks/chaos.py --faults; faults=$$?; \
	test $$clean -eq 0 && test $$faults -eq 0

# The fuzz suites at size: schemathesis over /openapi.json and hostile bodies, and the stateful
# API machine (make test runs both small).
# 2 serve + 2 worker processes on PostgreSQL + NATS JetStream (both started here): 5,000
# payments, a tenth sent twice at once to the other API process, a worker SIGKILLed halfway;
# audited against the PSP sandboxes' ledgers. Non-zero on any breach.
scaleout: install
	$(BIN)/python benchmarks/scaleout.py audit --payments 5000 --rate 100

# payments/s and latency: embedded vs 1, 2 and 4 API processes (2 workers) in one run.
bench-scaleout: install
	$(BIN)/python benchmarks/scaleout.py bench --apis 1,2,4 --rates 100,200,300 --duration 10

fuzz: install
	PAYMESH_FUZZ_EXAMPLES=500 PAYMESH_FUZZ_RUNS=200 PAYMESH_FUZZ_STEPS=100 \
		$(BIN)/pytest tests/fuzz -p no:cacheprovider

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
