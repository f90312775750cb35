# spine_nb: two commands do all set-up on a fresh machine.
#   make demo   build .venv (if missing) and run the main job on the synthetic default
#   make test   build the same environment and run every test
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1
export MPLBACKEND := Agg

.PHONY: env demo test test-nbs test-py export clean-nbs lab help

help:
	@echo "make demo | make test | make lab | make export"

$(STAMP): settings.ini setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	# torch pinned in the same command as monai so pip takes 2.13.0 (CPU here, CUDA on GPU machines)
	$(BIN)/pip install -q "torch==2.13.0" -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

env: $(STAMP)

demo: env
	$(BIN)/python -m spine_nb.demo

export: env
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

test-nbs: env
	$(BIN)/nbdev_test --n_workers 2 --timing

test-py: env
	$(BIN)/python -m pytest nbs/tests

test: env test-nbs test-py

lab: env
	$(BIN)/jupyter lab nbs
