# Two commands do everything on a fresh machine:
#   make train  set up, then run the main job (pretrain the tiny VLA, 20-40 min on 2 CPU cores)
#   make test   set up, then run the tests (make test-fast: all but the slow ones, for day-to-day work)
# Setup installs into a project virtual environment, .venv, from the lock (requirements.lock).
PYTHON ?= python3
TORCH := 2.13.0
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp

.PHONY: setup train test test-fast demo bench lint lock metaworld test-metaworld lock-metaworld

setup: $(STAMP)

# System packages, only where missing: venv support (Debian splits it out) and the software renderer
# where no NVIDIA GPU is present. Used by setup and metaworld.
define SYSTEM_DEPS
need=""; \
$(PYTHON) -c "import ensurepip" 2>/dev/null || need="python3-venv"; \
if ! command -v nvidia-smi >/dev/null 2>&1 && ! ldconfig -p | grep -q libOSMesa; then need="$$need libosmesa6"; fi; \
if [ -n "$$need" ]; then \
  echo "installing $$need"; \
  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$need; \
fi
endef

# Idempotent; re-runs when pyproject.toml or the lock changes.
# torch is pinned here, not in the lock: `pip install torch==$(TORCH)` takes this machine's CPU build
# where one lies on disk and the CUDA build on a GPU machine; a plain `torch` would pull CUDA everywhere.
$(STAMP): pyproject.toml requirements.lock
	@$(SYSTEM_DEPS)
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==$(TORCH)
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

# The web page's test drives Debian's headless Chromium; installed here, for the tests only.
test: setup
	@command -v chromedriver >/dev/null || { echo "installing chromium chromium-driver (the sim page's test)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver \
	  || echo "WARNING: could not install chromium; the sim page's browser test will be skipped"; }
	$(PY) -m pytest -q -n 2 --dist loadfile

# Day-to-day: everything but the tests marked slow (fresh-venv install, DDP, browser, REPL, whole scripts).
# --dist loadfile: a test file's module fixtures (a collected store, a trained and exported run) are built
# once, on one worker, instead of once per worker.
test-fast: setup
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow"

train: setup
	$(PY) scripts/train_vla.py

demo: setup
	$(PY) scripts/show_tasks.py

bench: setup
	$(PY) scripts/bench_sim.py
	$(PY) scripts/eval_experts.py
	$(PY) scripts/bench_data.py
	$(PY) scripts/bench_train.py

lint: setup
	$(PY) -m ruff check embodied scripts tests experiments
	$(VENV)/bin/lint-imports

# Refresh the lock from pyproject.toml's ranges (newest versions that satisfy them), then run `make test`.
# torch is resolved as this machine's CPU build so that its CUDA-only dependencies stay out of the lock.
# Extras by name, not --all-extras: [metaworld] pins mujoco==3.3.0 and has its own lock (below).
lock:
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv
	echo "torch==$(TORCH)+cpu" > $(VENV)/torch-constraint.txt
	$(VENV)/bin/uv pip compile pyproject.toml --extra runtime --extra full --extra dev --python-version 3.11 --upgrade \
	  --find-links /opt/wheels -c $(VENV)/torch-constraint.txt --no-emit-package torch -o requirements.lock

# Meta-World v3 (embodied/envs/metaworld.py) in its own env: metaworld 3.1.1 pins mujoco==3.3.0, the main
# env has MuJoCo 4. Same recipe as setup, from requirements-metaworld.lock ([metaworld] + [dev]).
MW_VENV := .venv-metaworld
MW_PY := $(MW_VENV)/bin/python
MW_STAMP := $(MW_VENV)/.setup-stamp

metaworld: $(MW_STAMP)

$(MW_STAMP): pyproject.toml requirements-metaworld.lock
	@$(SYSTEM_DEPS)
	@[ -x $(MW_PY) ] || $(PYTHON) -m venv $(MW_VENV)
	$(MW_PY) -m pip install -q torch==$(TORCH)
	$(MW_PY) -m pip install -q -r requirements-metaworld.lock
	$(MW_PY) -m pip install -q --no-deps -e .
	@touch $(MW_STAMP)

test-metaworld: metaworld
	$(MW_PY) -m pytest -q tests/envs/test_metaworld.py

# Refresh requirements-metaworld.lock the way `lock` refreshes requirements.lock (uv from the main .venv).
lock-metaworld:
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv
	echo "torch==$(TORCH)+cpu" > $(VENV)/torch-constraint.txt
	$(VENV)/bin/uv pip compile pyproject.toml --extra metaworld --extra dev --python-version 3.11 --upgrade \
	  --find-links /opt/wheels -c $(VENV)/torch-constraint.txt --no-emit-package torch -o requirements-metaworld.lock
