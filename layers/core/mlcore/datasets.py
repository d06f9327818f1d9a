"""Data set ingestion: validated, immutable, content-addressed versions under ``raw/``."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from .errors import InvalidInput, NotFoundError
from .storage import AlreadyExists, NotFound, S3Store

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
UPLOAD_PREFIX = "uploads/"
MAX_BODY_BYTES = 5 * 1024 * 1024  # API path; Lambda's synchronous payload limit is 6 MB


def validate_name(name: str) -> str:
    if not DATASET_NAME.match(name or ""):
        raise InvalidInput(
            f"invalid data set name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def data_key(name: str, version: str) -> str:
    return f"raw/{name}/{version}/data.csv"


def meta_key(name: str, version: str) -> str:
    return f"raw/{name}/{version}/dataset.json"


def latest_key(name: str) -> str:
    return f"raw/{name}/latest.json"


def ingest(store: S3Store, name: str, data: bytes, source: str) -> dict:
    """Validate ``data`` as CSV and store it as version ``sha256[:16]`` of ``name``.

    The same bytes always give the same version, and a second upload writes
    nothing. The metadata document is written last, so a version is visible
    (``describe`` finds it) only once its data is complete.
    """
    from .tabular import column_kinds, read_csv  # pandas: only the functions that parse CSV load it

    validate_name(name)
    frame = read_csv(data)
    version = hashlib.sha256(data).hexdigest()[:16]
    try:
        return {**store.get_json(meta_key(name, version)), "created": False}
    except NotFound:
        pass
    kinds = column_kinds(frame)
    meta = {
        "dataset": name,
        "version": version,
        "sha256": hashlib.sha256(data).hexdigest(),
        "key": data_key(name, version),
        "rows": len(frame),
        "columns": [{"name": c, "kind": kinds[c], "missing": int(frame[c].isna().sum())} for c in frame.columns],
        "bytes": len(data),
        "source": source,
        "created_at": datetime.now(UTC).isoformat(),
    }
    store.put_bytes(meta["key"], data, content_type="text/csv")
    try:
        store.put_json(meta_key(name, version), meta, if_absent=True)
    except AlreadyExists:
        return {**store.get_json(meta_key(name, version)), "created": False}
    store.put_json(latest_key(name), {"dataset": name, "version": version})
    return {**meta, "created": True}


def ingest_upload(store: S3Store, key: str) -> dict:
    """Register an object dropped under ``uploads/<dataset>/<file>.csv``, then remove the upload."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] + "/" != UPLOAD_PREFIX:
        raise InvalidInput(f"uploads must be written as {UPLOAD_PREFIX}<dataset>/<file>.csv, got {key!r}")
    try:
        data = store.get_bytes(key)
    except NotFound:
        raise NotFoundError(f"uploaded object {key!r} does not exist") from None
    result = ingest(store, parts[1], data, source=f"s3://{store.bucket}/{key}")
    store.delete([key])
    return result


def describe(store: S3Store, name: str, version: str | None = None) -> dict:
    validate_name(name)
    try:
        if version is None:
            version = store.get_json(latest_key(name))["version"]
        return store.get_json(meta_key(name, version))
    except NotFound:
        raise NotFoundError(
            f"data set {name!r}" + (f" version {version!r}" if version else "") + " does not exist"
        ) from None
