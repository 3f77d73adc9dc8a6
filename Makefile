# voterolls: every target sets itself up (virtual environment + system packages) on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
CORE    := $(VENV)/.installed-core
ALL     := $(VENV)/.installed-all
PEOPLE  ?= 20000
SEED    ?= 1
DEMO    ?= demo

.PHONY: setup system demo test test-fast lint bench clean

# The core install: the DuckDB path (generate, ingest, link, estimate, lists, report).
$(CORE): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $(CORE)

# Everything: the service, Spark, bench and test extras (the `test` extra pulls in the others).
$(ALL): $(CORE)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(ALL)

setup: $(ALL)

# Debian packages the tests need (Chromium for the browser tests, a JDK for Spark).
system:
	bash scripts/system-deps.sh

## Synthetic national demo -> workspace -> linkage -> estimates -> offline HTML report
demo: $(CORE)
	$(BIN)/voterolls demo --people $(PEOPLE) --seed $(SEED) --out $(DEMO)

## Lint (ruff + the import-layer contract in pyproject.toml), then the whole test suite
## (unit, integration, Spark, browser)
test: lint system
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup

test-fast: $(ALL)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 -m "not slow and not spark and not browser"

lint: $(ALL)
	$(BIN)/ruff check voterolls tests bench
	$(BIN)/lint-imports --no-cache

## Benchmarks: writes bench/results/*.json, bench/results/*.png, the generated tables of
## docs/PERFORMANCE.md and docs/SCALE.md.  100k/1M/5M side by side with the peers, Spark at 1M,
## ingest at 1M, optional steps only if they fit (predicted ~25 min on a quiet 2-core machine;
## no step runs past 57 min).  `make bench BENCH_ARGS=--plan` prints the plan and predictions only.
bench: $(ALL)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(DEMO) .pytest_cache
