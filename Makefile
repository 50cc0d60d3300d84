# Two commands set everything up: `make run` and `make test` (see README.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-runtime

.PHONY: run test lint typecheck fuzz fuzz-long bench system-deps clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,bench,opus]'
	touch $(STAMP) $(RUN_STAMP)

# `make run` needs only the runtime dependencies (no test or bench extras); `opus` is runtime: the
# demo page's compressed upload (WebM/Opus) is decoded with PyAV.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[opus]'
	touch $(RUN_STAMP)

# System tools the suite drives for real: chromium (browser tests), promtool/prometheus (alert rules),
# redis-server (fleet mode tests), espeak-ng/sox (fixture regeneration only). Installed when missing and we are root.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "WARNING: missing system packages:$$missing (not root; tests needing them fail under CI=true)"; \
	  fi; \
	fi

# Binds VG_HOST:VG_PORT (default 127.0.0.1:8080): `VG_PORT=9000 make run`.
run: $(RUN_STAMP)
	$(BIN)/voice-gateway serve

lint: $(STAMP)
	$(BIN)/ruff check gateway providers audio tests benchmarks fixtures examples voice_gateway_client

# mypy: strict on audio/, providers/ and the base layer, default checks elsewhere (pyproject [tool.mypy])
typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) system-deps lint typecheck
	$(BIN)/python -m pytest -q

fuzz: $(STAMP)
	VG_FUZZ_EXAMPLES=5000 $(BIN)/python -m pytest -q tests -k fuzz

# >= 10^6 hostile client frames over sockets (native, Twilio, Telnyx, Vonage), the HTTP APIs, and 10^6
# hostile provider frames into every adapter; report in test-artifacts/fuzz-long/report.json
FUZZ_FRAMES ?= 1000000
fuzz-long: $(STAMP)
	nice -n 19 $(BIN)/python -m benchmarks.fuzz_long --frames $(FUZZ_FRAMES) --provider-frames $(FUZZ_FRAMES)

bench: $(STAMP)
	$(BIN)/python benchmarks/audio.py
	$(BIN)/python benchmarks/load.py

clean:
	rm -rf $(VENV) .pytest_cache
