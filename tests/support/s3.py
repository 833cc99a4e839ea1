"""moto's S3 in server mode on loopback: a real HTTP endpoint that boto3 (and Airflow's S3Hook) talk to."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ACCESS_KEY = "AKIDMOTOTEST"
SECRET_KEY = "moto-secret-for-tests"
REGION = "us-east-1"


@dataclass
class MotoS3:
    url: str
    bucket: str

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(retries={"max_attempts": 2}),
        )

    def connection_json(self) -> str:
        """An Airflow ``aws`` connection reaching this S3 (for ``AIRFLOW_CONN_<ID>``)."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": ACCESS_KEY,
                "password": SECRET_KEY,
                "extra": {"region_name": REGION, "endpoint_url": self.url},
            }
        )

    def upload_tree(self, root: Path, prefix: str) -> list[str]:
        """Upload every file under ``root`` to ``prefix`` (relative paths kept); returns the URIs."""
        client = self.client()
        uris = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            key = f"{prefix.rstrip('/')}/{path.relative_to(root).as_posix()}"
            client.upload_file(str(path), self.bucket, key)
            uris.append(f"s3://{self.bucket}/{key}")
        return uris


def new_bucket(url: str) -> MotoS3:
    s3 = MotoS3(url, f"bucket-{uuid.uuid4().hex[:12]}")
    s3.client().create_bucket(Bucket=s3.bucket)
    return s3
