# esiprov developer and CI entry points. `make help` lists the targets.
#
# Everything runs from this directory: the project venv is .venv, OpenStack Heat
# gets its own .venv-heat (its pins must not leak into ours). Tests start their
# own etcd, Redis, Heat and snmpsim on free loopback ports; the one system service
# they use is RabbitMQ on 127.0.0.1:5672 (guest), in vhosts of their own (.ci/run starts it).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
HEAT_VENV := .venv-heat
FLOWER_PORT ?= 5555
# Debian packages the tests and the easysnmp build need (python3-venv/-dev: venv and C headers on Debian;
# systemd: systemd-analyze verifies deploy/'s units; installing it needs no systemd running, as in a container;
# prometheus: promtool and the server the metrics tests run on a free port of their own; its packaged
# service, on :9090, does not start without systemd, and the tests never use it;
# influxdb: InfluxDB 1.6, whose OpenTSDB listener is the TSDB the traffic-counter tests and the monitoring
# bench push to and read back with InfluxQL, each run on free loopback ports (esiprov/devenv/influxdb.py);
# its packaged service, on :8086 and :8088, does not start without systemd, and the tests never use it).
DEB_PACKAGES := etcd-server etcd-client redis-server rabbitmq-server libsnmp-dev snmp build-essential python3-venv python3-dev systemd prometheus influxdb
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.DEFAULT_GOAL := help
.PHONY: help deps venv heat-venv check test unit demo dev flower bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

deps: ## install the Debian packages that are missing (apt-get update runs only if one is)
	@missing=$$(for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; else \
	    echo "deps: installing" $$missing; \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing </dev/null; fi

venv: $(VENV)/.esiprov-installed ## create .venv and pip install -e '.[test]' (again only when setup.cfg changes)

$(VENV)/.esiprov-installed: setup.cfg pyproject.toml | deps
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

heat-venv: deps ## create .venv-heat with the pinned OpenStack Heat (idempotent)
	esiprov/devenv/heat_files/install.sh $(HEAT_VENV)

check: venv ## type-check (mypy) and check the import layering (lint-imports), as configured in setup.cfg
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo --no-cache

test: deps venv heat-venv check ## run the checks, then every test (unit and integration, real services)
	$(VENV)/bin/python -m pytest -q

unit: venv ## run the unit tests only (fast, no services)
	$(VENV)/bin/python -m pytest -q tests/unit

demo: deps venv heat-venv ## run the end-to-end demo on local services
	$(VENV)/bin/python -m esiprov.devenv.demo

dev: deps venv heat-venv ## run etcd, Redis, Heat, a switch, worker, beat, watcher and Flower until Ctrl-C; prints the env
	$(VENV)/bin/python -m esiprov.devenv.dev

# Every bench/*.py is a benchmark run as `python -m bench.<name>`, except these helpers it uses.
BENCH_HELPERS := __init__ heatsim barechain costs realheat running spy wire
BENCHES := $(filter-out $(BENCH_HELPERS),$(basename $(notdir $(wildcard bench/*.py))))

bench: deps venv heat-venv ## run every bench/*.py benchmark on local services (figures and machine: bench/RESULTS.md)
	@# the profiler and the CPU counters the pipeline bench uses (not needed by esiprov itself)
	@test -x $(VENV)/bin/py-spy && $(VENV)/bin/python -c 'import psutil' 2>/dev/null || $(VENV)/bin/pip install -q py-spy psutil
	@set -e; for name in $(BENCHES); do echo "== bench.$$name"; $(VENV)/bin/python -m bench.$$name; done

# Flower joins a fleet that is already running: it builds .venv only when there is none, never
# reinstalls it under running workers (order-only prerequisite).
flower: | $(VENV)/.esiprov-installed ## run Flower on 127.0.0.1:FLOWER_PORT (5555); FLOWER_UNAUTHENTICATED_API=true opens its /api without auth
	$(VENV)/bin/celery -A tasks flower --address=127.0.0.1 --port=$(FLOWER_PORT)

clean: ## remove the venvs, caches and build leftovers
	rm -rf $(VENV) $(HEAT_VENV) .pytest_cache .mypy_cache build *.egg-info .devenv
	find esiprov tasks tests bench -name __pycache__ -type d -prune -exec rm -rf {} +
