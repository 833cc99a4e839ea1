# The two set-up commands of the README: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv lint test demo bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "airflow-hi-stow needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Lint and type-check, then the whole test suite; ends with pytest's summary line.
test: lint
	$(BIN)/pytest

# The main job: a generated DICOM set through the sample DAG into the local HealthImaging emulator (see README).
demo: venv
	$(BIN)/python -m airflow_hi_stow.demo --output demo-output --dags-folder dags

bench: venv
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/emulator_ingest.py
	$(BIN)/python bench/import_engine.py
	$(BIN)/python bench/validate.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
