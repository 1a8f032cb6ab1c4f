# The two commands of the README and CONTRIBUTING.md:
#   make lab    set up .venv with what the notebooks need (requirements.txt), fetch the data, start JupyterLab
#   make test   the same plus the maintainers' tools (requirements-dev.txt); lint, run every test
# Offline with a local copy of the data: add MIRROR=/path/to/data-mirror (or set DLWPT_DATA_MIRROR).
#   make test-oldest   the same tests with the oldest releases allowed (requirements-oldest.txt, in .venv-oldest)
#   make test-hosted   the same tests with Colab's package set (requirements-colab.txt, in .venv-hosted)

PYTHON ?= python3
VENV   ?= .venv
REQUIREMENTS ?= requirements.txt
DEV_REQUIREMENTS := requirements-dev.txt
BIN    := $(VENV)/bin
MIRROR ?= $(DLWPT_DATA_MIRROR)
FETCH_FLAGS := $(if $(MIRROR),--mirror $(MIRROR))
NEW_VENV = $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install -q --upgrade pip

.PHONY: requirements setup data lab lint test test-oldest test-hosted hosted-pins versions bench gpu-check clean

# What the notebooks need (make lab) ...
$(BIN)/.requirements: $(REQUIREMENTS)
	$(NEW_VENV)
	$(BIN)/python -m pip install -r $(REQUIREMENTS)
	touch $@

# ... and with the maintainers' tools (make test), in one pip run that stands for the first as well.
$(BIN)/.requirements-dev: $(REQUIREMENTS) $(DEV_REQUIREMENTS)
	$(NEW_VENV)
	$(BIN)/python -m pip install -r $(REQUIREMENTS) -r $(DEV_REQUIREMENTS)
	touch $(BIN)/.requirements $@

$(BIN)/.installed: $(BIN)/.requirements pyproject.toml
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# requirements: the packages of a test run (.ci/run installs the configurations side by side);
# setup: what make lab needs, and the helper package dlwpt
requirements: $(BIN)/.requirements-dev
setup: $(BIN)/.installed

data: setup
	$(BIN)/python -m dlwpt.fetch $(FETCH_FLAGS)

# JupyterLab refuses to start as root (containers, cloud VMs, CI): pass --allow-root only for root.
LAB_FLAGS = $(if $(filter 0,$(shell id -u)),--allow-root)

lab: data
	$(BIN)/jupyter lab $(LAB_FLAGS)

lint: requirements setup
	$(BIN)/ruff check .
	$(BIN)/actionlint

# pytest-xdist runs the tests on every core (JOBS=2 for two, JOBS=0 for none); a chapter's notebooks and its
# focused tests share one worker (conftest.py). After the tests pass, the exact versions they ran on are
# written to $(VENV)/tested-versions.txt.
# PYTEST_ARGS=--real-downloads: the real pretrained weights instead of the stand-ins (needs the internet).
JOBS ?= auto
test: requirements data lint
	$(BIN)/python -m pytest -n $(JOBS) $(PYTEST_ARGS)
	$(BIN)/python .ci/tested_versions.py record > $(VENV)/tested-versions.txt

test-oldest:
	$(MAKE) test VENV=.venv-oldest REQUIREMENTS=requirements-oldest.txt

test-hosted:
	$(MAKE) test VENV=.venv-hosted REQUIREMENTS=requirements-colab.txt

# Follow Colab: regenerate requirements-colab.txt from the package list Google publishes for its runtime
# (googlecolab/backend-info's pip-freeze.gpu.txt), e.g. make hosted-pins FREEZE=../shared/hosted/colab-pip-freeze.gpu.txt
FREEZE ?= ../shared/hosted/colab-pip-freeze.gpu.txt
hosted-pins: requirements setup
	$(BIN)/python .ci/hosted_pins.py $(FREEZE) > requirements-colab.txt

# Rewrite CONTRIBUTING.md's table of tested versions from the last `make test`, `make test-hosted`, `make test-oldest`.
versions: setup
	$(BIN)/python .ci/tested_versions.py table .venv-oldest/tested-versions.txt .venv-hosted/tested-versions.txt \
		.venv/tested-versions.txt

# Chapter 7's speed on the CPU and the GPU, side by side (tools/speed.py, p1ch7/README.md).
bench: setup
	$(BIN)/python tools/speed.py bench

# Runs every notebook on the GPU (CUDA, else Apple MPS), proves the work ran there, times chapter 7 on GPU and
# CPU, writes outputs/gpu_check/report.md; says so and exits 0 on a machine without a GPU.
gpu-check: data
	$(BIN)/python tools/speed.py gpu-check

clean:
	rm -rf .venv .venv-oldest .venv-hosted .pytest_cache .ruff_cache
