# Two commands on a fresh machine: `make run` and `make test`. Everything else is bootstrapped here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.bootstrapped
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help bootstrap test lint typecheck unit run sandbox bench bench-latency bench-attachments airflow test-e2e docs-images \
	cluster test-cluster cluster-packages lock clean

help:
	@echo "make run       bootstrap, start the sandbox, sync one day for every sandbox grant, show the results"
	@echo "make test      bootstrap, lint (ruff), type-check (mypy), run the whole test suite"
	@echo "make sandbox   run local Nylas, Entra ID and Dataverse in the foreground"
	@echo "make airflow   a full local Airflow 3.3 with the sandbox (UI on 127.0.0.1)"
	@echo "make bench     benchmarks; writes bench/results.json"
	@echo "make bench-latency  webhook-to-row latency through a full local Airflow; bench/webhook_latency.json"
	@echo "make bench-attachments  memory of a 25 MiB attachment's load; bench/attachment_memory.json"
	@echo "make test-e2e  browser test against make airflow"
	@echo "make docs-images  refresh docs/images/health-*.png from the sync-health browser test"
	@echo "make cluster   production-shaped Airflow: PostgreSQL, Redis, CeleryExecutor, 2 workers, S3 staging"
	@echo "make test-cluster  drive make cluster through its REST API (backfill, worker kill, pool, webhooks)"
	@echo "make lock      recompile requirements/lock.txt from requirements/dev.in"

# The virtualenv is rebuilt whenever the lock or a pyproject changes; otherwise this is a no-op.
$(STAMP): requirements/lock.txt pyproject.toml sandbox/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements/lock.txt
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e . -e ./sandbox
	@# setuptools leaves an egg-info next to the sources; include/ is on sys.path (editable install), so
	@# Airflow would see the distribution twice and register its plugin twice.
	rm -rf include/nylas_dataverse.egg-info sandbox/nylas_dataverse_sandbox.egg-info
	@touch $@

bootstrap: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/hooks

run: $(STAMP)
	$(BIN)/python scripts/demo.py

sandbox: $(STAMP)
	$(BIN)/nylas-dataverse-sandbox serve

bench: $(STAMP)
	$(BIN)/python -m bench

bench-latency: $(STAMP)
	$(BIN)/python -m bench.webhook_latency

bench-attachments: $(STAMP)
	$(BIN)/python -m bench.attachment_memory

airflow: $(STAMP)
	$(BIN)/python scripts/local_airflow.py

E2E_ARGS ?= tests/e2e
# The browser comes from Debian (Playwright's own download needs a CDN); Selenium drives it.
test-e2e: $(STAMP)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "Installing Debian's chromium and chromium-driver for the browser test..."; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }
	$(BIN)/python -m pytest -m e2e $(E2E_ARGS) --timeout=900

# The README's screenshots: the sync-health browser test, writing into docs/images/ instead of .airflow/.
docs-images: $(STAMP)
	E2E_DOC_IMAGES=1 $(MAKE) test-e2e E2E_ARGS=tests/e2e/test_ui_health.py

# PostgreSQL and Redis come from Debian, installed only when missing (as for make test-e2e).
cluster-packages:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && command -v redis-server >/dev/null || { \
	  echo "Installing Debian's postgresql and redis-server for the local cluster..."; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >/dev/null; }

cluster: $(STAMP) cluster-packages
	$(BIN)/python scripts/cluster.py

test-cluster: $(STAMP) cluster-packages
	$(BIN)/python -m pytest -m cluster tests/cluster --timeout=1800

lock:
	$(BIN)/uv pip compile requirements/dev.in --python-version 3.11 -o requirements/lock.txt --no-header --no-emit-index-url

clean:
	rm -rf $(VENV) .staging .sandbox .airflow .cluster .cluster-test
