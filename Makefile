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

# The guide's outlet on Wi-Fi (3_wifi_connection) in the monitor: press its button from another
# terminal with `.venv/bin/jumpstart device press outlet`; Ctrl-C stops it.
run: $(STAMP)
	@$(BIN)/jumpstart world ap list | grep -q '^myssid ' || \
		$(BIN)/jumpstart world ap add myssid --password mypassword
	@$(BIN)/jumpstart device list | grep -q '^outlet ' || $(BIN)/jumpstart device create outlet
	@mkdir -p build
	$(BIN)/jumpstart idf build apps/3_wifi_connection -o build/outlet.bin
	$(BIN)/jumpstart idf flash --device outlet build/outlet.bin
	$(BIN)/jumpstart idf monitor --device outlet

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
