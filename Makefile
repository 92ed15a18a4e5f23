# The project's two commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
# Installed before anything else so that fairseq's plain `torch` requirement is already met.
# On these machines torch==2.13.0 resolves to a local CPU wheel; on a GPU machine pass your own,
# e.g. `make test TORCH='torch==2.5.1 --index-url https://download.pytorch.org/whl/cu121'`.
TORCH ?= torch==2.13.0
# The suite runs on TEST_WORKERS processes (pytest-xdist; most of its time is fairseq starting in a subprocess,
# one core each); TEST_WORKERS=0 runs it in this process, e.g. `make test TEST_WORKERS=0 PYTEST_ARGS='-x -k probe'`.
TEST_WORKERS ?= 2
PYTEST_ARGS ?=
DEMO_ARGS ?=
BENCH_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.rxf-installed
# The TORCH this .venv was made with: a different TORCH on the command line re-installs torch in it.
TORCH_SPEC := $(VENV)/.rxf-torch

.PHONY: install perl-deps wordnet-deps test test-fast lint demo bench clean FORCE

install: $(STAMP)

$(TORCH_SPEC): FORCE
	@mkdir -p $(VENV)
	@echo '$(TORCH)' | cmp -s - $@ 2>/dev/null || echo '$(TORCH)' > $@

$(STAMP): setup.py $(TORCH_SPEC)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e '.[test,hf,demo]'
	@# fairseq-fixed pulls torchaudio 2.11.1, which cannot load with torch 2.13 and makes transformers fail at
	@# import; no torchaudio build matches torch 2.13, and fairseq's text tasks never use it.
	$(BIN)/python -m pip uninstall -y -q torchaudio
	@touch $@

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

# The unit tests alone (no fairseq training in a subprocess, no demo, no documentation run): a minute or two.
test-fast: $(STAMP)
	@$(BIN)/python -m pytest tests -m "not slow" -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-fast: pytest collected no tests; that is a failure" >&2; exit 1; fi; \
	exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

demo: $(STAMP) wordnet-deps
	$(BIN)/rxf-demo $(DEMO_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/cost.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info demo_output
