"""The import engine, free of Airflow, shared by the hooks, the operator and the command line: sources ->
headers -> checks -> resume -> batches sent in parallel under adaptive throttling -> ledger, manifest, summary."""
