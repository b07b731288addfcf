PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-all bench demo clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m ''

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/layers.py
	$(BIN)/python bench/features.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/recurrent.py
	$(BIN)/python bench/compress.py --ns 4

demo: $(STAMP)
	$(BIN)/python -m phnn.demo

clean:
	rm -rf $(VENV) demo_output
