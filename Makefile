# ContourTrial: `make demo` runs the app with demo data; `make test` sets up and runs the whole suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/contourtrial
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
RELIABILITY_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/ct_load
RELIABILITY_BROKER_URL ?= redis://127.0.0.1:6379/14

.PHONY: setup demo test reliability lint services system-packages simulate bench-ingest bench-inference bench-viewer bench-metrics bench-export clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The viewer bundle: npm ci when the lock file changes, a Vite build when a source file does.
FRONTEND_SOURCES := $(shell find frontend/src -type f 2>/dev/null) $(wildcard frontend/*.json frontend/*.ts frontend/index.html)

frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

frontend/dist/.built: frontend/node_modules/.installed $(FRONTEND_SOURCES)
	cd frontend && npm run build --silent
	touch $@

setup: $(BIN)/.installed frontend/dist/.built

demo: setup
	scripts/demo.sh

services:
	scripts/ensure-services.sh

system-packages:
	scripts/install-system-packages.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup system-packages services lint
	cd frontend && npm test --silent
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) CONTOURTRIAL_TESTING=1 \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

# Long load and fault runs (docs/RELIABILITY.md), about 17 minutes: the 5-minute load test, Redis stopped for 60 s,
# PostgreSQL restarted under the browser's saves, backup/restore, and the fuzzers for FUZZ_SECONDS per target.
reliability: setup system-packages services
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-reliability.txt
	$(BIN)/python bench/load/run_load.py --users-physicians 30 --panel 5 --coordinators 5 --seconds 300 \
		--database-url $(RELIABILITY_DATABASE_URL) --broker-url $(RELIABILITY_BROKER_URL)
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) CONTOURTRIAL_TESTING=1 \
		OUTAGE_SECONDS=60 FUZZ_SECONDS=$${FUZZ_SECONDS:-120} $(BIN)/python -m pytest -m "" -s \
		tests/reliability tests/security/test_fuzz_ingest.py tests/security/test_fuzz_labelmap.py

simulate: setup
	for method in blocks minimisation; do \
		DEBUG=1 $(BIN)/python manage.py simulate_randomisation --method $$method --patients 200 --runs 1000 --seed 2026 --json; \
	done

bench-ingest: setup services
	$(BIN)/python bench/ingest_bench.py

bench-inference: setup
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python bench/inference_bench.py --backend all --dicom --repeats 3

bench-viewer: setup system-packages services
	$(BIN)/python bench/viewer_bench.py --screenshots docs/img

bench-metrics: setup  # platipy (the slow reference) lives in its own venv: it pins pydicom < 3
	test -x var/bench/platipy-venv/bin/python || ($(PYTHON) -m venv var/bench/platipy-venv && \
		var/bench/platipy-venv/bin/pip install --quiet platipy==0.7.2 numpy scipy)
	$(BIN)/python bench/metrics_bench.py

bench-export: setup
	$(BIN)/python bench/export_bench.py

clean:
	rm -rf $(VENV) var
