# painloop developer commands. `make demo` and `make test` work on a fresh clone:
# they create .venv and install the project first when needed.

PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := .make-install-stamp
PYTEST_ARGS ?=

# One BLAS thread: batched NumPy collapses when OpenBLAS threads compete for
# the cores (docs/performance.md). Override with OPENBLAS_NUM_THREADS=n make ...
export OPENBLAS_NUM_THREADS ?= 1

.DEFAULT_GOAL := help
.PHONY: help venv install demo test lint benchmark validate clean

help:
	@echo "make demo       install if needed, train PPO briefly (experiment=long_term), then evaluate it and all baselines on the test cohort over months (90 days warm-up, 28 scored)"
	@echo "make test       install if needed, then run the test suite"
	@echo "make lint       ruff check and mypy (simenv, agents)"
	@echo "make benchmark  simulator throughput (python -m experiments.benchmark --section simulator)"
	@echo "make validate   the default cohort against its targets (python -m experiments.validate_model)"
	@echo "make install    create $(VENV) and install painloop with every extra: $(EXTRAS) (also: make venv; make demo installs the core only)"
	@echo "make clean      remove caches and build leftovers (keeps $(VENV) and run outputs)"

# pyvenv.cfg is written when the venv is created, so a deleted and recreated
# venv is newer than the stamp and triggers a reinstall.
$(VENV)/pyvenv.cfg:
	$(PYTHON) -m venv $(VENV)

# Two installs, each redone only when the requirements change (or the venv is new):
# - the core (`pip install -e .`): the env, baselines, evaluation, training and export;
#   all `make demo` needs;
# - every extra (dev, onnx, sweep, ray): tests, lint, sweeps on every launcher, ONNX.
# The constraints file pins the CPU build of torch; the guard after each install fails
# the set-up on CI if a CUDA build slipped in, and only warns elsewhere (off these
# machines the registry's Linux torch is a CUDA build).
CORE_STAMP := .make-core-stamp
EXTRAS := dev,onnx,sweep,ray
define torch_guard
@if $(VPY) -c "import torch,sys; sys.exit(torch.version.cuda is not None)"; then \
		echo "torch: CPU build"; \
	elif [ "$${CI:-}" = "true" ]; then \
		echo "ERROR: a CUDA build of torch was installed (CI=true); constraints.txt must pin the CPU build." >&2; \
		exit 1; \
	else \
		echo "WARNING: torch is a CUDA build (several GB); painloop needs only the CPU build." >&2; \
	fi
endef

$(CORE_STAMP): pyproject.toml constraints.txt $(VENV)/pyvenv.cfg
	$(VPY) -m pip install -c constraints.txt -e .
	$(torch_guard)
	@touch $(CORE_STAMP)

$(STAMP): pyproject.toml constraints.txt $(VENV)/pyvenv.cfg
	$(VPY) -m pip install -c constraints.txt -e ".[$(EXTRAS)]"
	$(torch_guard)
	@touch $(STAMP) $(CORE_STAMP)

venv install: $(STAMP)

# The demo trains PPO briefly with experiment=long_term (training that sees the long-run cost of
# tolerance, docs/training.md "Training for the long term"; DEMO_STEPS decisions, under 2 minutes), then evaluates it
# beside every baseline on the test cohort in the long-term frame (each controller on its own copy of
# each patient for 90 days of warm-up, then 28 scored days; docs/evaluation.md, "Frames"), paired,
# differences against the threshold, on every usable core; then each controller's share of the
# headroom up to the clairvoyant planner, measured on the first DEMO_HEADROOM_PATIENTS test patients
# (the planner is the costly part; docs/evaluation.md, "Share of headroom closed"). The training
# and evaluation folders are the demo's own and are replaced on every run. It needs the core install only.
DEMO_STEPS ?= 1024000
DEMO_HEADROOM_PATIENTS ?= 4
demo: $(CORE_STAMP)
	rm -rf outputs/demo/train outputs/demo/evaluate
	$(VPY) -m experiments.train experiment=long_term hydra.run.dir=outputs/demo/train progress_bar=false total_timesteps=$(DEMO_STEPS) seed=0
	$(VPY) -m experiments.evaluate hydra.run.dir=outputs/demo/evaluate reference=threshold frame=long_term jobs=-1 \
		'controllers=[off,continuous,cycling,threshold,dual_threshold,latent_threshold,random,ppo=run:outputs/demo/train]' \
		headroom.bound=planner_clairvoyant headroom.patients=$(DEMO_HEADROOM_PATIENTS)

# pytest exits 5 when it collected no tests: that is a failure, not a pass.
test: $(STAMP)
	@rc=0; $(VPY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests" >&2; fi; \
	exit $$rc

lint: $(STAMP)
	$(VPY) -m ruff check . && $(VPY) -m mypy

benchmark: $(STAMP)
	$(VPY) -m experiments.benchmark --section simulator

validate: $(STAMP)
	$(VPY) -m experiments.validate_model

clean:
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache .mypy_cache .hypothesis build dist
