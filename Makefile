# Production AI Trade-offs — the two commands a newcomer needs are `make lab` and `make test`.
# Everything is idempotent: the venv is (re)installed only when pyproject.toml changes, and the
# model cache is built once (tradeoffs models prepare returns at once when it is complete).

SHELL      := /bin/bash
PYTHON     ?= $(shell command -v python3.11 || command -v python3)
VENV       ?= .venv
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.tradeoffs-installed
PYTEST_ARGS ?=
WORKERS    ?= 2
SUBMISSIONS ?= submitted

.PHONY: help install models lab test run release grade benchmarks clean

help:
	@echo "make lab         set up (first time: a few minutes) and open JupyterLab"
	@echo "make test        set up and run the whole test suite"
	@echo "make run         execute every lab's solution at full size into build/"
	@echo "make release     regenerate labs/ (student versions) from solutions/ with nbgrader"
	@echo "make grade       autograde SUBMISSIONS=folder (one sub-folder per student)"
	@echo "make benchmarks  run benchmarks/ (models, serving, grading) and update docs/benchmarks.md"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

models: $(STAMP)
	@$(BIN)/tradeoffs models prepare

# Root (containers, CI) needs --allow-root; without a display, print the URL instead of a browser.
JUPYTER_FLAGS := --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root)

lab: models
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] || [ "$$(uname)" = Darwin ]; then \
		$(BIN)/jupyter lab $(JUPYTER_FLAGS) notebooks/00_start_here.ipynb; \
	else \
		echo "No display found: starting JupyterLab without a browser; open the URL it prints."; \
		$(BIN)/jupyter lab --no-browser $(JUPYTER_FLAGS); \
	fi

test: models
	$(BIN)/python -m pytest $(PYTEST_ARGS)

run: models
	$(BIN)/tradeoffs run

release: $(STAMP)
	$(BIN)/tradeoffs release

grade: models
	$(BIN)/tradeoffs grade $(SUBMISSIONS) --workers $(WORKERS)

# All three take a while (about half an hour on 2 cores): run them on an otherwise idle machine.
benchmarks: models
	$(BIN)/python benchmarks/models.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/grading.py

clean:
	rm -rf build .pytest_cache
