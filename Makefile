# The two commands of the README: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

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

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_run_overhead.py
	bash scripts/with-services.sh sh -c '$(BIN)/python benchmarks/bench_audit.py --pg "$$NSP_TEST_PG_URL"'
	bash scripts/with-services.sh sh -c '$(BIN)/python benchmarks/bench_hub.py --pg "$$NSP_TEST_PG_URL"'
	$(BIN)/python benchmarks/bench_scale.py

clean:
	rm -rf $(VENV) build src/*.egg-info
