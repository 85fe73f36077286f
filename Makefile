# `make train` and `make test` set up .venv on first use. torch is installed first, pinned, so that
# pip never resolves an unpinned torch to a multi-GB CUDA build; a GPU user picks their own build:
#   make train TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

# One venv for every target: `make -j2 train test` would run two installs into it at once.
.NOTPARALLEL:

.PHONY: install install-test install-sweep train sweep test lint benchmark clean

# The test extra (pytest, ruff, scikit-learn, sybil) only for `make test` and `make lint`: scikit-learn brings
# scipy, and with scipy installed torchmetrics (which Lightning imports) imports scipy.signal at start-up,
# 0.6 s on every command here.
install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# pip byte-compiles what it installs on one core, half of a fresh install's time (torch alone 18 s
# here); compileall afterwards uses every core. Compiling at install matters where PYTHONDONTWRITEBYTECODE
# is set: a process would compile all it imports every time (`import lightning` 12 s instead of 5). It
# prints nothing and exits 0 even where a file is in newer Python's syntax (torch has one), as pip would.
# $(call setup,EXTRA): the venv, torch pinned first, then this project with its EXTRA.
define setup
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile $(TORCH)
	$(PY) -m pip install --quiet --no-compile -e ".$(1)"
	$(PY) -m compileall -qq -j 0 $(VENV)/lib || true
endef

$(VENV)/.installed: pyproject.toml Makefile
	$(call setup,)
	touch $@

# One pip run for the project and its test extra: 20 s less than installing one after the other.
$(VENV)/.installed-test: pyproject.toml Makefile
	$(call setup,[test])
	touch $(VENV)/.installed $@

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

# The test extra: the classifier section trains on scikit-learn's digits, the sweep section needs Optuna.
benchmark: install-test
	$(PY) -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) lightning_logs .pytest_cache
