# Quick start: `make run` runs the product, `make test` runs every check.
# Both create .venv and install what they need, so they work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One stamp per extra: `make run` installs only what running needs; `make test` adds the
# test tools and oracles on top.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed-test
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: run test system-deps lint typecheck unit bench fuzz protos clean

$(BIN)/python:
	@echo "creating $(VENV) (Python virtual environment)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --progress-bar on --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	@echo "installing jumpstart and what it needs to run into $(VENV)"
	$(PIP) install --progress-bar on -e .
	@touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "installing jumpstart with its test tools into $(VENV)"
	$(PIP) install --progress-bar on -e '.[test]'
	@touch $(STAMP) $(RUN_STAMP)

# The product: the local cloud and one unprovisioned outlet in this terminal; it prints the
# provisioning, curl and OTA commands to run next. Ctrl-C stops both; state is kept.
# RUN_ARGS passes options, e.g. RUN_ARGS="--mqtt-port 0 --rest-port 0 --firmware-port 0 --dashboard-port 0".
run: $(RUN_STAMP)
	@$(BIN)/jumpstart run $(RUN_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts apps
	$(BIN)/ruff format --check src tests benchmarks scripts apps

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

# System packages the tests use (mosquitto, PostgreSQL, curl): installed as root, otherwise
# one line with the command to run.
system-deps:
	@$(PYTHON) scripts/system_deps.py

test: system-deps lint typecheck unit

# Regenerate the committed *_pb2 modules after editing a .proto file.
protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# The fuzz regression tests at 20 times their CI size (MQTT over TLS, REST, the MQTT core).
fuzz: $(STAMP)
	JUMPSTART_FUZZ_SCALE=20 $(BIN)/pytest -q tests/cloud/gateway/test_fuzz.py tests/cloud/test_hostile_input.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
