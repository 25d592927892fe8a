# riskgrade: two commands do everything on a fresh machine (Python 3.11, pip, make):
#   make demo   install, build the sample portfolio, features, train, register, serve, score
#   make test   lint, format check, import contracts, the test suite (Spark's apart: make test-spark)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
RUN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export MPLBACKEND := Agg
# Type-checked packages (mypy, [tool.mypy] in pyproject.toml); a listed package is checked as
# soon as its folder exists (management/ joins when it lands). Benchmarks are scripts: checked
# as files.
TYPED_PACKAGES := features rating training audit management serving monitoring riskgrade reliability
# Line coverage each of these must reach in `make test` (scripts/coverage_gate.py).
COVERED_PACKAGES := features rating training serving monitoring
COVERAGE_MIN := 85
# The Spark engine's code: its tests (marker `spark`, PySpark in local mode, one JVM) run in
# `make test-spark`, which gates this code's coverage; `make test` leaves both out.
SPARK_CODE := features/spark serving/spark_batch.py


.PHONY: help install test test-spark lint demo stop bench reliability clean

help:
	@echo "make demo    install and run the whole product on a sample portfolio"
	@echo "make test    ruff, import-linter contracts, mypy, pytest with coverage (all but Spark)"
	@echo "make test-spark  the Spark engine's tests (local Spark, needs Java 17+), with coverage"
	@echo "make bench   benchmarks -> benchmarks/results/*.json"
	@echo "make reliability   fuzzing, load, faults, hostile data against a real server (~11 min)"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode is compiled at install (the locked packages and ours): with PYTHONDONTWRITEBYTECODE
# set, as on these machines, every process would otherwise compile each module it imports
# again (about 2 s of CPU per CLI start, paid by every command, server worker and test process).
$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --compile-bytecode
	$(RUN)/python -m compileall -q $(TYPED_PACKAGES) scripts
	@touch $@

install: $(VENV)/.synced

lint: install
	$(RUN)/ruff check .
	$(RUN)/ruff format --check .
	$(RUN)/lint-imports
	$(RUN)/mypy $(foreach p,$(TYPED_PACKAGES),$(if $(wildcard $(p)/__init__.py),-p $(p)))
	MYPYPATH=benchmarks $(RUN)/mypy benchmarks/*.py

test: lint
	rm -f .coverage .coverage.*
	$(RUN)/pytest -n 2 --dist loadgroup -m "not spark" --cov --cov-report=
	$(RUN)/python scripts/coverage_gate.py --min $(COVERAGE_MIN) \
		$(foreach p,$(SPARK_CODE),--skip $(p)) $(COVERED_PACKAGES)

test-spark: install
	@if ! command -v java >/dev/null 2>&1; then \
		echo "no Java runtime (17+): the Spark tests are skipped"; exit 0; fi; \
	set -e; rm -f .coverage .coverage.*; \
	$(RUN)/pytest -m spark --cov --cov-report=; \
	$(RUN)/python scripts/coverage_gate.py --min $(COVERAGE_MIN) $(SPARK_CODE)

demo: install
	bash scripts/demo.sh

stop:
	@if [ -f data/serve.pid ]; then kill $$(cat data/serve.pid) 2>/dev/null || true; rm -f data/serve.pid; echo stopped; fi

bench: install
	$(RUN)/python benchmarks/bench_generate.py
	$(RUN)/python benchmarks/bench_features.py
	$(RUN)/python benchmarks/bench_real_data.py
	$(RUN)/python benchmarks/bench_sample_quality.py
	$(RUN)/python benchmarks/bench_rating_score.py
	$(RUN)/python benchmarks/bench_monitor.py
	$(RUN)/python benchmarks/bench_early_warnings.py
	$(RUN)/python benchmarks/bench_serving.py
	$(RUN)/python benchmarks/bench_batch_explain.py
	$(RUN)/python benchmarks/bench_batch_record.py --generate

reliability: install
	$(RUN)/python -m reliability

clean:
	rm -rf data reports mlruns mlflow.db .pytest_cache .ruff_cache .mypy_cache .coverage .coverage.*
