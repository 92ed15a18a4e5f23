# The project's two commands: `make demo` and `make test`. Both create .venv when it is missing, installing exactly
# the versions in $(LOCK) (constraints.txt: what a green `make test` was proven with; `make lock` remakes it).
PYTHON ?= python3
VENV ?= .venv
LOCK ?= constraints.txt
# The lock's torch: on these machines torch==2.13.0 resolves to a local CPU wheel. On a GPU machine pass your own,
# e.g. `make test TORCH='torch==2.5.1 --index-url https://download.pytorch.org/whl/cu121'`: the lock then holds for
# everything but torch and its CUDA packages (nvidia-*, triton).
LOCKED_TORCH := $(shell sed -n 's/^torch==//p' $(LOCK) 2>/dev/null)
TORCH ?= torch==$(LOCKED_TORCH)
# The suite runs on TEST_WORKERS processes (pytest-xdist, one core each); TEST_WORKERS=0 runs it in this process,
# e.g. `make test TEST_WORKERS=0 PYTEST_ARGS='-x -k probe'`.
TEST_WORKERS ?= 2
PYTEST_ARGS ?=
DEMO_ARGS ?=
BENCH_ARGS ?=
# The second stack `make test-compat` proves: Python 3.12 with torch 2.11.0 (the GPU machines' stack), in its own
# venv from its own lock.
COMPAT_PYTHON ?= $(firstword $(shell python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null) \
	$(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3.12)
COMPAT_VENV ?= .venv-py312
COMPAT_LOCK ?= constraints-py312.txt
# What it runs there: the unit layer, and the integration tests of the plugin and of rxf.hf.
COMPAT_TESTS ?= tests/unit tests/integration/test_fairseq_train.py tests/integration/test_plugin_cli.py \
	tests/integration/test_torch_ddp.py tests/integration/test_hf_import.py tests/integration/test_hf_parity.py \
	tests/integration/test_hf_ddp.py tests/integration/test_import_layers.py

BIN := $(VENV)/bin
STAMP := $(VENV)/.rxf-installed
# The TORCH this .venv was made with: a different TORCH on the command line re-installs torch in it.
TORCH_SPEC := $(VENV)/.rxf-torch
# The lock as pip applies it here: the whole lock, or without torch and its CUDA packages when TORCH is not its torch.
PINS := $(VENV)/.rxf-constraints.txt
PIP := $(BIN)/python -m pip install -c $(PINS) --build-constraint $(PINS)
# The command whose green run on a clean clone a new lock needs (written into the lock's header).
LOCK_PROOF ?= make test

.PHONY: install lock perl-deps wordnet-deps test test-fast test-compat lock-compat lint demo bench clean FORCE

install: $(STAMP)

$(TORCH_SPEC): FORCE
	@mkdir -p $(VENV)
	@echo '$(TORCH)' | cmp -s - $@ 2>/dev/null || echo '$(TORCH)' > $@

$(STAMP): setup.py $(wildcard $(LOCK)) $(TORCH_SPEC)
	@test -f $(LOCK) || { echo "make: $(LOCK) is missing: \`make lock\` makes it" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ '$(TORCH)' = 'torch==$(LOCKED_TORCH)' ]; then cp $(LOCK) $(PINS); \
	else grep -v -E '^(torch|triton|nvidia-[a-z0-9-]+)==' $(LOCK) > $(PINS); fi
	@# the venv's own pip may predate --build-constraint: the locked pip first
	$(BIN)/python -m pip install -q -c $(PINS) --upgrade pip
	$(PIP) -q --upgrade setuptools wheel
	$(PIP) $(TORCH)
	$(PIP) -e '.[test,hf,demo,slurm]'
	@# fairseq-fixed pulls torchaudio, which cannot load with our torch and makes transformers fail at import;
	@# fairseq's text tasks never use it. The lock leaves it out.
	$(BIN)/python -m pip uninstall -y -q torchaudio
	@touch $@

# constraints.txt anew, from a fresh venv (.venv-lock) with the newest releases setup.py allows and TORCH: commit it
# only with a clean clone's `make test` green on it (docs/testing.md).
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade pip setuptools wheel
	.venv-lock/bin/python -m pip install -q $(TORCH)
	@# fairseq-fixed builds against torch: its build environment gets the torch just installed, not the newest
	.venv-lock/bin/python -m pip freeze --all > .venv-lock/build-constraints.txt
	.venv-lock/bin/python -m pip install -q --build-constraint .venv-lock/build-constraints.txt -e '.[test,hf,demo,slurm]'
	.venv-lock/bin/python -m pip uninstall -y -q torchaudio
	@{ echo "# The versions \`make install\` installs (pip -c): .venv-lock's \`pip freeze --all\` after \`make lock\` on"; \
	  echo "# $$(date -u +%F), $$(.venv-lock/bin/python -c 'import platform; print("Python", platform.python_version())'),"; \
	  echo "# $(TORCH). Update it only in a commit whose clean-clone \`$(LOCK_PROOF)\` is green (docs/testing.md)."; \
	  .venv-lock/bin/python -m pip freeze --all --exclude-editable; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	rm -rf .venv-lock
	@echo "make lock: wrote $(LOCK)"

# ROUGE-1.5.5 (rxf-rouge's perl backend) needs XML::Parser from Debian; installed when we are root.
perl-deps:
	@perl -MXML::Parser -MDB_File -e 1 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq libxml-parser-perl libwww-perl >/dev/null; \
	  else \
	    echo "rxf-rouge's perl backend needs: sudo apt-get install -y libxml-parser-perl libwww-perl" >&2; exit 1; \
	  fi; }

# make demo's tasks are built from WordNet 3.0 (Debian's wordnet-base, /usr/share/wordnet); installed when we are root.
# The tests use a cut of the same files (tests/fixtures/wordnet).
wordnet-deps:
	@test -f /usr/share/wordnet/data.noun || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq wordnet-base >/dev/null; \
	  else \
	    echo "make demo needs WordNet 3.0: sudo apt-get install -y wordnet-base" >&2; exit 1; \
	  fi; }

test: $(STAMP) perl-deps
	@$(BIN)/python -m pytest tests -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; that is a failure" >&2; exit 1; fi; \
	exit $$rc

# The unit layer alone (tests/unit: each module's logic in this process, no fairseq run, no child Python): about a
# minute. tests/integration runs components for real (fairseq in forks, pipelines, ROUGE-1.5.5, DDP); tests/e2e the
# commands as users type them (the shell wrappers, the docs, the demo, make, the benchmarks).
test-fast: $(STAMP)
	@$(BIN)/python -m pytest tests/unit -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-fast: pytest collected no tests; that is a failure" >&2; exit 1; fi; \
	exit $$rc

# The second stack (COMPAT_PYTHON, torch 2.11.0 from COMPAT_LOCK, in COMPAT_VENV): the unit layer and the plugin's
# and rxf.hf's integration tests. Run it before resolving an issue that touches rxf/, the plugin or rxf.hf.
test-compat:
	@$(MAKE) --no-print-directory install PYTHON=$(COMPAT_PYTHON) VENV=$(COMPAT_VENV) LOCK=$(COMPAT_LOCK)
	@$(COMPAT_VENV)/bin/python -m pytest $(COMPAT_TESTS) -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-compat: pytest collected no tests; that is a failure" >&2; exit 1; fi; \
	exit $$rc

lock-compat:
	$(MAKE) --no-print-directory lock PYTHON=$(COMPAT_PYTHON) LOCK=$(COMPAT_LOCK) LOCK_PROOF='make test-compat'

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

demo: $(STAMP) wordnet-deps
	$(BIN)/rxf-demo $(DEMO_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/cost.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info demo_output
