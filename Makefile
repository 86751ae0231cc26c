# Quickstart targets: `make demo` and `make test`. Each creates/reuses .venv and installs what it needs.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU machines take the local CPU wheel of torch 2.13.0; GPU users may set TORCH_SPEC to their CUDA build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.rigstyle-installed
# The Node.js reference client the tests run.
NODE_CLIENT := examples/node_client
DEMO_OUT ?= demo_out

.PHONY: install demo test test-blender42 bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile $(NODE_CLIENT)/package-lock.json
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[blender,dev,ray]"
	cd $(NODE_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(STAMP)

# Blender 4.2 LTS check: the add-on's tests against the real bpy 4.2 module, in a venv of its own (the
# `blender` extra pins bpy 5.0.1, so this installs only `dev`, in the same pip call as bpy to keep 4.2).
VENV42 ?= .venv-blender42
PY42 := $(VENV42)/bin/python
BPY42_SPEC ?= bpy==4.2.23
STAMP42 := $(VENV42)/.rigstyle-installed

$(STAMP42): pyproject.toml Makefile
	@test -x $(PY42) || $(PYTHON) -m venv $(VENV42)
	@$(PY42) -c "import torch" 2>/dev/null || $(PY42) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY42) -m pip install --quiet "$(BPY42_SPEC)" -e ".[dev]"
	@touch $(STAMP42)

test-blender42: $(STAMP42)
	$(PY42) -m pytest -q tests/blender_addon -m "blender and not slow"

demo: $(STAMP)
	$(VENV)/bin/rigstyle demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	@for b in benchmarks/bench_*.py benchmarks/refine_temporal.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy rigs neural_backend blender_addon

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
