# The two commands a new user needs: `make demo` and `make test`. Both build the virtualenv
# themselves on a fresh machine, from the lock files: `make demo` installs what paymesh needs
# to run (requirements.lock), `make test` adds the development tools (requirements-dev.lock).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
# Test processes (pytest-xdist). Much of the suite waits on sockets and subprocesses, so more
# workers than cores pays: 4 on the 2-core reference machine.
WORKERS ?= 4

.PHONY: install dev demo test lint unit lock screenshots bench-reconcile bench-wrk bench-floor soak-memory bench bench-payments bench-cost bench-cost-aws profile chaos scaleout bench-scaleout bench-changesets bench-event-ids bench-wal bench-failover bench-fraud-memory bench-fraud-compiled test-fraud-compiled fuzz cluster clean

$(BIN)/python:
	@echo "==> [1/3] creating the virtualenv in $(VENV) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)

# Installed from the lock, every file checked against its hash; then paymesh itself, editable.
$(VENV)/.runtime: requirements.lock pyproject.toml | $(BIN)/python
	@echo "==> [2/3] installing paymesh's runtime dependencies (requirements.lock, $$(grep -c '^[A-Za-z0-9]' requirements.lock) packages)"
	$(PIP) install -r requirements.lock
	@echo "==> [3/3] installing paymesh itself (editable)"
	$(PIP) install --no-deps -e .
	touch $@

$(VENV)/.dev: requirements-dev.lock $(VENV)/.runtime
	@echo "==> installing the development tools (requirements-dev.lock, $$(grep -c '^[A-Za-z0-9]' requirements-dev.lock) packages)"
	$(PIP) install -r requirements-dev.lock
	touch $@

# What running paymesh needs (the CLI, the server, the demo).
install: $(VENV)/.runtime

# That, and the tests, linters, benchmarks and pip-tools.
dev: $(VENV)/.dev

demo: install
	$(BIN)/paymesh demo

lint: dev
	$(BIN)/ruff check src tests benchmarks infra setup.py
	$(BIN)/ruff format --check src tests benchmarks infra setup.py
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# The dashboard's browser tests drive Debian's chromium through Playwright (never
# `playwright install`: it downloads from a host a locked-down machine cannot reach).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(CHROMIUM):
	@echo "==> installing Debian's chromium for the dashboard's browser tests"
	$(SUDO) apt-get install -y chromium || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)

WRK ?= /usr/bin/wrk
$(WRK):
	@echo "==> installing wrk, the HTTP load generator of make bench-wrk"
	$(SUDO) apt-get install -y wrk || ($(SUDO) apt-get update && $(SUDO) apt-get install -y wrk)

# Issue 18's measurement: wrk (64 connections) against embedded paymesh serve, /healthz then
# POST /v1/payments in the same run; prints payments/s, p50/p90/p99, and their ratio. Then
# the same with the deliveries in a deliverer process (PAYMESH_DELIVERER_PROCESS).
bench-wrk: dev $(WRK)
	$(BIN)/python -m benchmarks.wrk_payments --connections 64 --duration 10
	$(BIN)/python -m benchmarks.wrk_payments --connections 64 --duration 10 --deliverer-process

# The floor under issue 18's CPU target: a payment's exchanges alone (API in, PSP call out,
# webhook in, one delivery out, group-committed SQLite) on paymesh's libraries, against paymesh
# serve under the same wrk load, alternating.
bench-floor: dev $(WRK)
	$(BIN)/python -m benchmarks.payment_floor --rounds 3 --duration 10

# Issue 18's memory target: RSS across 1,000,000 payments (about 3 hours at 100/s, a data dir
# of about 10 GB in a temp dir); SOAK_PAYMENTS=50000 is a 14-minute look.
SOAK_PAYMENTS ?= 1000000
soak-memory: dev
	mkdir -p soak-results
	$(BIN)/python benchmarks/memory_soak.py --payments $(SOAK_PAYMENTS) --sandbox-process \
		--json soak-results/soak.json --plot soak-results/soak.png

test: dev lint $(CHROMIUM)
	$(BIN)/pytest -n $(WORKERS)

# Every dashboard page, as the browser tests see it, saved to docs/screenshots (the README's).
screenshots: dev $(CHROMIUM)
	PAYMESH_SCREENSHOTS=docs/screenshots $(BIN)/pytest -n 0 -q tests/dashboard

unit: dev
	$(BIN)/pytest tests/unit tests/contract

# Regenerates both lock files from pyproject.toml: exact versions of everything installed,
# with hashes. Run it after changing a dependency there; commit the result.
LOCK := $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links
lock: dev
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK) --output-file=requirements.lock pyproject.toml
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK) --extra=dev --output-file=requirements-dev.lock pyproject.toml

# The load benchmark: a sweep of arrival rates with the realistic mix, the sandboxes in their
# own process, then the CPU profile (what `make profile` runs); JSON and PNG plots (latency
# and throughput over time, CPU per payment by category) in bench-results/. PROFILE_BEFORE=
# an earlier profile's JSON plots it beside this one.
PROFILE_BEFORE ?=
bench: dev
	$(BIN)/python benchmarks/payments_load.py --sweep 50,100,150,200,250 --duration 10 --sandbox-process --json bench-results/bench.json --plots bench-results
	$(BIN)/python benchmarks/profile_payments.py --rate 180 --duration 25 --json bench-results/profile.json --plot bench-results/cpu_by_category.png $(if $(PROFILE_BEFORE),--before $(PROFILE_BEFORE))

bench-payments: dev
	$(BIN)/python benchmarks/payments_load.py --sweep 200,500,1000,1500 --duration 10 --mix success

# Server CPU per payment by elimination (bus off, sandbox out of process): what limits it.
bench-cost: dev
	$(BIN)/python benchmarks/payment_cost.py --rate 150 --duration 10

# A scale-out cluster in the foreground: PostgreSQL and NATS (from the dev packages), the PSP
# sandboxes as one process, APIS API servers behind one port (PORT) and CLUSTER_WORKERS
# workers. Ctrl-C stops it all.
APIS ?= 2
CLUSTER_WORKERS ?= 2
PORT ?= 8080
cluster: dev
	$(BIN)/python benchmarks/cluster.py up --apis $(APIS) --workers $(CLUSTER_WORKERS) --port $(PORT)

# The AWS deployment's cost per payment: every AWS request the flow makes, counted in moto,
# priced at on-demand list prices, against the reference's $0.00036 (and the cold start).
# Reconciliation: generated days of each PSP's settlement report with known discrepancies,
# matched against the ledger (found, typed, false exceptions, auto-resolved, time).
bench-reconcile: dev
	$(BIN)/python benchmarks/reconciliation.py --days 10 --payments 2000

bench-cost-aws: dev
	$(BIN)/python benchmarks/aws_cost.py --payments 200 --declined 0.1 --reviewed 0.02

# py-spy on paymesh serve during the payments load: server CPU per payment by category, and
# the ceilings on payments/s that follow (issue 6).
profile: dev
	$(BIN)/python benchmarks/profile_payments.py --rate 180 --duration 25

# SIGKILLs paymesh serve 20 times under load, clean PSPs then PSP faults (10% 5xx, 5% timeouts,
# duplicated and reordered webhooks); audits every invariant against the sandboxes' ledgers.
# Both profiles always run; non-zero if either finds a breach.
chaos: dev
	$(BIN)/python benchmarks/chaos.py; clean=$$?; \
	$(BIN)/python benchmarks/chaos.py --faults; faults=$$?; \
	test $$clean -eq 0 && test $$faults -eq 0

# The fuzz suites at size: schemathesis over /openapi.json and hostile bodies, and the stateful
# API machine (make test runs both small).
# 2 serve + 2 worker processes on PostgreSQL + NATS JetStream (both started here): 5,000
# payments, a tenth sent twice at once to the other API process, a worker SIGKILLed halfway;
# audited against the PSP sandboxes' ledgers. Non-zero on any breach.
scaleout: dev
	$(BIN)/python benchmarks/scaleout.py audit --payments 5000 --rate 100

# payments/s, latency and CPU per payment by component: embedded vs 1, 2 and 4 API+worker pairs
# in one run, each after 3 s of unmeasured load (its p99 shown apart as "cold p99").
bench-scaleout: dev
	$(BIN)/python benchmarks/scaleout.py bench --pairs 1,2,4 --rates 100,200,300 --duration 10

# A payment's three changesets through the real PostgreSQL store: client and PostgreSQL CPU,
# statements. BASELINE=<tree> (a worktree of an older commit) measures it too, alternating.
bench-changesets: dev
	$(BIN)/python benchmarks/pg_changesets.py $(if $(BASELINE),--baseline-src $(BASELINE)/src)

# A 15 s Stripe outage (429s, then 500s) on 1, 2 and 4 API processes: calls that reached it,
# payments it caught for recovery, payments that failed over. Exits 1 if any did not succeed.
bench-failover: dev
	$(BIN)/python benchmarks/failover.py --apis 1,2,4 --faults 429,500 --rate 50 --duration 30 --outage-at 8 --outage-for 15

# A payment's store writes in a database of 400,000 payments: random event ids against ids in
# time order (version 7), ~5 min
bench-event-ids: dev
	$(BIN)/python benchmarks/ordered_event_ids.py --prefill 400000 --payments 20000

# What a payment writes to SQLite: WAL frames by table and index, the writer thread's write
# calls and bytes, with 1 and 64 clients. BASELINE=<tree> (a worktree of an older commit)
# measures it too, first, and prints the ratios.
bench-wal: dev
	$(BIN)/python -m benchmarks.wal_pages --payments 2000 --concurrency 1,64 $(if $(BASELINE),--baseline-src $(BASELINE)/src)

# The fraud engine alone over two simulated days of the soak's customers: does it level off?
bench-fraud-memory: dev
	$(BIN)/python benchmarks/fraud_memory.py --transactions 9000000 --rate 50 --customers 30000 --every 500000

# The fraud replay interpreted and compiled with mypyc ([tool.paymesh] compiled in
# pyproject.toml), alternating, the same scores checked line for line; ~3 min with the build
bench-fraud-compiled: dev
	$(BIN)/python benchmarks/fraud_compiled.py --n 50000 --rounds 3

# The fraud tests against the compiled modules (the build checks each imports compiled; CI runs
# this after make test): a change mypyc cannot compile, or that behaves differently compiled,
# fails here; ~1.5 min with the build
COMPILED_TREE := build/compiled-tree
test-fraud-compiled: dev
	rm -rf $(COMPILED_TREE)
	$(BIN)/python benchmarks/fraud_compiled.py --build-only $(COMPILED_TREE)
	PYTHONPATH=$(COMPILED_TREE):. $(BIN)/pytest -p no:cacheprovider -n 2 -q \
		tests/unit/test_capped_maps.py tests/unit/test_fraud_*.py tests/unit/test_ruleset.py \
		tests/integration/test_fraud_api.py tests/integration/test_fraud_merchant_scope.py

fuzz: dev
	PAYMESH_FUZZ_EXAMPLES=500 PAYMESH_FUZZ_RUNS=200 PAYMESH_FUZZ_STEPS=100 \
		$(BIN)/pytest tests/fuzz -p no:cacheprovider

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
