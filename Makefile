# The two set-up commands of the README: `make demo` and `make test`. Both bootstrap .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name cmtoolkit --display-name "cmtoolkit" >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cmtoolkit demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check cmtoolkit tests bench
	$(BIN)/ruff format --check cmtoolkit tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/emulator_read.py
	$(BIN)/python bench/profiles.py
	$(BIN)/python bench/import.py
	$(BIN)/python bench/export.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
