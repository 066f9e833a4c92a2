# mmflow: `make run` (embedded demo, no Kafka) and `make test` work on a fresh machine.
SHELL := /bin/bash
# The first interpreter that really runs and is 3.11 or 3.12 (Bytewax wheels stop at 3.12;
# a pyenv shim may exist for a version that is not enabled).
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do $$p -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 12)' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-unit test-alerts bench lint kafka-up kafka-down kafka-clean clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mmflow demo

# Integration tests start a real Kafka broker themselves (tests/kafka_broker.py); the alert rules
# are checked and unit-tested by promtool, and tests/integration/test_prometheus.py runs the real
# Prometheus binary (both from Debian's `prometheus` package).
test: $(STAMP) test-alerts
	$(BIN)/python -m pytest -q

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not kafka"

PROMTOOL ?= promtool
PROM_DIR := infra/prometheus

test-alerts:
	@command -v $(PROMTOOL) >/dev/null 2>&1 || { echo "make: $(PROMTOOL) not found: install Debian's prometheus package (apt-get install prometheus)" >&2; exit 1; }
	$(PROMTOOL) check config $(PROM_DIR)/prometheus.yml
	$(PROMTOOL) check rules $(PROM_DIR)/alerts.yml
	cd $(PROM_DIR) && $(PROMTOOL) test rules alerts.test.yml

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

lint: $(STAMP)
	$(BIN)/ruff check mmflow flows connectors cli tests benchmarks
	$(BIN)/ruff format --check mmflow flows connectors cli tests benchmarks

kafka-up:
	bash infra/kafka/kafka.sh up

kafka-down:
	bash infra/kafka/kafka.sh down

kafka-clean:
	bash infra/kafka/kafka.sh clean

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
