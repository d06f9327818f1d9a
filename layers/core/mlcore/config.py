"""Settings read from the environment, only by handlers (never by domain code)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    bucket: str
    training_state_machine_arn: str = ""

    @classmethod
    def from_env(cls) -> Settings:
        bucket = os.environ.get("DATA_BUCKET", "")
        if not bucket:
            raise RuntimeError("DATA_BUCKET is not set")
        return cls(bucket=bucket, training_state_machine_arn=os.environ.get("TRAINING_STATE_MACHINE_ARN", ""))
