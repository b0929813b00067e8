# The README's commands. `make run` and `make test` work from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test test-js test-fast lint bench soak openapi clean browser cdeps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Chromium for the browser tests comes from Debian's packages; the test tool never downloads its own browser.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: install Debian's 'chromium' package for the browser tests" >&2; fi; }

# The fan-out benchmark's load generator (benchmarks/native/wsload.c) is compiled on first use: a C compiler and
# zlib's headers, from Debian's packages.
cdeps:
	@printf '#include <zlib.h>\n' | cc -E - >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc zlib1g-dev >/dev/null; \
	  else echo "gcc and zlib's headers are missing: install Debian's 'gcc' and 'zlib1g-dev' for the native load generator" >&2; fi; }

run: install
	$(BIN)/sheetstream serve --host $(HOST) --port $(PORT) --demo

test: install browser cdeps
	$(BIN)/pytest -q
	$(MAKE) test-js

# The JS client's tests (node's own runner) start a real server from .venv.
test-js: install
	cd clients/js && npm ci --no-audit --no-fund --loglevel=error && node --test

test-fast: install
	$(BIN)/pytest -q -m 'not slow and not browser'

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

# BENCH_ARGS="--json bench.json" keeps every figure (python -m benchmarks.run --help).
bench: install cdeps
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# 1,000 WebSocket clients dropping and resuming at random for 2 minutes while changes stream (docs/operations.md);
# more options with SOAK_ARGS="--seed 2 --json soak.json" (python -m benchmarks.soak --help).
soak: install
	$(BIN)/python -m benchmarks.soak --clients 1000 --duration-s 120 $(SOAK_ARGS)

openapi: install
	$(BIN)/sheetstream openapi > docs/openapi.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache benchmarks/native/build
