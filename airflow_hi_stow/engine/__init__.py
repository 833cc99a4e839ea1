"""The engines, free of Airflow, shared by the hooks, the operators and the command line.

``importer``: sources -> headers -> checks -> resume -> batches sent in parallel under adaptive throttling -> ledger,
manifest, summary. ``deidentify``: sources -> the de-identification library -> a local or S3 destination and
quarantine -> the list of outputs and the report.
"""
