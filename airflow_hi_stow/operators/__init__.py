"""Airflow operators: thin wrappers over the Airflow-free engine in :mod:`airflow_hi_stow.engine`."""
