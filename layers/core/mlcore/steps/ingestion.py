"""Data set ingestion: validated, immutable, content-addressed versions under ``raw/``.

Ways in: a small file in the API request body; a presigned S3 PUT to ``uploads/<dataset>/``
(``POST /datasets``) or a presigned multipart upload (``POST /datasets/<name>/uploads``), registered by the
object-created notification; an object already in the bucket (``{"s3_key": ...}``); the CSV files under a prefix
of ``landing/`` as one version (``{"s3_prefix": ...}``, scanned asynchronously, part by part, in as many
invocations as it takes). The state of the latest asynchronous attempt (pending, ready, failed with the reason)
is kept in ``datasets/<name>/status.json``, outside ``raw/``.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlcore.infra import layout
from mlcore.infra.errors import ConflictError, InvalidInput, MLError, NotFoundError, echo
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

# Larger data: a multipart upload of one file, or many files under one prefix (s3_prefix), each a "part".
# A part is scanned in one invocation: at the slowest measured scan rate (make bench-ingest: 16 MB/s) a 4 GiB part
# takes 270 s, 540 s when a column needs the second (recount) pass, within Lambda's 900 s.
SCAN_BYTES_PER_SECOND = 16_000_000
COPY_BYTES_PER_SECOND = 20_000_000  # a server-side copy of a part into raw/ (conservative)
INVOCATION_MARGIN_SECONDS = 60.0  # left for the checkpoint and status writes of an invocation
MAX_PART_BYTES = 4 * 1024**3  # one file of a prefix, or one multipart upload (S3 copies up to 5 GiB at once)
MAX_DATASET_BYTES = 20 * 1024**3  # all the files under a prefix
MAX_PARTS = 1000
MULTIPART_PART_BYTES = 8 * 1024 * 1024  # the smallest part of a multipart upload (S3: 5 MiB, but the last)
MAX_UPLOAD_URLS = 1000  # presigned part URLs in one answer (about 1.5 KB each, under Lambda's 6 MB payload)
MULTIPART_URL_SECONDS = 3600
UPLOAD_ID = re.compile(r"[0-9a-f]{16}")  # the ids start_upload and start_multipart_upload give
DECLARED_BYTES = "declared-bytes"  # the user metadata Ingest sets on a multipart upload: the size it must have


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
        raise InvalidInput(f"invalid data set name {echo(name)}: use {layout.NAME_RULE}")
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
            raise ConflictError(f"object {echo(data.key)} changed while it was read; register it again") from None
    try:
        store.put_json(layout.dataset_meta_key(name, version), meta, if_absent=True)
    except AlreadyExists:
        return {**store.get_json(layout.dataset_meta_key(name, version)), "created": False}
    store.put_json(layout.dataset_latest_key(name), {"dataset": name, "version": version})
    return {**meta, "created": True}


def _read_object(store: ObjectStore, key: str, max_bytes: int, multipart: bool = False) -> tuple[StoredObject, dict]:
    """The object at ``key`` (to be read in chunks) and its user metadata, once its size is checked. With
    ``multipart``, an object of a multipart upload Ingest started (its ``DECLARED_BYTES`` metadata) may have up to
    MAX_PART_BYTES, and must have exactly the size declared."""
    head = store.head(key)
    if head is None:
        raise NotFoundError(f"object {echo(key)} does not exist in the data bucket")
    size = int(head.get("ContentLength", 0))
    metadata = head.get("Metadata", {})
    declared = metadata.get(DECLARED_BYTES) if multipart else None
    if declared is not None:
        max_bytes = MAX_PART_BYTES
        if str(size) != declared:
            raise InvalidInput(f"the upload is {size} bytes, not the {declared} declared when it started")
    if size > max_bytes:
        raise InvalidInput(f"the file is {size} bytes, over the {max_bytes} byte limit")
    return StoredObject(store, key, head.get("VersionId"), head.get("ETag")), metadata


def _unexpected(err: Exception, what: str, **context: str) -> str:
    """Log an unexpected failure with its traceback; the one-line reason a status document may show."""
    logger.exception(f"{what} failed unexpectedly", extra=context)
    return f"ingestion failed unexpectedly ({type(err).__name__}); see the Ingest logs"


def ingest_upload(
    store: ObjectStore, key: str, policy: UrlPolicy | None = None, remaining: Callable[[], float] | None = None
) -> dict:
    """Register an object dropped under ``uploads/<dataset>/<file>``, then remove the upload; or, for a queued
    URL ingestion (``layout.is_url_request``), fetch its URL into ``uploads/`` under ``policy``; or, for a queued
    prefix ingestion (``layout.is_prefix_request``), scan its next parts while ``remaining()`` (the seconds left to
    this invocation; no limit when None) allows.

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
    if layout.is_prefix_request(key):
        return _ingest_parts(store, dataset, key, remaining or (lambda: math.inf))
    name = dataset
    source = f"s3://{store.bucket}/{key}"
    try:
        data, metadata = _read_object(store, key, MAX_FILE_BYTES, multipart=True)
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
            raise InvalidInput(f"the URL request {echo(request_key)} names an upload key outside uploads/{name}/")
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
        raise InvalidInput(
            f"s3_key {echo(key)} is not allowed: use a key outside {', '.join(layout.INTERNAL_PREFIXES)}"
        )
    data, _ = _read_object(store, key, MAX_FILE_BYTES)
    return ingest(store, name, data, source=f"s3://{store.bucket}/{key}", fmt=format_of_key(key))


def register_prefix(store: ObjectStore, name: str, prefix: str) -> dict:
    """Queue the registration of every object under ``prefix`` (in ``landing/``) as one CSV data set version,
    once the listing is checked (the parts, their sizes and count: a 400 here); the parts are scanned
    asynchronously (``ingest_upload``), whose outcome is the data set's status. Keys ending in ``/`` (the
    "directories" consoles create) are skipped; an empty object is refused."""
    validate_name(name)
    segments = prefix.split("/")
    if (
        not prefix.startswith(layout.LANDING)
        or not prefix.endswith("/")
        or any(s in ("", ".", "..") for s in segments[:-1])
    ):
        raise InvalidInput(
            f"s3_prefix {echo(prefix)} is not allowed: use a prefix under {layout.LANDING} ending in '/', "
            f"e.g. {layout.LANDING}big/"
        )
    parts = [o for o in store.list_objects(prefix) if not o["Key"].endswith("/")]
    if not parts:
        raise NotFoundError(f"no objects under s3_prefix {echo(prefix)} in the data bucket")
    if len(parts) > MAX_PARTS:
        raise InvalidInput(f"s3_prefix {echo(prefix)} holds {len(parts)} objects, more than the limit of {MAX_PARTS}")
    for part in parts:
        if format_of_key(part["Key"]) != "csv":
            raise InvalidInput(
                f"part {echo(part['Key'])} is JSON Lines: a data set of many files is CSV, a header each"
            )
        if part["Size"] == 0:
            raise InvalidInput(f"part {echo(part['Key'])} is empty")
        if part["Size"] > MAX_PART_BYTES:
            raise InvalidInput(
                f"part {echo(part['Key'])} is {part['Size']} bytes, over the {MAX_PART_BYTES} byte limit"
            )
    total = sum(part["Size"] for part in parts)
    if total > MAX_DATASET_BYTES:
        raise InvalidInput(f"s3_prefix {echo(prefix)} holds {total} bytes, over the {MAX_DATASET_BYTES} byte limit")
    upload_id = f"prefix-{uuid.uuid4().hex[:16]}"
    source = f"s3://{store.bucket}/{prefix}"
    request = {
        "dataset": name,
        "prefix": prefix,
        "source": source,
        "upload_id": upload_id,
        "step": 0,
        "parts": [{"key": p["Key"], "bytes": p["Size"], "etag": p["ETag"]} for p in parts],
        "scanned": [],
        "copied": 0,
        "profile": None,
        "requested_at": datetime.now(UTC).isoformat(),
    }
    progress = {"parts": len(parts), "scanned": 0, "bytes": total}
    set_status(store, name, "pending", upload_id=upload_id, source=source, progress=progress)
    try:
        store.put_json(layout.prefix_request_key(name, upload_id, 0), request)
    except Exception:  # the API answers 500; the status must not stay pending
        set_status(store, name, "failed", reason="the ingestion could not be queued; try again", source=source)
        raise
    return {"dataset": name, "status": "pending", "upload_id": upload_id, "source": source, **progress}


def _ingest_parts(store: ObjectStore, name: str, key: str, remaining: Callable[[], float]) -> dict:
    """Scan the parts of a queued prefix ingestion in order, then copy them into ``raw/``, then write the version's
    metadata. Before each part (but the first of an invocation) that the seconds ``remaining()`` may not cover,
    the state so far (the merged profile) is written as the request's next step, whose notification continues in
    a new invocation. A failure ends in the status ``failed`` naming the part, and nothing registered: the request
    is removed, no ``dataset.json`` or ``latest.json`` is written. Ingest may not delete under ``raw/``, so the
    parts copied before a part changed under its copy (the one failure left once every part is scanned) stay,
    unnamed, where registering the same files again writes them again."""
    from mlcore.steps.tabular import Profile, scan

    source, done, created = "the requested prefix", 0, False
    try:
        request = store.get_json(key)
        source = str(request["source"])
        profile = Profile.from_state(request["profile"]) if request["profile"] else Profile()
        scanned: list[dict] = request["scanned"]
        for part in request["parts"][len(scanned) :]:
            if done and remaining() < 2 * part["bytes"] / SCAN_BYTES_PER_SECOND + INVOCATION_MARGIN_SECONDS:
                return _next_step(store, name, key, {**request, "profile": profile.state()})
            stored = _part_object(store, part)
            try:
                found = scan(stored.chunks, "csv")
            except InvalidInput as err:
                raise InvalidInput(f"part {echo(part['key'])}: {err}") from None
            profile.add(part["key"], found)
            scanned.append(
                {
                    **part,
                    "rows": found.rows,
                    "sha256": found.sha256,
                    "version_id": stored.version_id,
                    "size": found.size,
                }
            )
            done += 1
        request["profile"] = profile.state()
        combined = hashlib.sha256("\n".join(p["sha256"] for p in scanned).encode()).hexdigest()
        version = combined[:16]
        try:
            meta = store.get_json(layout.dataset_meta_key(name, version))
        except NotFound:
            meta = None
        if meta is None:
            for index in range(request["copied"], len(scanned)):
                part = scanned[index]
                if done and remaining() < part["bytes"] / COPY_BYTES_PER_SECOND + INVOCATION_MARGIN_SECONDS:
                    return _next_step(store, name, key, request)
                try:
                    store.copy(
                        part["key"],
                        layout.dataset_part_key(name, version, index, "csv"),
                        content_type="text/csv",
                        source_version=part["version_id"],
                        if_match=part["etag"],
                    )
                except (Conflict, NotFound):
                    raise ConflictError(
                        f"part {echo(part['key'])} changed while it was read; register the prefix again"
                    ) from None
                request["copied"] = index + 1
                done += 1
            meta = _parts_meta(store, name, version, combined, request, profile)
            try:
                store.put_json(layout.dataset_meta_key(name, version), meta, if_absent=True)
            except AlreadyExists:
                meta = store.get_json(layout.dataset_meta_key(name, version))
            else:
                store.put_json(layout.dataset_latest_key(name), {"dataset": name, "version": version})
                created = True
    except Exception as err:  # asynchronous, as in ingest_upload
        reason = str(err) if isinstance(err, MLError) else _unexpected(err, "ingesting a prefix", key=key)
        store.delete([key])
        return set_status(store, name, "failed", reason=reason, source=source)
    set_status(store, name, "ready", version=version, source=source)
    store.delete([key])
    return {**meta, "created": created}


def _part_object(store: ObjectStore, part: dict) -> StoredObject:
    """The part as listed by the request, or a ConflictError when it changed (or went) since."""
    head = store.head(part["key"])
    if head is None or head.get("ETag") != part["etag"]:
        raise ConflictError(
            f"part {echo(part['key'])} changed or was removed since the request; register the prefix again"
        )
    return StoredObject(store, part["key"], head.get("VersionId"), head.get("ETag"))


def _next_step(store: ObjectStore, name: str, key: str, request: dict) -> dict:
    """Hand the rest of a prefix ingestion to a new invocation: its next request document (whose notification
    invokes Ingest again), the status's progress updated (and so its age: it stays pending). The status is written
    first: once the next request exists, the next invocation may run, and even finish (status ready), before this
    one returns."""
    request = {**request, "step": int(request["step"]) + 1}
    progress = {"parts": len(request["parts"]), "scanned": len(request["scanned"]), "copied": request["copied"]}
    progress["bytes"] = sum(p["bytes"] for p in request["parts"])
    set_status(store, name, "pending", upload_id=request["upload_id"], source=request["source"], progress=progress)
    store.put_json(layout.prefix_request_key(name, request["upload_id"], request["step"]), request)
    store.delete([key])
    return {"dataset": name, "status": "pending", "step": request["step"], **progress}


def _parts_meta(store: ObjectStore, name: str, version: str, combined: str, request: dict, profile: Any) -> dict:
    entries = profile.entries()
    scanned = request["scanned"]
    return {
        "dataset": name,
        "version": version,
        "status": "ready",
        "sha256": combined,
        "key": layout.dataset_parts_prefix(name, version),
        "format": "csv",
        "delimiter": profile.delimiter,
        "rows": profile.rows,
        "n_columns": len(entries),
        "columns": entries,
        "bytes": sum(p["size"] for p in scanned),
        "source": request["source"],
        "parts": [
            {
                "key": layout.dataset_part_key(name, version, i, "csv"),
                "source": p["key"],
                "bytes": p["size"],
                "rows": p["rows"],
                "sha256": p["sha256"],
            }
            for i, p in enumerate(scanned)
        ],
        "created_at": datetime.now(UTC).isoformat(),
    }


def data_keys(meta: dict) -> list[str]:
    """The objects holding a version's rows, in order: its parts (a version made of many files), else its file."""
    return [part["key"] for part in meta["parts"]] if meta.get("parts") else [meta["key"]]


def start_multipart_upload(store: ObjectStore, name: str, size: int, fmt: str = "csv") -> dict:
    """A presigned multipart upload of one file of ``size`` bytes to ``uploads/<name>/<id>.<ext>``: a PUT URL
    per part (parts of ``part_bytes``, the last smaller), then ``complete_multipart_upload``; the notification of the
    completed object registers it, as a single upload's does (it must have exactly ``size`` bytes)."""
    validate_name(name)
    if size < 1 or size > MAX_PART_BYTES:
        raise InvalidInput(
            f"bytes must be from 1 to {MAX_PART_BYTES} (one file); register larger data as many files "
            f'under {layout.LANDING} with {{"s3_prefix": ...}}'
        )
    mib = 1024 * 1024
    part_bytes = max(MULTIPART_PART_BYTES, math.ceil(size / MAX_UPLOAD_URLS / mib) * mib)
    n_parts = math.ceil(size / part_bytes)
    upload_id = uuid.uuid4().hex[:16]
    key = layout.upload_key(name, upload_id, fmt)
    content_type = "text/csv" if fmt == "csv" else "application/x-ndjson"
    multipart_id, urls = store.presign_multipart(
        key, n_parts, MULTIPART_URL_SECONDS, content_type=content_type, metadata={DECLARED_BYTES: str(size)}
    )
    set_status(store, name, "pending", upload_id=upload_id, upload_key=key)
    parts = [
        {
            "part_number": number,
            "upload_url": url,
            "offset": (number - 1) * part_bytes,
            "bytes": min(part_bytes, size - (number - 1) * part_bytes),
        }
        for number, url in enumerate(urls, start=1)
    ]
    return {
        "dataset": name,
        "upload_id": upload_id,
        "key": key,
        "multipart_upload_id": multipart_id,
        "bytes": size,
        "part_bytes": part_bytes,
        "method": "PUT",
        "parts": parts,
        "expires_in": MULTIPART_URL_SECONDS,
        "complete": {"method": "POST", "path": f"/datasets/{name}/uploads/{upload_id}/complete"},
        "status": "pending",
    }


def complete_multipart_upload(
    store: ObjectStore, name: str, upload_id: str, multipart_id: str, parts: list[tuple[int, str]]
) -> dict:
    """Complete a multipart upload from its parts' (number, ETag), numbered 1, 2, ... in order; its notification
    then registers the file (the status stays ``pending`` until then)."""
    validate_name(name)
    if not UPLOAD_ID.fullmatch(upload_id):
        raise NotFoundError(f"upload {echo(upload_id)} of data set {echo(name)} does not exist")
    keys = [layout.upload_key(name, upload_id, fmt) for fmt in ("csv", "jsonl")]
    numbers = [number for number, _ in parts]
    if not parts or numbers != list(range(1, len(parts) + 1)):
        raise InvalidInput(f"parts must be numbered 1 to {len(parts) or 'n'} in order, each with its ETag")
    for key in keys:
        try:
            store.complete_multipart(key, multipart_id, [etag for _, etag in parts])
        except NotFound:
            continue
        except Conflict as err:
            raise InvalidInput(
                f"the parts do not make the upload ({err}); send each part's ETag as its PUT answered"
            ) from None
        set_status(store, name, "pending", upload_id=upload_id, upload_key=key)
        return {"dataset": name, "upload_id": upload_id, "key": key, "status": "pending", "parts": len(parts)}
    raise NotFoundError(
        f"upload {echo(upload_id)} of data set {echo(name)} is not in progress (completed, aborted or expired)"
    )


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
            f"data set {echo(name)}" + (f" version {echo(version)}" if version else "") + " does not exist"
        ) from None


LISTED = ("dataset", "version", "format", "rows", "n_columns", "bytes", "created_at")


def list_datasets(store: ObjectStore) -> list[dict]:
    """Every data set with a registered version, by name: its latest version's name, version, format, rows,
    column count, size and creation time (``describe`` has the columns and profile)."""
    names = [n for key in store.list_keys(layout.RAW) if (n := layout.dataset_of_latest_key(key))]
    listed = []
    for name in sorted(names):
        try:
            meta = describe(store, name)
        except NotFoundError:  # a version being registered between the listing and the read
            continue
        listed.append({k: meta[k] for k in LISTED if k in meta})
    return listed


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
        raise NotFoundError(f"data set {echo(name)} does not exist")
    if latest is not None and (attempt is None or attempt["status"] == "ready"):
        return latest
    assert attempt is not None
    out = dict(latest or {"dataset": name})
    fields = ("status", "reason", "upload_id", "upload_key", "updated_at", "progress")
    out.update({k: attempt[k] for k in fields if k in attempt})
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
