"""Data set ingestion: validated, immutable, content-addressed versions under ``raw/``.

Ways in: a small file in the API request body; a presigned S3 PUT to ``uploads/<dataset>/``
(``POST /datasets``), registered by the object-created notification; an object already in the
bucket (``{"s3_key": ...}``). The state of the latest asynchronous attempt (pending, ready,
failed with the reason) is kept in ``datasets/<name>/status.json``, outside ``raw/``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlcore.infra import layout
from mlcore.infra.errors import ConflictError, InvalidInput, MLError, NotFoundError
from mlcore.infra.observability import logger
from mlcore.infra.storage import AlreadyExists, Conflict, NotFound, ObjectStore

if TYPE_CHECKING:
    from mlcore.infra.urlfetch import UrlPolicy

MAX_BODY_BYTES = 5 * 1024 * 1024  # API path; Lambda's synchronous payload limit is 6 MB
MAX_FILE_BYTES = 256 * 1024 * 1024  # uploads and registered objects: read and profiled in chunks (tabular.scan)
READ_CHUNK_BYTES = 8 * 1024 * 1024  # what is read of an object (or sliced of a body) at a time
UPLOAD_URL_SECONDS = 900
# A pending ingestion older than this has failed without a word (the upload URL expired unused, or Ingest timed out
# or ran out of memory on each of its three asynchronous attempts, 900 s each): its status says so.
PENDING_EXPIRES_SECONDS = 3600
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
CONTENT_TYPES = {"text/csv": "csv", "application/x-ndjson": "jsonl", "application/jsonl": "jsonl"}
UPLOAD_KEY_RULE = f"{layout.UPLOADS}<dataset>/<file>.csv (or .jsonl), the data set named by {layout.NAME_RULE}"


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


@dataclass(frozen=True)
class StoredObject:
    """An object of the data bucket to ingest, read in chunks of READ_CHUNK_BYTES (never whole): the version
    (the bucket is versioned) and ETag its HEAD found, so every read and the copy see the same bytes."""

    store: ObjectStore
    key: str
    version_id: str | None
    etag: str | None

    def chunks(self) -> Iterator[bytes]:
        body = self.store.open(self.key, self.version_id)
        try:
            while chunk := body.read(READ_CHUNK_BYTES):
                yield chunk
        finally:
            body.close()


def _slices(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), READ_CHUNK_BYTES):
        yield bytes(view[start : start + READ_CHUNK_BYTES])


def ingest(store: ObjectStore, name: str, data: bytes | StoredObject, source: str, fmt: str = "csv") -> dict:
    """Validate ``data`` (CSV or JSON Lines: bytes, or an object of the bucket) and store it as version
    ``sha256[:16]`` of ``name``.

    An object is read in chunks and profiled as it is read (``tabular.scan``: bounded memory), then stored
    by a server-side copy of exactly the bytes read (the object version read, and only while it has the ETag its
    HEAD found: a ``ConflictError`` otherwise, with nothing written). The same
    bytes always give the same version, and a second upload writes nothing. The metadata document is written
    last, so a version is visible (``describe`` finds it) only once its data is complete.
    """
    from mlcore.steps.tabular import scan  # pandas: only the functions that parse files load it

    validate_name(name)
    found = scan((lambda: _slices(data)) if isinstance(data, bytes) else data.chunks, fmt)
    version = found.sha256[:16]
    try:
        return {**store.get_json(layout.dataset_meta_key(name, version)), "created": False}
    except NotFound:
        pass
    meta: dict[str, Any] = {
        "dataset": name,
        "version": version,
        "status": "ready",
        "sha256": found.sha256,
        "key": layout.dataset_data_key(name, version, fmt),
        "format": fmt,
        "rows": found.rows,
        "n_columns": len(found.columns),
        "columns": found.columns,
        "bytes": found.size,
        "source": source,
        "created_at": datetime.now(UTC).isoformat(),
    }
    if found.delimiter is not None:
        meta["delimiter"] = found.delimiter
    content_type = "text/csv" if fmt == "csv" else "application/x-ndjson"
    if isinstance(data, bytes):
        store.put_bytes(meta["key"], data, content_type=content_type)
    else:
        try:
            store.copy(
                data.key, meta["key"], content_type=content_type, source_version=data.version_id, if_match=data.etag
            )
        except (Conflict, NotFound):
            raise ConflictError(f"object {data.key!r} changed while it was read; register it again") from None
    try:
        store.put_json(layout.dataset_meta_key(name, version), meta, if_absent=True)
    except AlreadyExists:
        return {**store.get_json(layout.dataset_meta_key(name, version)), "created": False}
    store.put_json(layout.dataset_latest_key(name), {"dataset": name, "version": version})
    return {**meta, "created": True}


def _read_object(store: ObjectStore, key: str, max_bytes: int) -> tuple[StoredObject, dict]:
    """The object at ``key`` (to be read in chunks) and its user metadata, once its size is checked."""
    head = store.head(key)
    if head is None:
        raise NotFoundError(f"object {key!r} does not exist in the data bucket")
    size = int(head.get("ContentLength", 0))
    if size > max_bytes:
        raise InvalidInput(f"the file is {size} bytes, over the {max_bytes} byte limit")
    return StoredObject(store, key, head.get("VersionId"), head.get("ETag")), head.get("Metadata", {})


def _unexpected(err: Exception, what: str, **context: str) -> str:
    """Log an unexpected failure with its traceback; the one-line reason a status document may show."""
    logger.exception(f"{what} failed unexpectedly", extra=context)
    return f"ingestion failed unexpectedly ({type(err).__name__}); see the Ingest logs"


def ingest_upload(store: ObjectStore, key: str, policy: UrlPolicy | None = None) -> dict:
    """Register an object dropped under ``uploads/<dataset>/<file>``, then remove the upload; or, for a queued
    URL ingestion (``layout.is_url_request``), fetch its URL into ``uploads/`` under ``policy``.

    Runs asynchronously (S3 notification through EventBridge), where raising would only make Lambda retry a
    failure that a retry cannot fix (the same bytes fail the same way) and then leave the event in the
    dead-letter queue with the status still ``pending``. So nothing raises: every failure ends in a ``failed``
    status with its reason (an unexpected error: a generic one, the details in the logs), the upload is removed
    and nothing is written under ``raw/``. A key with no valid data set in it, or an object already gone (a
    repeated notification), changes no status."""
    dataset = layout.upload_dataset(key)
    if dataset is None or not layout.NAME.match(dataset):
        logger.warning("ignoring an object outside uploads/<dataset>/", extra={"key": key})
        if store.exists(key):
            store.delete([key])
        return {"key": key, "status": "ignored", "reason": f"uploads must be written as {UPLOAD_KEY_RULE}"}
    if not store.exists(key):
        logger.info("the upload is already registered or removed", extra={"key": key})
        return {"dataset": dataset, "key": key, "status": "ignored", "reason": "the object no longer exists"}
    if layout.is_url_request(key):
        from mlcore.infra.urlfetch import UrlPolicy  # ssl and http.client: only the URL path loads them

        return _fetch_url(store, dataset, key, policy or UrlPolicy())
    name = dataset
    source = f"s3://{store.bucket}/{key}"
    try:
        data, metadata = _read_object(store, key, MAX_FILE_BYTES)
        source = metadata.get("source-url", source)
        result = ingest(store, name, data, source=source, fmt=format_of_key(key))
    except Exception as err:  # asynchronous: every failure becomes the status (see the docstring)
        reason = str(err) if isinstance(err, MLError) else _unexpected(err, "ingesting an upload", key=key)
        if store.exists(key):
            store.delete([key])
        return set_status(store, name, "failed", reason=reason, source=source)
    set_status(store, name, "ready", version=result["version"], source=source)
    store.delete([key])
    return result


def ingest_url(store: ObjectStore, name: str, url: str, policy: UrlPolicy, fmt: str | None = None) -> dict:
    """Queue the ingestion of an HTTPS URL: check it (scheme, host, port, and the addresses its host resolves to,
    so a refused URL is a 400 here), set the status ``pending`` and write the request document; its notification
    runs the download asynchronously (``ingest_upload``), whose outcome is the data set's status."""
    from mlcore.infra.urlfetch import check_url

    validate_name(name)
    check_url(url, policy)
    fmt = fmt or format_of_key(url.split("?")[0])
    upload_id = f"url-{uuid.uuid4().hex[:16]}"
    key = layout.upload_key(name, upload_id, fmt)
    request = {"dataset": name, "url": url, "format": fmt, "key": key, "requested_at": datetime.now(UTC).isoformat()}
    set_status(store, name, "pending", upload_id=upload_id, upload_key=key, source=url)  # before the fetch can end
    try:
        store.put_json(layout.url_request_key(name, upload_id), request)
    except Exception:  # the API answers 500; the status must not stay pending
        set_status(store, name, "failed", reason="the URL ingestion could not be queued; try again", source=url)
        raise
    return {"dataset": name, "status": "pending", "upload_id": upload_id, "key": key, "source": url}


def _fetch_url(store: ObjectStore, name: str, request_key: str, policy: UrlPolicy) -> dict:
    """Stream the URL of a request document into its upload key (multipart, bounded memory and time), then remove
    the document; the upload's own notification registers the file. A failure ends the status ``failed``."""
    from mlcore.infra.urlfetch import stream

    url = "the requested URL"
    try:
        request = store.get_json(request_key)
        url, key = str(request["url"]), str(request["key"])
        if layout.upload_dataset(key) != name or layout.is_url_request(key):
            raise InvalidInput(f"the URL request {request_key!r} names an upload key outside uploads/{name}/")
        metadata = {"source-url": url} if url.isascii() and len(url) <= 1024 else {}
        size, sha256 = store.put_stream(key, stream(url, policy, MAX_FILE_BYTES), metadata=metadata)
    except Exception as err:  # asynchronous, as in ingest_upload
        reason = str(err) if isinstance(err, MLError) else _unexpected(err, "fetching a URL", key=request_key)
        store.delete([request_key])
        return set_status(store, name, "failed", reason=reason, source=url)
    store.delete([request_key])
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
    if out["status"] == "pending" and _age_seconds(attempt) > PENDING_EXPIRES_SECONDS:
        out["status"] = "failed"
        out["reason"] = (
            f"nothing was registered within {PENDING_EXPIRES_SECONDS // 60} minutes: the upload URL expired "
            "unused, or the ingestion was cut short (see the Ingest logs); start a new upload"
        )
    return out


def _age_seconds(attempt: dict) -> float:
    try:
        return (datetime.now(UTC) - datetime.fromisoformat(attempt["updated_at"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return 0.0
