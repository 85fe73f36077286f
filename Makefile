# `make train` and `make test` set up .venv on first use. torch is installed first, pinned, so that
# pip never resolves an unpinned torch to a multi-GB CUDA build; a GPU user picks their own build:
#   make train TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: install install-test install-sweep train sweep test lint benchmark clean

# The test extra (pytest, ruff, scikit-learn, sybil) only for `make test` and `make lint`: scikit-learn brings
# scipy, and with scipy installed torchmetrics (which Lightning imports) imports scipy.signal at start-up,
# 0.6 s on every command here.
install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# Optuna, optuna-integration and matplotlib, for `make sweep` (the test extra includes them).
install-sweep: $(VENV)/.installed-sweep

$(VENV)/.installed-sweep: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[sweep]"
	touch $@

train: install
	$(PY) scripts/train.py $(ARGS)

sweep: install-sweep
	$(PY) scripts/sweep.py $(ARGS)

test: install-test
	$(PY) -m pytest $(ARGS)

lint: install-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

benchmark: install
	$(PY) scripts/benchmark.py $(ARGS)

clean:
	rm -rf $(VENV) lightning_logs .pytest_cache
