"""Durable places an import writes to: a local directory or an S3 prefix (manifests, ledgers, reports)."""
