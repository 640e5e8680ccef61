# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup system-deps test lint typecheck pytest demo bench lambda-zip clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench,demo]'
	touch $(STAMP)

setup: $(STAMP)

# Chromium (template preview tests) and the Lambda runtime emulator (zip tests).
system-deps: setup
	bash scripts/install-system-deps.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

pytest: setup system-deps
	$(BIN)/pytest -n 2 --dist loadgroup

test: lint typecheck pytest

demo: setup
	$(BIN)/gt-convert demo --out demo-output

# The speed goals of the issues, each against named peers in one run (several minutes).
bench: setup
	$(BIN)/python bench/manifest_throughput.py
	$(BIN)/python bench/consolidation.py
	$(BIN)/python bench/convert.py
	$(BIN)/python bench/crowd_ingest.py

lambda-zip: setup
	$(BIN)/python -m gt_toolkit.sagemaker.lambda_zip --out build/gt-toolkit-lambdas.zip

clean:
	rm -rf build dist demo-output .pytest_cache .mypy_cache .ruff_cache
