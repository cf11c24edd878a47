# Preempt — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA := deploy/kafka/kafka.sh

help: ## List the targets
	@if [ -t 1 ]; then on='\033[36m'; off='\033[0m'; else on=; off=; fi; \
	awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %s%-18s%s %s\n", on, $$1, off, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install Preempt (editable) from the locked set in constraints.txt

kafka: ## Start the local Apache Kafka broker (KRaft, 127.0.0.1:9092); a no-op when it is up
	@$(KAFKA) start

kafka-stop: ## Stop the local broker
	@$(KAFKA) stop

demo: install kafka ## Run the whole service locally: broker, worker, notifier, simulated traffic (Ctrl-C stops it)
	@deploy/demo.sh

lint: install ## ruff check + format check + the package dependency rules (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: install ## Apply ruff's formatter and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install ## mypy --strict on the packages
	$(BIN)/mypy

test: install kafka lint typecheck ## Lint, typecheck, and run every test (unit + integration on the real broker)
	deploy/prometheus/ensure-prometheus.sh
	deploy/ensure-compose.sh
	deploy/ensure-chromium.sh
	$(BIN)/pytest --durations=30

unit: install ## Unit tests only (no broker)
	$(BIN)/pytest tests/unit

docs: install ## Run every ```console example in README.md and docs/, rewrite the outputs that changed and the generated tables (review with git diff)
	$(BIN)/python -m tests.docs.examples --write
	$(BIN)/python -m tests.docs.architecture --write
	$(BIN)/python -m tests.docs.settings --write

stress: install kafka ## Restart stress: 20 x (SIGKILL the worker at a random moment + restart) under CPU load, 30-day history
	PREEMPT_STRESS_CYCLES=$${PREEMPT_STRESS_CYCLES:-20} PREEMPT_STRESS_DAYS=$${PREEMPT_STRESS_DAYS:-30} \
		$(BIN)/pytest tests/integration/test_pipeline_restart_stress.py -s -p no:cacheprovider

soak: install kafka ## Soak (SOAK_MINUTES, default 20): worker, notifier, ingest under steady traffic and new accounts; growth per hour of RSS, fds, threads, /metrics series; fails past a bound
	SOAK_MINUTES=$${SOAK_MINUTES:-20} $(BIN)/python -m bench.soak

bench: install kafka ## Benchmark (a few minutes): ceilings vs. the rules worker, latency, memory; one table + .bench/latest.json
	$(BIN)/python -m bench.run

prescient-report: install ## Train the risk rule on one simulated seed, compare it with the default pack on another; update docs/prescient.md
	$(BIN)/python -m streams.prescient.report --write docs/prescient.md --workdir prescient-out

prescient-validate: install ## The risk rule and the story oracle on the validation seeds 3-6 (about 15 min); update docs/prescient.md
	$(BIN)/python -m streams.prescient.report --validate 3,4,5,6 --write docs/prescient.md --workdir prescient-out

chaos: install kafka ## Fault scenarios on real processes and brokers (SASL_SSL, SIGKILLs, Slack/SMTP faults, ingest abuse, secrets scan); one table
	$(BIN)/python -m tests.chaos.run

clean: kafka-stop ## Stop the broker, remove the virtualenv, broker data and caches
	rm -rf $(VENV) .kafka .preempt-data .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info demo-out bench-out prescient-out .cache .bench

.PHONY: help install kafka kafka-stop demo lint format typecheck test unit docs stress soak bench chaos prescient-report prescient-validate clean
