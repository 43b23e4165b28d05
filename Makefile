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

.PHONY: help install models lab lab-flags test run release grade benchmarks clean

help:
	@echo "make lab         set up (first time: a few minutes) and open JupyterLab"
	@echo "make test        set up and run the whole test suite"
	@echo "make run         execute every lab's solution at full size into build/"
	@echo "make release     regenerate labs/ (student versions) from solutions/ with nbgrader"
	@echo "make grade       autograde SUBMISSIONS=folder (one sub-folder per student)"
	@echo "make benchmarks  run benchmarks/ (models, serving, engine step, grading, labs) and update docs/benchmarks.md"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -c "from tradeoffs.threads import configure_kernelspec; configure_kernelspec()"
	@touch $@

# JupyterLab defaults for the course, kept in the venv (never the user's home): jupyter/overrides.json
# (no "get notified about Jupyter news" prompt) and a notebook-trust database, so the kit's notebooks
# open trusted (`make lab` signs them). --notebook-dir=. roots the file browser at the course.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
TRUST_DIR    := $(abspath $(VENV))/share/jupyter/tradeoffs-trust

$(LAB_SETTINGS): jupyter/overrides.json $(STAMP)
	@mkdir -p $(dir $@)
	cp jupyter/overrides.json $@

install: $(STAMP) $(LAB_SETTINGS)

models: install
	@$(BIN)/tradeoffs models prepare

# Root (containers, CI) needs --allow-root; without a display, print the URL instead of a browser.
# tests/browser starts JupyterLab with exactly these flags (`make -s lab-flags` prints them).
NOTARY_FLAGS  := --NotebookNotary.db_file=$(TRUST_DIR)/nbsignatures.db --NotebookNotary.secret_file=$(TRUST_DIR)/notebook_secret
JUPYTER_FLAGS := --notebook-dir=. $(NOTARY_FLAGS) $(if $(filter 0,$(shell id -u)),--allow-root)

lab-flags:
	@echo $(JUPYTER_FLAGS)

lab: models
	@mkdir -p $(TRUST_DIR) && $(BIN)/jupyter trust $(NOTARY_FLAGS) notebooks/*.ipynb > /dev/null
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

# All four take a while (about 45 minutes on 2 cores): run them on an otherwise idle machine.
benchmarks: models
	$(BIN)/python benchmarks/models.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/engine_step.py
	$(BIN)/python benchmarks/grading.py
	$(BIN)/python benchmarks/labs.py

clean:
	rm -rf build .pytest_cache
