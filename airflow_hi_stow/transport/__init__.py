"""STOW-RS over HTTP: the client that sends request bodies streamed from the files, SigV4 signing, retries and
the errors a server answers. Knows nothing of where files come from beyond :mod:`airflow_hi_stow.sources`' types."""
