"""A local AWS HealthImaging emulator: StoreDICOM with SigV4 verification, the boto3 ``medical-imaging`` APIs,
QIDO-RS/WADO-RS reads and fault injection, as one Starlette app served by uvicorn.

Start it with ``hi-stow emulator`` or ``python -m airflow_hi_stow.emulator``; tests use
:func:`airflow_hi_stow.testing.start_emulator`. This subpackage never imports Airflow.
"""
