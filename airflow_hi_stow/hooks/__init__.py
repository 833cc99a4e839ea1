"""Airflow hooks: the STOW-RS client wired to Airflow connections."""
