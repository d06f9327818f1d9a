"""Configuration from the environment (the template's ``Globals`` and function ``Environment``), read by
handlers only, never by domain code."""

from __future__ import annotations

import os
from dataclasses import dataclass

from mlcore.infra.storage import S3Store


@dataclass(frozen=True)
class Settings:
    bucket: str
    training_state_machine_arn: str = ""
    batch_state_machine_arn: str = ""
    tuning_state_machine_arn: str = ""
    region: str = "us-east-1"
    # URL ingestion allow-lists (comma-separated CIDRs exempt from the public-address rule, ports besides 443)
    # and plain http: for tests against a local server only; the template sets none of them.
    url_allow_networks: str = ""
    url_allow_http: bool = False
    url_allow_ports: str = ""
    # training-run ceilings (template Parameters MaxConcurrentTrainingRuns and MaxRunCostUsd)
    max_concurrent_training_runs: int = 10
    max_run_cost_usd: float = 5.0
    # the function's memory (Lambda sets AWS_LAMBDA_FUNCTION_MEMORY_SIZE; absent, as locally: the template's
    # Globals MemorySize); the shard cache may hold SHARD_CACHE_FRACTION of it
    memory_mb: int = 1024

    SHARD_CACHE_FRACTION = 0.25

    @property
    def shard_cache_bytes(self) -> int:
        """The shard cache's bound: a quarter of the function's memory, so the cache, the shard being
        downloaded (held beside it until it is cached) and the runtime fit together."""
        return int(self.memory_mb * 2**20 * self.SHARD_CACHE_FRACTION)

    @classmethod
    def from_env(cls) -> Settings:
        bucket = os.environ.get("DATA_BUCKET", "")
        if not bucket:
            raise RuntimeError("DATA_BUCKET is not set")
        return cls(
            bucket=bucket,
            training_state_machine_arn=os.environ.get("TRAINING_STATE_MACHINE_ARN", ""),
            batch_state_machine_arn=os.environ.get("BATCH_STATE_MACHINE_ARN", ""),
            tuning_state_machine_arn=os.environ.get("TUNING_STATE_MACHINE_ARN", ""),
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            url_allow_networks=os.environ.get("INGEST_URL_ALLOW_NETWORKS", ""),
            url_allow_http=os.environ.get("INGEST_URL_ALLOW_HTTP", "") == "true",
            url_allow_ports=os.environ.get("INGEST_URL_ALLOW_PORTS", ""),
            max_concurrent_training_runs=int(os.environ.get("MAX_CONCURRENT_TRAINING_RUNS") or 10),
            max_run_cost_usd=float(os.environ.get("MAX_RUN_COST_USD") or 5.0),
            memory_mb=int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 1024),
        )

    def store(self) -> S3Store:
        """The data bucket behind the storage port."""
        return S3Store(self.bucket)
