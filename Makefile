# synth2real: `make demo` runs the embedded default, `make test` runs the tests.
# Both create .venv first if needed (`make setup` does only that).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synth2real-installed
DEMO_CONFIG := config/demo.yaml
DEMO_DIR := results/demo
SNAKEMAKE := $(BIN)/snakemake
# snakefmt formats shell: blocks with shfmt, which the venv provides.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup demo test rehearsal lint format dry-run-paper clean-demo gpu-check

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: setup
	$(SNAKEMAKE) all --profile profiles/local --configfile $(DEMO_CONFIG)
	@# Rebuild the report only when a result is newer than it (a second `make demo` does no work).
	@if [ ! -f $(DEMO_DIR)/report.html ] || [ -n "$$(find $(DEMO_DIR) -type f -newer $(DEMO_DIR)/report.html \
	    -not -path '*/logs/*' -not -name report.html -print -quit)" ]; then \
	  $(SNAKEMAKE) all --profile profiles/local --configfile $(DEMO_CONFIG) --report $(DEMO_DIR)/report.html; \
	fi
	@echo
	@echo "Report:        $(DEMO_DIR)/report.html"
	@echo "Summary:       $(DEMO_DIR)/summary.csv"
	@echo "Distribution:  $(DEMO_DIR)/distribution.csv"

test: setup
	$(BIN)/python -m pytest

# The paper's chain at toy size, offline (tests/config/rehearsal.yaml; tests/rehearsal.sh).
rehearsal: setup
	BIN=$(BIN) bash tests/rehearsal.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(SNAKEMAKE) --lint --configfile $(DEMO_CONFIG)

format: setup
	$(BIN)/ruff format .
	$(BIN)/snakefmt .

# One-shot GPU check (tools/gpu_check.py): throughput of generation, training and PRDC, and
# a real CUDA OOM survived. SMOKE=1 runs it on the CPU at toy sizes (what the tests run).
gpu-check: setup
	$(BIN)/python tools/gpu_check.py $(if $(SMOKE),--smoke)

dry-run-paper: setup
	$(SNAKEMAKE) -n --configfile config/config.yaml

clean-demo:
	rm -rf $(DEMO_DIR)
