"""Plain helpers shared by the test modules (fixtures live in the conftest.py files)."""

from __future__ import annotations

import json
from pathlib import Path

from mllocal.cloud import LocalCloud

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
HOUSING_CSV = ROOT / "data" / "housing.csv"


def load_event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


def keys(cloud: LocalCloud, prefix: str = "") -> list[str]:
    pages = cloud.s3.get_paginator("list_objects_v2").paginate(Bucket=cloud.stack.bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def versions(cloud: LocalCloud, key: str) -> int:
    resp = cloud.s3.list_object_versions(Bucket=cloud.stack.bucket, Prefix=key)
    return len([v for v in resp.get("Versions", []) if v["Key"] == key])


def first_rows(path: Path, n: int) -> bytes:
    """The header and the first n data rows of a CSV file, as bytes."""
    return b"".join(path.read_bytes().splitlines(keepends=True)[: n + 1])
