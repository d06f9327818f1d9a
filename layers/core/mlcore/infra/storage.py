"""The one storage adapter: every S3 read and write in the project goes through here (``S3Store``), behind the
``ObjectStore`` port the domain code is written against.

Arrays are stored as ``.npy`` (read as views over the received bytes, object dtypes refused)
and ``.npz`` (loaded with ``allow_pickle=False``), documents as JSON; nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

import botocore.session
import numpy as np
from botocore.exceptions import ClientError
from numpy.lib import format as npformat


@lru_cache(maxsize=1)
def s3_client():
    """One client per container (tests call ``s3_client.cache_clear()`` inside the mock).

    Straight from botocore: boto3's session layer adds nothing used here, and skipping it (with the
    s3transfer it imports) takes ~70 ms off the cold start of every function that only needs S3.
    """
    return botocore.session.get_session().create_client("s3")


class NotFound(KeyError):
    """The object does not exist."""


class AlreadyExists(Exception):
    """A conditional create found the object already there."""


class Conflict(Exception):
    """A compare-and-swap write (``if_match``) lost: the object changed or went away since its ETag was read."""


_CONDITION_FAILED = ("PreconditionFailed", "ConditionalRequestConflict", "412")


def _error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


class Readable(Protocol):
    """An object's body being read in pieces."""

    def read(self, amt: int | None = None) -> bytes: ...

    def close(self) -> None: ...


class Multipart(Protocol):
    """A multipart upload in progress: ``part`` in order, then ``complete`` (or ``abort``)."""

    parts: list[dict[str, Any]]

    def part(self, body: bytes) -> None: ...

    def complete(self) -> None: ...

    def abort(self) -> None: ...


class ObjectStore(Protocol):
    """The object store the domain code is written against: ``S3Store`` on AWS (and on moto locally), the unit
    tests' in-memory fake. Conditional writes raise ``AlreadyExists`` (``if_absent``) or ``Conflict``
    (``if_match``); reads of a missing key raise ``NotFound``."""

    bucket: str
    MIN_PART_BYTES: int

    def put_bytes(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> str: ...

    def get_bytes(self, key: str) -> bytes: ...

    def get_bytes_with_etag(self, key: str) -> tuple[bytes, str]: ...

    def get_bytes_if_changed(self, key: str, etag: str | None) -> tuple[bytes | None, str]: ...

    def get_range(self, key: str, start: int, end: int) -> bytes: ...

    def head(self, key: str) -> dict[str, Any] | None: ...

    def exists(self, key: str) -> bool: ...

    def list_keys(self, prefix: str) -> list[str]: ...

    def open(self, key: str, version_id: str | None = None) -> Readable: ...

    def copy(
        self,
        source: str,
        key: str,
        *,
        content_type: str = "application/octet-stream",
        source_version: str | None = None,
        if_match: str | None = None,
    ) -> None: ...

    def start_multipart(
        self, key: str, *, content_type: str = "application/octet-stream", metadata: dict[str, str] | None = None
    ) -> Multipart: ...

    def put_stream(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> tuple[int, str]: ...

    def presign_put(self, key: str, expires_in: int) -> str: ...

    def presign_get(self, key: str, expires_in: int) -> str: ...

    def list_objects(self, prefix: str) -> list[dict[str, Any]]: ...

    def presign_multipart(
        self, key: str, n_parts: int, expires_in: int, *, content_type: str, metadata: dict[str, str]
    ) -> tuple[str, list[str]]: ...

    def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> None: ...

    def delete(self, keys: list[str]) -> None: ...

    def put_json(self, key: str, doc: Any, *, if_absent: bool = False, if_match: str | None = None) -> str: ...

    def get_json(self, key: str) -> Any: ...

    def get_json_tagged(self, key: str) -> tuple[Any, str]: ...

    def put_array(self, key: str, array: np.ndarray, *, if_absent: bool = False) -> str: ...

    def get_array(self, key: str) -> np.ndarray: ...

    def put_arrays(
        self, key: str, arrays: dict[str, np.ndarray], *, if_absent: bool = False, if_match: str | None = None
    ) -> str: ...

    def get_arrays(self, key: str) -> dict[str, np.ndarray]: ...

    def get_arrays_with_etag(self, key: str) -> tuple[dict[str, np.ndarray], str]: ...


class S3Store:
    def __init__(self, bucket: str, client: Any = None):
        if not bucket:
            raise ValueError("a bucket name is required")
        self.bucket = bucket
        self._client = client

    @property
    def client(self):
        return self._client if self._client is not None else s3_client()

    # -- bytes -----------------------------------------------------------
    def put_bytes(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Write ``body`` and return its ETag.

        With ``if_absent`` the write only succeeds if nothing is there yet (``AlreadyExists``
        otherwise); with ``if_match`` only if the object's ETag is still ``if_match``: a
        compare-and-swap that raises ``Conflict`` when another writer got there first.
        """
        if if_absent and if_match:
            raise ValueError("if_absent and if_match are exclusive")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": body, "ContentType": content_type}
        if if_absent:
            kwargs["IfNoneMatch"] = "*"
        if if_match:
            kwargs["IfMatch"] = if_match
        try:
            return self.client.put_object(**kwargs)["ETag"]
        except ClientError as err:
            code = _error_code(err)
            if if_absent and code in _CONDITION_FAILED:
                raise AlreadyExists(key) from err
            if if_match and code in (*_CONDITION_FAILED, "409", "NoSuchKey"):
                raise Conflict(key) from err
            raise

    def get_bytes(self, key: str) -> bytes:
        return self.get_bytes_with_etag(key)[0]

    def get_bytes_with_etag(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and the ETag of exactly those bytes (for a later ``if_match`` write)."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as err:
            if _error_code(err) in ("NoSuchKey", "404"):
                raise NotFound(key) from err
            raise
        return resp["Body"].read(), resp["ETag"]

    def get_bytes_if_changed(self, key: str, etag: str | None) -> tuple[bytes | None, str]:
        """``(None, etag)`` when the object's ETag is still ``etag`` (an ``If-None-Match`` GET that
        transfers nothing), else its bytes and new ETag."""
        if etag is None:
            return self.get_bytes_with_etag(key)
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key, IfNoneMatch=etag)
        except ClientError as err:
            code = _error_code(err)
            if code in ("304", "NotModified"):
                return None, etag
            if code in ("NoSuchKey", "404"):
                raise NotFound(key) from err
            raise
        return resp["Body"].read(), resp["ETag"]

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of an object (an empty range reads nothing)."""
        if end <= start:
            return b""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}")["Body"].read()
        except ClientError as err:
            if _error_code(err) in ("NoSuchKey", "404"):
                raise NotFound(key) from err
            raise

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as err:
            if _error_code(err) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)

    MIN_PART_BYTES = 8 * 1024 * 1024  # S3's minimum is 5 MiB for every part but the last

    def open(self, key: str, version_id: str | None = None) -> Readable:
        """The object's body (of version ``version_id``, else the current one) as a file-like stream (read it in
        pieces; close it when done)."""
        kwargs = {"VersionId": version_id} if version_id else {}
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key, **kwargs)["Body"]
        except ClientError as err:
            if _error_code(err) in ("NoSuchKey", "404"):
                raise NotFound(key) from err
            raise

    def copy(
        self,
        source: str,
        key: str,
        *,
        content_type: str = "application/octet-stream",
        source_version: str | None = None,
        if_match: str | None = None,
    ) -> None:
        """Server-side copy of ``source`` (its version ``source_version``, else the current one) to ``key``, its
        metadata replaced; the bytes never pass through here. With ``if_match`` only while the source's ETag is
        still ``if_match``: ``Conflict`` otherwise."""
        copy_source = {"Bucket": self.bucket, "Key": source}
        if source_version:
            copy_source["VersionId"] = source_version
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "CopySource": copy_source,
            "ContentType": content_type,
            "MetadataDirective": "REPLACE",
        }
        if if_match:
            kwargs["CopySourceIfMatch"] = if_match
        try:
            self.client.copy_object(**kwargs)
        except ClientError as err:
            code = _error_code(err)
            if code in ("NoSuchKey", "404"):
                raise NotFound(source) from err
            if if_match and code in _CONDITION_FAILED:
                raise Conflict(source) from err
            raise

    def start_multipart(
        self, key: str, *, content_type: str = "application/octet-stream", metadata: dict[str, str] | None = None
    ) -> MultipartUpload:
        upload = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type, Metadata=metadata or {}
        )
        return MultipartUpload(self, key, upload["UploadId"])

    def put_stream(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """Multipart-upload an iterable of byte chunks holding at most one part in memory.

        Returns (bytes written, SHA-256 hex). On any error the upload is aborted: nothing is left."""
        import hashlib

        upload = self.start_multipart(key, content_type=content_type, metadata=metadata)
        digest = hashlib.sha256()
        total = 0
        buffer = bytearray()
        try:
            for chunk in chunks:
                digest.update(chunk)
                total += len(chunk)
                buffer.extend(chunk)
                if len(buffer) >= self.MIN_PART_BYTES:
                    upload.part(bytes(buffer))
                    buffer.clear()
            if buffer or not upload.parts:
                upload.part(bytes(buffer))
            upload.complete()
        except BaseException:
            upload.abort()
            raise
        return total, digest.hexdigest()

    def presign_put(self, key: str, expires_in: int) -> str:
        """A URL that lets its holder PUT this one object for ``expires_in`` seconds."""
        return self.client.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in, HttpMethod="PUT"
        )

    def presign_get(self, key: str, expires_in: int) -> str:
        """A URL that lets its holder GET this one object for ``expires_in`` seconds."""
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in, HttpMethod="GET"
        )

    def list_objects(self, prefix: str) -> list[dict[str, Any]]:
        """The objects under ``prefix`` sorted by key: ``Key``, ``Size`` and ``ETag`` of each."""
        found: list[dict[str, Any]] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend({"Key": o["Key"], "Size": int(o["Size"]), "ETag": o["ETag"]} for o in page.get("Contents", []))
        return sorted(found, key=lambda o: o["Key"])

    def presign_multipart(
        self, key: str, n_parts: int, expires_in: int, *, content_type: str, metadata: dict[str, str]
    ) -> tuple[str, list[str]]:
        """Start a multipart upload of ``key`` and presign a PUT URL for each of its parts 1..``n_parts``: the
        S3 upload id and the URLs. The upload's content type and metadata are set here, not by the uploader."""
        upload_id = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type, Metadata=metadata
        )["UploadId"]
        urls = [
            self.client.generate_presigned_url(
                "upload_part",
                Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": number},
                ExpiresIn=expires_in,
                HttpMethod="PUT",
            )
            for number in range(1, n_parts + 1)
        ]
        return upload_id, urls

    def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> None:
        """Complete the multipart upload ``upload_id`` of ``key`` from its parts' ETags (part 1 first).
        ``NotFound`` for an unknown (or already completed or aborted) upload; ``Conflict`` with S3's reason when
        the parts are refused (an ETag that is no part's, a part under 5 MiB that is not the last)."""
        parts = [{"PartNumber": number, "ETag": etag} for number, etag in enumerate(etags, start=1)]
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except ClientError as err:
            code = _error_code(err)
            if code == "NoSuchUpload":
                raise NotFound(key) from err
            if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                raise Conflict(f"{code}: {err.response.get('Error', {}).get('Message', '')}") from err
            raise

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            if chunk:
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )

    # -- JSON ------------------------------------------------------------
    def put_json(self, key: str, doc: Any, *, if_absent: bool = False, if_match: str | None = None) -> str:
        body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        return self.put_bytes(key, body, content_type="application/json", if_absent=if_absent, if_match=if_match)

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def get_json_tagged(self, key: str) -> tuple[Any, str]:
        """The document and its ETag, for a later ``put_json(..., if_match=etag)``."""
        body, etag = self.get_bytes_with_etag(key)
        return json.loads(body), etag

    # -- arrays ----------------------------------------------------------
    def put_array(self, key: str, array: np.ndarray, *, if_absent: bool = False) -> str:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        return self.put_bytes(key, buf.getvalue(), if_absent=if_absent)

    def get_array(self, key: str) -> np.ndarray:
        """The ``.npy`` object as a read-only array over the received bytes (``npy_view``: no copy)."""
        return npy_view(self.get_bytes(key))

    def put_arrays(
        self, key: str, arrays: dict[str, np.ndarray], *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        buf = io.BytesIO()
        named: dict[str, Any] = arrays  # savez's own keywords (allow_pickle) are not array names
        np.savez(buf, **named)
        return self.put_bytes(key, buf.getvalue(), if_absent=if_absent, if_match=if_match)

    def get_arrays(self, key: str) -> dict[str, np.ndarray]:
        return self.get_arrays_with_etag(key)[0]

    def get_arrays_with_etag(self, key: str) -> tuple[dict[str, np.ndarray], str]:
        body, etag = self.get_bytes_with_etag(key)
        with np.load(io.BytesIO(body), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}, etag


class NeedsS3(Exception):
    """An operation only S3 offers (presigned URLs, multipart uploads, object versions) asked of a ``MemoryStore``."""


class MemoryStore(S3Store):
    """An ``ObjectStore`` held in a dict, for scratch runs in one process (a tuning job's cross-validation trains
    its folds in memory: no S3 request, nothing written to the bucket). Every key/value operation of ``S3Store``
    works on top of its byte-level primitives, overridden here with S3's semantics: ``if_absent`` raises
    ``AlreadyExists`` when the key is there, ``if_match`` raises ``Conflict`` unless the key is there with that
    ETag (the quoted MD5 of its body); a missing key raises ``NotFound``. Presigning and multipart uploads need S3:
    asking for them raises ``NeedsS3`` naming the operation."""

    def __init__(self, bucket: str = "memory"):
        super().__init__(bucket)
        self._lock = threading.Lock()
        self._objects: dict[str, tuple[bytes, str, str]] = {}  # key -> (body, ETag, content type)

    @property
    def client(self):
        raise NeedsS3("a MemoryStore has no S3 client: presigned URLs and multipart uploads need S3")

    def put_bytes(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> str:
        if if_absent and if_match:
            raise ValueError("if_absent and if_match are exclusive")
        etag = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
        with self._lock:
            held = self._objects.get(key)
            if if_absent and held is not None:
                raise AlreadyExists(key)
            if if_match is not None and (held is None or held[1] != if_match):
                raise Conflict(key)
            self._objects[key] = (bytes(body), etag, content_type)
        return etag

    def _held(self, key: str) -> tuple[bytes, str, str]:
        with self._lock:
            held = self._objects.get(key)
        if held is None:
            raise NotFound(key)
        return held

    def get_bytes_with_etag(self, key: str) -> tuple[bytes, str]:
        body, etag, _ = self._held(key)
        return body, etag

    def get_bytes_if_changed(self, key: str, etag: str | None) -> tuple[bytes | None, str]:
        body, current, _ = self._held(key)
        return (None, current) if etag == current else (body, current)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        body = self._held(key)[0]
        return body[start:end] if end > start else b""

    def head(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            held = self._objects.get(key)
        if held is None:
            return None
        return {"ContentLength": len(held[0]), "ETag": held[1], "ContentType": held[2], "Metadata": {}}

    def exists(self, key: str) -> bool:
        with self._lock:
            return key in self._objects

    def list_keys(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(k for k in self._objects if k.startswith(prefix))

    def list_objects(self, prefix: str) -> list[dict[str, Any]]:
        with self._lock:
            found = [(k, v) for k, v in self._objects.items() if k.startswith(prefix)]
        return [{"Key": k, "Size": len(v[0]), "ETag": v[1]} for k, v in sorted(found)]

    def open(self, key: str, version_id: str | None = None) -> Readable:
        if version_id:
            raise NeedsS3("a MemoryStore keeps no object versions")
        return io.BytesIO(self._held(key)[0])

    def copy(
        self,
        source: str,
        key: str,
        *,
        content_type: str = "application/octet-stream",
        source_version: str | None = None,
        if_match: str | None = None,
    ) -> None:
        if source_version:
            raise NeedsS3("a MemoryStore keeps no object versions")
        body, etag, _ = self._held(source)
        if if_match is not None and etag != if_match:
            raise Conflict(source)
        self.put_bytes(key, body, content_type=content_type)

    def delete(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._objects.pop(key, None)


def npy_view(body: bytes) -> np.ndarray:
    """The array of a ``.npy`` file held in ``body``, without copying its payload.

    ``np.load`` of ``io.BytesIO(body)`` copies the payload into a new array (twice the memory at the peak);
    here the header is parsed with ``numpy.lib.format`` (a literal, never unpickled) and the array is
    ``np.frombuffer`` over ``body`` itself: read-only, since ``bytes`` are immutable, and alive as long
    as the array is. Object dtypes (which ``.npy`` can only hold pickled) are refused, as are
    truncated payloads; Fortran-ordered arrays come back as Fortran-ordered views.
    """
    shape, fortran_order, dtype, offset = npy_header(body)
    count = math.prod(shape)
    if len(body) - offset < count * dtype.itemsize:
        raise ValueError(
            f"truncated .npy array: {shape} {dtype} needs {count * dtype.itemsize} bytes, {len(body) - offset} left"
        )
    flat = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape[::-1]).T if fortran_order else flat.reshape(shape)


def npy_header(head: bytes) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, payload offset)`` of the ``.npy`` file whose first bytes are ``head``
    (parsed as a literal by ``numpy.lib.format``, never unpickled; object dtypes refused)."""
    stream = io.BytesIO(head)
    try:
        version = npformat.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = npformat.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = npformat.read_array_header_2_0(stream)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported (1.0 and 2.0 are)")
    except ValueError as err:
        raise ValueError(f"not a readable .npy array: {err}") from None
    if dtype.hasobject:
        raise ValueError(f"refusing a .npy array of dtype {dtype}: object arrays are stored pickled (never loaded)")
    return shape, fortran_order, dtype, stream.tell()


NPY_HEAD_BYTES = 4096  # the header of any 2-D array (numpy pads it to a multiple of 64 bytes)


def npy_sample_rows(store: ObjectStore, key: str, max_rows: int, windows: int = 64) -> tuple[np.ndarray, int]:
    """Up to ``max_rows`` rows of the 2-D C-ordered ``.npy`` object ``key`` and its row count: all its rows when it
    has no more (one GET), else ``windows`` evenly spaced runs of consecutive rows that together make
    ``max_rows``, each read by a ranged GET, so memory and transfer are bounded by ``max_rows`` whatever the size.
    Runs spread over the whole object, so rows in a file's order (by date, say) are sampled from end to end."""
    if max_rows < 1 or windows < 1:
        raise ValueError(f"need max_rows >= 1 and windows >= 1, got {max_rows} and {windows}")
    shape, fortran_order, dtype, offset = npy_header(store.get_range(key, 0, NPY_HEAD_BYTES))
    if len(shape) != 2 or fortran_order:
        raise ValueError(f"{key} is not a 2-D C-ordered array (shape {shape})")
    rows, width = shape
    if rows <= max_rows:
        return store.get_array(key), rows
    windows = min(windows, max_rows)
    row_bytes = width * dtype.itemsize
    starts = np.arange(windows, dtype=np.int64) * rows // windows  # equal segments; a run opens each
    sizes = np.diff(np.append(starts, rows))
    lengths = max_rows * sizes // rows  # below each segment's size, since max_rows < rows
    lengths[: max_rows - int(lengths.sum())] += 1  # the remainder (fewer than `windows` rows), one per segment
    parts = [
        np.frombuffer(
            store.get_range(key, offset + int(start) * row_bytes, offset + (int(start) + int(n)) * row_bytes),
            dtype=dtype,
        ).reshape(int(n), width)
        for start, n in zip(starts, lengths, strict=True)
    ]
    return np.concatenate(parts), rows


class CachedRead(NamedTuple):
    """One read through an ``ArrayCache``: the (read-only) array, whether it was a hit, the bytes downloaded."""

    array: np.ndarray
    hit: bool
    downloaded: int


class ArrayCache:
    """``.npy`` arrays kept per warm container: a least-recently-used cache bounded by bytes, thread-safe
    (the local runtime runs a round's workers as threads of one process).

    An entry is an S3 key with the ETag its bytes had. ``get_array`` asks S3 for the key with
    ``If-None-Match: <cached ETag>``: a hit is the 304 (a request, no bytes); a replaced object has a new
    ETag, so it is downloaded again and never served stale. An array larger than ``max_bytes`` is returned
    but not cached. ``hits``, ``misses`` and ``bytes_downloaded`` count this container's reads.
    """

    def __init__(self, max_bytes: int):
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[str, np.ndarray, int]] = OrderedDict()  # key -> (ETag, array, size)
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.bytes_downloaded = 0

    def resize(self, max_bytes: int) -> None:
        """Set the bound (the handler's, from the function's memory), evicting what no longer fits."""
        with self._lock:
            self.max_bytes = max_bytes
            self._evict()

    def cached_keys(self) -> list[str]:
        """The cached keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    def get_array(self, store: ObjectStore, key: str, *, write_once: bool = False) -> CachedRead:
        """The ``.npy`` object at ``key`` (read-only: callers must not modify it), from the cache while its
        ETag is unchanged; ``write_once``: the key's object is never replaced, so a cached one is served
        without asking S3."""
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and write_once:
            body, etag = None, cached[0]
        else:
            body, etag = store.get_bytes_if_changed(key, cached[0] if cached else None)
        if body is None:  # 304 Not Modified (an If-None-Match read) or write-once: there was a cached array
            assert cached is not None
            with self._lock:
                self.hits += 1
                if key in self._entries:
                    self._entries.move_to_end(key)
            return CachedRead(cached[1], True, 0)
        array = npy_view(body)
        with self._lock:
            self.misses += 1
            self.bytes_downloaded += len(body)
            self._put(key, etag, array, len(body))
        return CachedRead(array, False, len(body))

    def _put(self, key: str, etag: str, array: np.ndarray, size: int) -> None:
        if (old := self._entries.pop(key, None)) is not None:
            self.bytes -= old[2]
        if size > self.max_bytes:
            return
        self._entries[key] = (etag, array, size)
        self.bytes += size
        self._evict()

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self._entries:
            self.bytes -= self._entries.popitem(last=False)[1][2]


class MultipartUpload:
    """An S3 multipart upload in progress: ``part`` in order, then ``complete`` (or ``abort``)."""

    def __init__(self, store: S3Store, key: str, upload_id: str):
        self.store, self.key, self.upload_id = store, key, upload_id
        self.parts: list[dict[str, Any]] = []

    def part(self, body: bytes) -> None:
        number = len(self.parts) + 1
        etag = self.store.client.upload_part(
            Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )["ETag"]
        self.parts.append({"PartNumber": number, "ETag": etag})

    def complete(self) -> None:
        self.store.client.complete_multipart_upload(
            Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )

    def abort(self) -> None:
        self.store.client.abort_multipart_upload(Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id)
