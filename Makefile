# Two commands do everything on a fresh machine:
#   make train  set up, then run the main job (pretrain the tiny VLA, ~20 min on 2 CPU cores)
#   make test   set up, then run the tests
PYTHON ?= python3
STAMP := .setup-stamp

.PHONY: setup train test demo bench lint

setup: $(STAMP)

# Idempotent: system rendering library only where software rendering is needed, the CPU build of
# torch only where no NVIDIA GPU is present (a plain `torch` would pull a multi-GB CUDA build),
# then the package itself. Re-runs when pyproject.toml changes.
$(STAMP): pyproject.toml
	@if ! command -v nvidia-smi >/dev/null 2>&1; then \
	  if ! ldconfig -p | grep -q libOSMesa; then \
	    echo "installing libosmesa6 (offscreen rendering without a GPU)"; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libosmesa6; \
	  fi; \
	  $(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install -q torch==2.13.0; \
	fi
	$(PYTHON) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

test: setup
	$(PYTHON) -m pytest -q -n 2

train: setup
	$(PYTHON) scripts/train_vla.py

demo: setup
	$(PYTHON) scripts/show_tasks.py

bench: setup
	$(PYTHON) scripts/bench_sim.py
	$(PYTHON) scripts/eval_experts.py
	$(PYTHON) scripts/bench_data.py
	$(PYTHON) scripts/bench_train.py

lint: setup
	$(PYTHON) -m ruff check embodied scripts tests
