# Developer shortcuts. `make install` once, then any target. `make test` is what CI runs.
VENV := .venv
BIN := $(VENV)/bin
SRC := heta_lens tests

.PHONY: install format lint typecheck unit acceptance test

install:  ## create/update .venv (TL 3.9) and .venv-tl4 (TL 4.3)
	bash scripts/install.sh

format:  ## rewrite formatting and apply safe lint fixes
	$(BIN)/ruff format $(SRC)
	$(BIN)/ruff check --fix $(SRC)

lint:
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)

typecheck:
	$(BIN)/pyright

unit:  ## fast tier: tiny random models, float64
	$(BIN)/python -m pytest tests/unit -n 2

acceptance:  ## slow tier: real embedded SmolLM2
	$(BIN)/python -m pytest tests -m slow -n 2

test:  ## the full gate, same as CI
	bash scripts/test.sh

