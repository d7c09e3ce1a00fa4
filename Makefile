# Developer shortcuts. `make install` once, then any target. `make test` is what CI runs.
VENV := .venv
BIN := $(VENV)/bin
SRC := heta_lens tests scripts tutorials
# Two xdist workers on two cores: one BLAS thread each (2 threads each oversubscribes: ~10x slower).
export OMP_NUM_THREADS ?= 1

.PHONY: install lock check-latest format lint typecheck unit acceptance test device-check bench docs tutorials

install:  ## create/update .venv (TL 3.9) and .venv-tl4 (TL 4.3)
	bash scripts/install.sh

lock:  ## regenerate constraints/tl{3,4}.lock from constraints/tl{3,4}.txt + pyproject.toml
	bash scripts/lock.sh

check-latest:  ## newest transformers / transformer-lens, unpinned, against the oracle tests
	bash scripts/check_latest.sh

format:  ## rewrite formatting and apply safe lint fixes
	$(BIN)/ruff format $(SRC)
	$(BIN)/ruff check --fix $(SRC)

lint:
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)

typecheck:
	$(BIN)/pyright

unit:  ## fast tier: tiny random models, float64
	$(BIN)/python -m pytest tests/unit -n 2 --dist loadgroup

acceptance:  ## slow tier: real embedded SmolLM2
	$(BIN)/python -m pytest tests -m slow -n 2

test:  ## the full gate, same as CI
	bash scripts/test.sh

device-check:  ## on a GPU machine: pytest -m cuda, then the device timing table
	PYTHON=$(BIN)/python bash scripts/device_check.sh

bench:  ## cost and quality tables on SmolLM2 (~40 min on 2 cores) -> benchmarks/RESULTS.md
	OMP_NUM_THREADS=2 $(BIN)/heta-lens bench --threads 2 --out benchmarks/RESULTS.md

docs:  ## API reference from the docstrings -> site/api/index.html (fails on any pdoc warning)
	bash scripts/build_docs.sh

tutorials:  ## re-execute tutorials/*.py and rewrite their .ipynb twins (~7 min on 2 cores)
	$(BIN)/python scripts/run_tutorials.py
