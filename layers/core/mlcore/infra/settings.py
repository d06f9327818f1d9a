"""Settings read from the environment, only by handlers (never by domain code)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    bucket: str
    training_state_machine_arn: str = ""
    # URL ingestion allow-list (comma-separated CIDRs exempt from the public-address rule) and plain
    # http: for tests against a local server only; the template sets neither.
    url_allow_networks: str = ""
    url_allow_http: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        bucket = os.environ.get("DATA_BUCKET", "")
        if not bucket:
            raise RuntimeError("DATA_BUCKET is not set")
        return cls(
            bucket=bucket,
            training_state_machine_arn=os.environ.get("TRAINING_STATE_MACHINE_ARN", ""),
            url_allow_networks=os.environ.get("INGEST_URL_ALLOW_NETWORKS", ""),
            url_allow_http=os.environ.get("INGEST_URL_ALLOW_HTTP", "") == "true",
        )
