# The two commands of the README:
#   make lab    set up the environment, fetch the data, start JupyterLab
#   make test   set up the environment, fetch the data, lint, run every test
# Offline with a local copy of the data: add MIRROR=/path/to/data-mirror
# (or set DLWPT_DATA_MIRROR).
#   make test-oldest   the same tests with the oldest releases requirements.txt allows
#                      (pinned in requirements-oldest.txt, in .venv-oldest)
#   make test-hosted   the same tests with Colab's package set (requirements-colab.txt, in .venv-hosted)

PYTHON ?= python3
VENV   ?= .venv
REQUIREMENTS ?= requirements.txt
BIN    := $(VENV)/bin
MIRROR ?= $(DLWPT_DATA_MIRROR)
FETCH_FLAGS := $(if $(MIRROR),--mirror $(MIRROR))

.PHONY: requirements setup data lab lint test test-oldest test-hosted hosted-pins versions bench gpu-check clean

$(BIN)/.requirements: $(REQUIREMENTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -r $(REQUIREMENTS)
	touch $@

$(BIN)/.installed: $(BIN)/.requirements pyproject.toml
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# requirements: the packages only (.ci/run installs both ends' side by side); setup: and the helper package dlwpt
requirements: $(BIN)/.requirements
setup: $(BIN)/.installed

data: setup
	$(BIN)/python -m dlwpt.fetch $(FETCH_FLAGS)

# JupyterLab refuses to start as root (containers, cloud VMs, CI): pass --allow-root only for root.
LAB_FLAGS = $(if $(filter 0,$(shell id -u)),--allow-root)

lab: data
	$(BIN)/jupyter lab $(LAB_FLAGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/actionlint

# pytest-xdist runs the tests on every core (JOBS=2 for two, JOBS=0 for none); a chapter's notebooks and its
# focused tests share one worker (conftest.py). After the tests pass, the exact versions they ran on are
# written to $(VENV)/tested-versions.txt.
# PYTEST_ARGS=--real-downloads: the real pretrained weights instead of the stand-ins (needs the internet).
JOBS ?= auto
test: data lint
	$(BIN)/python -m pytest -n $(JOBS) $(PYTEST_ARGS)
	$(BIN)/python .ci/tested_versions.py record > $(VENV)/tested-versions.txt

test-oldest:
	$(MAKE) test VENV=.venv-oldest REQUIREMENTS=requirements-oldest.txt

test-hosted:
	$(MAKE) test VENV=.venv-hosted REQUIREMENTS=requirements-colab.txt

# Follow Colab: regenerate requirements-colab.txt from the package list Google publishes for its runtime
# (googlecolab/backend-info's pip-freeze.gpu.txt), e.g. make hosted-pins FREEZE=../shared/hosted/colab-pip-freeze.gpu.txt
FREEZE ?= ../shared/hosted/colab-pip-freeze.gpu.txt
hosted-pins: setup
	$(BIN)/python .ci/hosted_pins.py $(FREEZE) > requirements-colab.txt

# Rewrite the README's table of tested versions from the last `make test`, `make test-hosted`, `make test-oldest`.
versions:
	$(PYTHON) .ci/tested_versions.py readme .venv-oldest/tested-versions.txt .venv-hosted/tested-versions.txt \
		.venv/tested-versions.txt

bench: setup
	$(BIN)/python benchmarks/bench_ch7.py

# Runs every notebook on the GPU (CUDA, else Apple MPS), proves the work ran there, times chapter 7 on GPU and
# CPU, writes outputs/gpu_check/report.md; says so and exits 0 on a machine without a GPU.
gpu-check: data
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf .venv .venv-oldest .venv-hosted .pytest_cache .ruff_cache
