# The two commands of the README: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

BENCH_VENV := .venv-bench
MLFLOW     := mlflow==3.17.2
MLFLOW_PG  := psycopg2-binary==2.9.13
# bench_server.py's load generator (benchmarks/http_load.py) runs in both environments.
HTTPX      := httpx==0.28.1
# pyhf's other backends for bench_vs_pyhf.py, each in an environment of its own (names under
# .gitignore's .bench-*/): torch 2.13.0 is the CPU build on this machine's disk, jax ~630 MB.
BENCH_TORCH := .bench-venv-torch
BENCH_JAX   := .bench-venv-jax
PYHF        := pyhf==0.7.6
TORCH       := torch==2.13.0
JAX         := jax[cpu]==0.10.2

.PHONY: venv demo test bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

# Lint and types first (seconds), then the suite with its services.
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	bash scripts/with-services.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

# MLflow, the registry bench_hub.py compares with, in an environment of its own (its pins
# conflict with ours, and it is no dependency of the product); psycopg2 is its PostgreSQL driver.
$(BENCH_VENV)/.installed-stamp: Makefile
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check '$(MLFLOW)' '$(MLFLOW_PG)' '$(HTTPX)'
	touch $@

$(BENCH_TORCH)/.installed-stamp: Makefile
	$(PYTHON) -m venv $(BENCH_TORCH)
	$(BENCH_TORCH)/bin/pip install --quiet --disable-pip-version-check '$(PYHF)' '$(TORCH)'
	touch $@

$(BENCH_JAX)/.installed-stamp: Makefile
	$(PYTHON) -m venv $(BENCH_JAX)
	$(BENCH_JAX)/bin/pip install --quiet --disable-pip-version-check '$(PYHF)' '$(JAX)'
	touch $@

bench: $(STAMP) $(BENCH_VENV)/.installed-stamp $(BENCH_TORCH)/.installed-stamp $(BENCH_JAX)/.installed-stamp
	$(BIN)/python benchmarks/bench_run_overhead.py
	bash scripts/with-services.sh sh -c '$(BIN)/python benchmarks/bench_audit.py --pg "$$NSP_TEST_PG_URL"'
	bash scripts/with-services.sh sh -c '$(BIN)/python benchmarks/bench_hub.py --pg "$$NSP_TEST_PG_URL" \
	    --mlflow-python $(BENCH_VENV)/bin/python --mlflow-models 1000 --mlflow-versions 100 \
	    --mlflow-pg-search-samples 10'
	$(BIN)/python benchmarks/bench_scale.py
	$(BIN)/python benchmarks/bench_vs_pyhf.py --also $(BENCH_TORCH)/bin/python:pytorch --also $(BENCH_JAX)/bin/python:jax
	bash scripts/with-services.sh sh -c '$(BIN)/python benchmarks/bench_server.py --runs 100000 --pg "$$NSP_TEST_PG_URL" \
	    --mlflow-python $(BENCH_VENV)/bin/python'
	bash scripts/with-services.sh sh -c '$(BIN)/python benchmarks/bench_dashboard.py --runs 100000 --pg "$$NSP_TEST_PG_URL"'
	$(BIN)/python benchmarks/bench_alerts.py
	$(BIN)/python benchmarks/bench_reports.py
	bash scripts/with-services.sh sh -c '$(BIN)/python benchmarks/bench_validation_pack.py --pg "$$NSP_TEST_PG_URL"'

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(BENCH_TORCH) $(BENCH_JAX) build src/*.egg-info
