"""Shared fixtures: the template's resources on moto with the real handlers (mllocal.LocalCloud)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mllocal.cloud import LocalCloud
from mllocal.template import local_stack

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


def load_event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.fixture
def cloud():
    with LocalCloud(local_stack(overrides={"LogLevel": "WARNING"})) as c:
        yield c


def keys(cloud: LocalCloud, prefix: str = "") -> list[str]:
    pages = cloud.s3.get_paginator("list_objects_v2").paginate(Bucket=cloud.stack.bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def versions(cloud: LocalCloud, key: str) -> int:
    resp = cloud.s3.list_object_versions(Bucket=cloud.stack.bucket, Prefix=key)
    return len([v for v in resp.get("Versions", []) if v["Key"] == key])
