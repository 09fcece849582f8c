# degen: `make book` trains the default sweep and builds the book;
# `make test` runs lint and the tests. Both create .venv on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= default
DEVICE ?=
DEVICE_FLAG := $(if $(DEVICE),--device $(DEVICE),)
# QUIET=1 turns the progress bars off (for logs).
QUIET ?=
RUN_FLAGS := $(DEVICE_FLAG) $(if $(QUIET),--quiet,)
STAMP := $(VENV)/.degen-installed
# The CPU build of this torch release is what the tests and the default
# profile are sized for; an unpinned torch would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup test book sweep bench lab clean clean-all

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[book,test,cluster]"
	@touch $(STAMP)
	@echo "environment ready in $(VENV)"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

book: $(STAMP)
	$(BIN)/python -m degen book --profile $(PROFILE) $(RUN_FLAGS)

sweep: $(STAMP)
	$(BIN)/python -m degen sweep --profile $(PROFILE) $(RUN_FLAGS)

# The reference implementations the benchmarks time against (dev only).
BENCH_STAMP := $(VENV)/.degen-bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m degen bench $(DEVICE_FLAG)

# JupyterLab in the same environment; the .py notebooks open as notebooks.
lab: $(STAMP)
	@mkdir -p $(VENV)/share/jupyter/lab/settings
	@echo '{"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}}}' \
		> $(VENV)/share/jupyter/lab/settings/overrides.json
	$(BIN)/jupyter lab notebooks

# `degen clean` alone only lists what it would remove.
clean:
	$(BIN)/python -m degen clean --yes

# Also removes the trained networks and the environment.
clean-all:
	rm -rf _build book/generated results $(VENV)
