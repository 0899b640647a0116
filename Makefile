# hm_recs: two commands on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.hm_recs/dagster_home

.PHONY: demo test lint format ui install clean bench bench-peers bench-full bench-backfill

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU wheel first: an unpinned resolution of torch pulls gigabytes of CUDA packages
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  ## generate demo data, build + backtest the latest weeks, print a summary
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/hm-recs demo

test: $(STAMP)  ## the test suite (the same command CI runs)
	$(BIN)/python -m pytest -q -n 2 --dist loadscope hm_recs_tests

lint: $(STAMP)  ## formatting and lint rules (pyproject.toml [tool.ruff]); CI runs it before the tests
	$(BIN)/ruff format --check hm_recs hm_recs_tests benchmarks
	$(BIN)/ruff check hm_recs hm_recs_tests benchmarks

format: $(STAMP)  ## apply the formatter and the safe lint fixes
	$(BIN)/ruff format hm_recs hm_recs_tests benchmarks
	$(BIN)/ruff check --fix hm_recs hm_recs_tests benchmarks

ui: $(STAMP)  ## Dagster UI + daemon on the same warehouse and run history as `make demo`
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml

bench: $(STAMP)  ## measurements for docs/benchmarks.md (long: about an hour)
	$(BIN)/python benchmarks/backtest.py --data both
	$(BIN)/python benchmarks/ingest_throughput.py

bench-peers: $(STAMP)  ## two-tower and sequence model vs implicit's ALS and trending (~5 min on 2 idle cores)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/peer_comparison.py --data both

bench-full: $(STAMP)  ## the weekly refresh at 10% and 100% of H&M's size, per stage vs physical references (hours)
	$(BIN)/python benchmarks/full_scale.py --scale 0.1 1.0

bench-backfill: $(STAMP)  ## 8 consecutive weeks at 10% of H&M's size through weekly_job, warm vs full-retrain weeks
	$(BIN)/python benchmarks/backfill.py --scale 0.1 --weeks-built 8

clean:
	rm -rf .hm_recs
