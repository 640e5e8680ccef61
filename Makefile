# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup system-deps test lint typecheck pytest demo bench lambda-zip clean train-smoke

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

# Run the shipped PyTorch scripts for real (not part of `make test`: torch is a 5.5 GB, several-
# minute install). TORCH_PYTHON may name a Python that already has torch and torchvision.
TORCH_VENV := .venv-torch
TORCH_PYTHON ?= $(TORCH_VENV)/bin/python
TORCH_PINS := $(if $(filter aarch64,$(shell uname -m)),torch==2.9.1 torchvision==0.24.1,torch==2.14.1 torchvision==0.29.1)
# the PyTorch inference container's toolkit: the smoke run sends a bad request through its
# Transformer and checks the status the endpoint would answer
SERVING_PINS := sagemaker-inference==1.10.1
DEVICE ?= cpu
EPOCHS ?= 1
IMAGE_SIZE ?= 128

train-smoke: setup
	@$(TORCH_PYTHON) -c "import torch, torchvision" 2>/dev/null || { \
		test -x $(TORCH_VENV)/bin/python || $(PYTHON) -m venv $(TORCH_VENV); \
		$(TORCH_VENV)/bin/python -m pip install -q $(TORCH_PINS); }
	@test ! -x $(TORCH_VENV)/bin/python || $(TORCH_VENV)/bin/python -c "import sagemaker_inference" \
		2>/dev/null || $(TORCH_VENV)/bin/python -m pip install -q $(SERVING_PINS)
	$(BIN)/python scripts/train_smoke.py --torch-python $(TORCH_PYTHON) --device $(DEVICE) \
		--epochs $(EPOCHS) --image-size $(IMAGE_SIZE)

lambda-zip: setup
	$(BIN)/python -m gt_toolkit.sagemaker.lambda_zip --out build/gt-toolkit-lambdas.zip

clean:
	rm -rf build dist demo-output .pytest_cache .mypy_cache .ruff_cache $(TORCH_VENV)
