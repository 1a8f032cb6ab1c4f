# The two commands of the README:
#   make lab    set up the environment, fetch the data, start JupyterLab
#   make test   set up the environment, fetch the data, lint, run every test
# Offline with a local copy of the data: add MIRROR=/path/to/data-mirror
# (or set DLWPT_DATA_MIRROR).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MIRROR ?= $(DLWPT_DATA_MIRROR)
FETCH_FLAGS := $(if $(MIRROR),--mirror $(MIRROR))

.PHONY: setup data lab lint test bench clean

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

setup: $(BIN)/.installed

data: setup
	$(BIN)/python -m dlwpt.fetch $(FETCH_FLAGS)

lab: data
	$(BIN)/jupyter lab

lint: setup
	$(BIN)/ruff check .

test: data lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/bench_ch7.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
