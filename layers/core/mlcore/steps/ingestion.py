"""Data set ingestion: validated, immutable, content-addressed versions under ``raw/``.

Ways in: a small file in the API request body; a presigned S3 PUT to ``uploads/<dataset>/``
(``POST /datasets``), registered by the object-created notification; an object already in the
bucket (``{"s3_key": ...}``). The state of the latest asynchronous attempt (pending, ready,
failed with the reason) is kept in ``datasets/<name>/status.json``, outside ``raw/``.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from mlcore.infra import layout
from mlcore.infra.errors import InvalidInput, NotFoundError
from mlcore.infra.storage import AlreadyExists, NotFound, ObjectStore

MAX_BODY_BYTES = 5 * 1024 * 1024  # API path; Lambda's synchronous payload limit is 6 MB
MAX_FILE_BYTES = 256 * 1024 * 1024  # uploads and registered objects: parsed in memory by a 2 GB function
UPLOAD_URL_SECONDS = 900
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
CONTENT_TYPES = {"text/csv": "csv", "application/x-ndjson": "jsonl", "application/jsonl": "jsonl"}


def format_of_key(key: str) -> str:
    for ext, fmt in EXTENSIONS.items():
        if key.lower().endswith(ext):
            return fmt
    return "csv"


def format_of_content_type(content_type: str | None) -> str:
    return CONTENT_TYPES.get((content_type or "text/csv").split(";")[0].strip().lower(), "csv")


def set_status(store: ObjectStore, name: str, status: str, **fields) -> dict:
    doc = {"dataset": name, "status": status, "updated_at": datetime.now(UTC).isoformat(), **fields}
    store.put_json(layout.dataset_status_key(name), doc)
    return doc


def validate_name(name: str) -> str:
    if not layout.NAME.match(name or ""):
        raise InvalidInput(f"invalid data set name {name!r}: use {layout.NAME_RULE}")
    return name


def ingest(store: ObjectStore, name: str, data: bytes, source: str, fmt: str = "csv") -> dict:
    """Validate ``data`` (CSV or JSON Lines) and store it as version ``sha256[:16]`` of ``name``.

    The same bytes always give the same version, and a second upload writes
    nothing. The metadata document is written last, so a version is visible
    (``describe`` finds it) only once its data is complete.
    """
    from mlcore.steps.tabular import profile, read_table  # pandas: only the functions that parse files load it

    validate_name(name)
    frame = read_table(data, fmt)
    version = hashlib.sha256(data).hexdigest()[:16]
    try:
        return {**store.get_json(layout.dataset_meta_key(name, version)), "created": False}
    except NotFound:
        pass
    meta: dict[str, Any] = {
        "dataset": name,
        "version": version,
        "status": "ready",
        "sha256": hashlib.sha256(data).hexdigest(),
        "key": layout.dataset_data_key(name, version, fmt),
        "format": fmt,
        "rows": len(frame),
        "n_columns": len(frame.columns),
        "columns": profile(frame),
        "bytes": len(data),
        "source": source,
        "created_at": datetime.now(UTC).isoformat(),
    }
    content_type = "text/csv" if fmt == "csv" else "application/x-ndjson"
    store.put_bytes(meta["key"], data, content_type=content_type)
    try:
        store.put_json(layout.dataset_meta_key(name, version), meta, if_absent=True)
    except AlreadyExists:
        return {**store.get_json(layout.dataset_meta_key(name, version)), "created": False}
    store.put_json(layout.dataset_latest_key(name), {"dataset": name, "version": version})
    return {**meta, "created": True}


def _read_object(store: ObjectStore, key: str, max_bytes: int) -> tuple[bytes, dict]:
    head = store.head(key)
    if head is None:
        raise NotFoundError(f"object {key!r} does not exist in the data bucket")
    size = int(head.get("ContentLength", 0))
    if size > max_bytes:
        raise InvalidInput(f"the file is {size} bytes, over the {max_bytes} byte limit")
    return store.get_bytes(key), head.get("Metadata", {})


def ingest_upload(store: ObjectStore, key: str) -> dict:
    """Register an object dropped under ``uploads/<dataset>/<file>``, then remove the upload.

    Runs asynchronously (S3 notification), so a bad file does not raise: the data set's status
    document records the failure and its reason, and nothing is written under ``raw/``."""
    dataset = layout.upload_dataset(key)
    if dataset is None:
        raise InvalidInput(f"uploads must be written as {layout.UPLOADS}<dataset>/<file>.csv, got {key!r}")
    name = validate_name(dataset)
    source = f"s3://{store.bucket}/{key}"
    try:
        data, metadata = _read_object(store, key, MAX_FILE_BYTES)
        source = metadata.get("source-url", source)
        result = ingest(store, name, data, source=source, fmt=format_of_key(key))
    except InvalidInput as err:
        if store.exists(key):
            store.delete([key])
        return set_status(store, name, "failed", reason=str(err), source=source)
    set_status(store, name, "ready", version=result["version"], source=source)
    store.delete([key])
    return result


def ingest_url(store: ObjectStore, name: str, url: str, policy, fmt: str | None = None) -> dict:
    """Stream an HTTPS URL into ``uploads/<name>/`` (multipart, bounded memory); the object-created
    notification then validates and registers it, as for a presigned upload (status ``pending``)."""
    from mlcore.infra import urlfetch

    validate_name(name)
    fmt = fmt or format_of_key(url.split("?")[0])
    key = layout.upload_key(name, f"url-{uuid.uuid4().hex[:16]}", fmt)
    metadata = {"source-url": url} if url.isascii() and len(url) <= 1024 else {}
    size, sha256 = store.put_stream(key, urlfetch.stream(url, policy, MAX_FILE_BYTES), metadata=metadata)
    set_status(store, name, "pending", upload_key=key, source=url)
    return {"dataset": name, "status": "pending", "key": key, "bytes": size, "sha256": sha256, "source": url}


def register_object(store: ObjectStore, name: str, key: str) -> dict:
    """Ingest an object already in the data bucket (left where it is)."""
    validate_name(name)
    if layout.is_internal(key) or not key or key.startswith("/"):
        raise InvalidInput(f"s3_key {key!r} is not allowed: use a key outside {', '.join(layout.INTERNAL_PREFIXES)}")
    data, _ = _read_object(store, key, MAX_FILE_BYTES)
    return ingest(store, name, data, source=f"s3://{store.bucket}/{key}", fmt=format_of_key(key))


def start_upload(store: ObjectStore, name: str, fmt: str = "csv") -> dict:
    """A presigned PUT URL for ``uploads/<name>/<id>.<ext>``; the notification registers the object."""
    validate_name(name)
    upload_id = uuid.uuid4().hex[:16]
    key = layout.upload_key(name, upload_id, fmt)
    url = store.presign_put(key, UPLOAD_URL_SECONDS)
    set_status(store, name, "pending", upload_id=upload_id, upload_key=key)
    return {
        "dataset": name,
        "upload_id": upload_id,
        "key": key,
        "upload_url": url,
        "method": "PUT",
        "expires_in": UPLOAD_URL_SECONDS,
        "max_bytes": MAX_FILE_BYTES,
        "status": "pending",
    }


def describe(store: ObjectStore, name: str, version: str | None = None) -> dict:
    """A version's metadata (the latest when ``version`` is None) with its status and profile."""
    validate_name(name)
    try:
        if version is None:
            version = store.get_json(layout.dataset_latest_key(name))["version"]
        return {"status": "ready", **store.get_json(layout.dataset_meta_key(name, version))}
    except NotFound:
        raise NotFoundError(
            f"data set {name!r}" + (f" version {version!r}" if version else "") + " does not exist"
        ) from None


def status(store: ObjectStore, name: str) -> dict:
    """The latest version (if any) and the state of the latest asynchronous ingestion.

    ``status`` is ``pending`` (upload URL issued), ``failed`` (with ``reason``) or ``ready``."""
    validate_name(name)
    try:
        latest: dict | None = describe(store, name)
    except NotFoundError:
        latest = None
    try:
        attempt = store.get_json(layout.dataset_status_key(name))
    except NotFound:
        attempt = None
    if latest is None and attempt is None:
        raise NotFoundError(f"data set {name!r} does not exist")
    if latest is not None and (attempt is None or attempt["status"] == "ready"):
        return latest
    assert attempt is not None
    out = dict(latest or {"dataset": name})
    out.update({k: attempt[k] for k in ("status", "reason", "upload_id", "upload_key", "updated_at") if k in attempt})
    return out
