# The two set-up commands of the README: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OLDEST_AIRFLOW := 3.0.6
OLDEST_VENV ?= .venv-airflow-$(OLDEST_AIRFLOW)

.PHONY: venv lint test test-oldest-airflow fuzz fault-matrix load-test demo bench bench-scale scale-test airflow compose-test clean

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

$(OLDEST_VENV)/.installed: pyproject.toml .ci/constraints-airflow-$(OLDEST_AIRFLOW).txt
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST_VENV)/bin/python -m pip install --quiet -c .ci/constraints-airflow-$(OLDEST_AIRFLOW).txt -e '.[test]'
	@touch $@

# Lint and type-check, the whole test suite on the current Airflow, then the compat subset on the oldest supported.
test: lint
	$(BIN)/pytest
	$(MAKE) test-oldest-airflow

# On Airflow 3.0.6: every module imports, the sample DAGs parse, dag.test() stores into the emulator, the demo runs.
test-oldest-airflow: $(OLDEST_VENV)/.installed
	$(OLDEST_VENV)/bin/python -c 'import airflow; assert airflow.__version__ == "$(OLDEST_AIRFLOW)", airflow.__version__'
	$(OLDEST_VENV)/bin/pytest -m compat -p no:cacheprovider

# The fuzz tests (tests/reliability/test_fuzz_*.py) with 20 times their examples, random ones (make test runs them
# derandomized, in under a minute); about 10 minutes.
fuzz: venv
	HI_STOW_FUZZ_FACTOR=20 $(BIN)/pytest -p no:cacheprovider tests/reliability/test_fuzz_emulator.py \
		tests/reliability/test_fuzz_stow.py tests/reliability/test_fuzz_dicom.py tests/reliability/test_fuzz_deid.py

# The fault matrix of tests/reliability/test_fault_matrix.py with 50,000 instances (make test runs 5,000).
fault-matrix: venv
	$(BIN)/python -m tests.reliability.fault_matrix --instances 50000

# 8 store tasks in parallel against one emulator injecting faults, for 3 minutes: every instance stored, no error
# but the injected ones, client and emulator memory flat (figures in build/load-test.json; see docs/reliability.md).
load-test: venv
	$(BIN)/python -m tests.stack.load_test $(LOAD_ARGS)

# The main job: a generated DICOM set through the sample DAG into the local HealthImaging emulator (see README).
demo: venv
	$(BIN)/python -m airflow_hi_stow.demo --output demo-output --dags-folder dags

# The Airflow UI with the sample DAGs: airflow standalone, the emulator, the connections and the sample data in place.
airflow: venv
	$(BIN)/python -m airflow_hi_stow.local_airflow --output airflow-local --dags-folder dags

# Writes docs/benchmarks.md (about 15 minutes; `make bench QUICK=1` for a smoke run of a few minutes). The peers
# (dicomweb-client, requests-aws4auth) are installed by bench/throughput.py into build/peers-venv, never here.
BENCH_QUICK := $(if $(QUICK),--quick,)
bench: venv
	$(BIN)/python bench/throughput.py $(BENCH_QUICK)
	$(BIN)/python bench/emulator_ingest.py $(BENCH_QUICK)
	$(BIN)/python bench/memory.py $(if $(QUICK),--gb 0.3,)
	$(BIN)/python bench/import_engine.py $(if $(QUICK),--files 400,)
	$(BIN)/python bench/deid.py $(if $(QUICK),--repeat 1,)
	$(BIN)/python bench/validate.py $(if $(QUICK),--small 800 --large 200 --repeat 1,)

# 100,000 instances through PartitionDicomOperator and mapped StoreDicomOperator in a dag.test() into the emulator
# (about 10 minutes, 8 GB of disk in build/ while it runs); not part of `make bench` or `make test`.
bench-scale: venv
	$(BIN)/python bench/scale.py $(if $(QUICK),--instances 10000 --shards 8,)

# docker-compose.yaml for real under podman (not part of `make test`; needs root; see docs/compose.md): builds local
# images, brings the stack up, triggers the sample pipeline through the REST API, checks the emulator, tears down.
compose-test: venv
	$(BIN)/python compose/compose_test.py

clean:
	rm -rf $(VENV) $(OLDEST_VENV) $(CELERY_VENV) compose-test-output .mypy_cache .ruff_cache .pytest_cache build *.egg-info

# Scale-out: the S3 pipeline on CeleryExecutor (PostgreSQL, Redis, two workers) against moto's S3 and the emulator.
CELERY_VENV ?= .venv-celery

$(CELERY_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(CELERY_VENV)
	$(CELERY_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CELERY_VENV)/bin/python -m pip install --quiet -e '.[test]' 'apache-airflow[celery,postgres]' 'celery[redis]>=5.5,<5.7'
	@touch $@

scale-test: $(CELERY_VENV)/.installed
	$(CELERY_VENV)/bin/python -m tests.stack.celery_scale $(SCALE_ARGS)
