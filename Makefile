# Quick start: `make run` runs the product, `make test` runs every check.
# Both create .venv and install what they need, so they work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench protos clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# The product: the local cloud and one unprovisioned outlet in this terminal; it prints the
# provisioning, curl and OTA commands to run next. Ctrl-C stops both; state is kept.
# RUN_ARGS passes options, e.g. RUN_ARGS="--mqtt-port 0 --rest-port 0 --firmware-port 0".
run: $(STAMP)
	@$(BIN)/jumpstart run $(RUN_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts apps
	$(BIN)/ruff format --check src tests benchmarks scripts apps

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

# Regenerate the committed *_pb2 modules after editing a .proto file.
protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
