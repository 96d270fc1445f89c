# The two commands of the README: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

BENCH_VENV := .venv-bench
MLFLOW     := mlflow==3.17.2
MLFLOW_PG  := psycopg2-binary==2.9.13

.PHONY: venv demo test bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

test: $(STAMP)
	bash scripts/with-services.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

# MLflow, the registry bench_hub.py compares with, in an environment of its own (its pins
# conflict with ours, and it is no dependency of the product); psycopg2 is its PostgreSQL driver.
$(BENCH_VENV)/.installed-stamp: Makefile
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check '$(MLFLOW)' '$(MLFLOW_PG)'
	touch $@

bench: $(STAMP) $(BENCH_VENV)/.installed-stamp
	$(BIN)/python benchmarks/bench_run_overhead.py
	bash scripts/with-services.sh sh -c '$(BIN)/python benchmarks/bench_audit.py --pg "$$NSP_TEST_PG_URL"'
	bash scripts/with-services.sh sh -c '$(BIN)/python benchmarks/bench_hub.py --pg "$$NSP_TEST_PG_URL" \
	    --mlflow-python $(BENCH_VENV)/bin/python --mlflow-models 1000 --mlflow-versions 100 \
	    --mlflow-pg-search-samples 10'
	$(BIN)/python benchmarks/bench_scale.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) build src/*.egg-info
