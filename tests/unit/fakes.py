"""In-memory stand-ins for the storage adapter and the clock (no AWS, no moto)."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from mlcore.infra.storage import AlreadyExists, Conflict, NotFound, ObjectStore, npy_view


class FakeUpload:
    """A multipart upload into a ``FakeStore``: the parts become one object on ``complete``."""

    def __init__(self, store: FakeStore, key: str, content_type: str):
        self.store, self.key, self.content_type = store, key, content_type
        self.parts: list[dict[str, Any]] = []
        self._bodies: list[bytes] = []

    def part(self, body: bytes) -> None:
        self._bodies.append(body)
        self.parts.append({"PartNumber": len(self.parts) + 1})

    def complete(self) -> None:
        self.store.put_bytes(self.key, b"".join(self._bodies), content_type=self.content_type)

    def abort(self) -> None:
        self._bodies.clear()


class FakeStore:
    """An ``ObjectStore`` in memory, with read and write counters per key.

    JSON documents, ``.npy`` arrays and ``.npz`` archives are kept as Python objects (``documents``,
    ``arrays``, ``archives``) so tests can look at and plant them; other objects as bytes (``objects``).
    A key's ETag is its write count, so a compare-and-swap sees every write."""

    MIN_PART_BYTES = 8 * 1024 * 1024

    def __init__(self, documents: dict[str, Any] | None = None, arrays: dict[str, np.ndarray] | None = None):
        self.bucket = "fake-bucket"
        self.documents: dict[str, Any] = dict(documents or {})
        self.arrays: dict[str, np.ndarray] = dict(arrays or {})
        self.archives: dict[str, dict[str, np.ndarray]] = {}  # what put_arrays stores (.npz on S3)
        self.objects: dict[str, bytes] = {}
        self.multiparts: dict[str, dict[str, Any]] = {}  # presigned multipart uploads in progress, by upload id
        self.metadata: dict[str, dict[str, str]] = {}  # user metadata of objects (multipart uploads set some)
        self.reads: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()

    def etag(self, key: str) -> str:
        return f'"{self.writes[key]}"'

    def _holds(self, key: str) -> bool:
        return any(key in kind for kind in (self.documents, self.arrays, self.archives, self.objects))

    def _write(self, key: str, *, if_absent: bool, if_match: str | None) -> None:
        if if_absent and if_match:
            raise ValueError("if_absent and if_match are exclusive")
        if if_absent and self._holds(key):
            raise AlreadyExists(key)
        if if_match is not None and (not self._holds(key) or if_match != self.etag(key)):
            raise Conflict(key)
        for kind in (self.documents, self.arrays, self.archives, self.objects):
            kind.pop(key, None)
        self.metadata.pop(key, None)
        self.writes[key] += 1

    def _read(self, key: str) -> None:
        self.reads[key] += 1
        if not self._holds(key):
            raise NotFound(key)

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
        self._write(key, if_absent=if_absent, if_match=if_match)
        self.objects[key] = bytes(body)
        return self.etag(key)

    def get_bytes(self, key: str) -> bytes:
        return self.get_bytes_with_etag(key)[0]

    def get_bytes_with_etag(self, key: str) -> tuple[bytes, str]:
        self._read(key)
        if key in self.objects:
            return self.objects[key], self.etag(key)
        if key in self.documents:
            return json.dumps(self.documents[key]).encode(), self.etag(key)
        buffer = io.BytesIO()
        if key in self.arrays:
            np.save(buffer, self.arrays[key], allow_pickle=False)
        else:
            named: dict[str, Any] = self.archives[key]  # savez's own keywords are not array names
            np.savez(buffer, **named)
        return buffer.getvalue(), self.etag(key)

    def get_bytes_if_changed(self, key: str, etag: str | None) -> tuple[bytes | None, str]:
        if etag is not None and self._holds(key) and etag == self.etag(key):
            self.reads[key] += 1
            return None, etag
        return self.get_bytes_with_etag(key)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        return self.get_bytes(key)[start:end] if end > start else b""

    def head(self, key: str) -> dict[str, Any] | None:
        if not self._holds(key):
            return None
        head: dict[str, Any] = {"ETag": self.etag(key), "Metadata": dict(self.metadata.get(key, {}))}
        if key in self.objects:
            head["ContentLength"] = len(self.objects[key])
        return head

    def exists(self, key: str) -> bool:
        return self._holds(key)

    def list_keys(self, prefix: str) -> list[str]:
        keys = [*self.documents, *self.arrays, *self.archives, *self.objects]
        return sorted(k for k in keys if k.startswith(prefix))

    def open(self, key: str, version_id: str | None = None) -> io.BytesIO:
        return io.BytesIO(self.get_bytes(key))

    def copy(
        self,
        source: str,
        key: str,
        *,
        content_type: str = "application/octet-stream",
        source_version: str | None = None,
        if_match: str | None = None,
    ) -> None:
        body, etag = self.get_bytes_with_etag(source)
        if if_match is not None and if_match != etag:
            raise Conflict(source)
        self.put_bytes(key, body, content_type=content_type)

    def start_multipart(
        self, key: str, *, content_type: str = "application/octet-stream", metadata: dict[str, str] | None = None
    ) -> FakeUpload:
        return FakeUpload(self, key, content_type)

    def put_stream(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        body = b"".join(chunks)
        self.put_bytes(key, body, content_type=content_type)
        return len(body), hashlib.sha256(body).hexdigest()

    def presign_put(self, key: str, expires_in: int) -> str:
        return f"https://{self.bucket}.example/{key}?expires={expires_in}"

    def presign_get(self, key: str, expires_in: int) -> str:
        return f"https://{self.bucket}.example/{key}?method=GET&expires={expires_in}"

    def list_objects(self, prefix: str) -> list[dict[str, Any]]:
        return [{"Key": k, "Size": len(self.objects.get(k, b"")), "ETag": self.etag(k)} for k in self.list_keys(prefix)]

    def presign_multipart(
        self, key: str, n_parts: int, expires_in: int, *, content_type: str, metadata: dict[str, str]
    ) -> tuple[str, list[str]]:
        upload_id = f"mpu-{len(self.multiparts) + 1}"
        self.multiparts[upload_id] = {"key": key, "content_type": content_type, "metadata": metadata, "parts": {}}
        urls = [
            f"https://{self.bucket}.example/{key}?uploadId={upload_id}&partNumber={n}" for n in range(1, n_parts + 1)
        ]
        return upload_id, urls

    def upload_part(self, upload_id: str, number: int, body: bytes) -> str:
        """What a PUT to a presigned part URL does: the part's ETag."""
        etag = f'"{hashlib.md5(body).hexdigest()}"'
        self.multiparts[upload_id]["parts"][number] = (etag, body)
        return etag

    def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> None:
        upload = self.multiparts.get(upload_id)
        if upload is None or upload["key"] != key:
            raise NotFound(key)
        parts = upload["parts"]
        if [parts.get(n, ("", b""))[0] for n in range(1, len(etags) + 1)] != etags:
            raise Conflict("InvalidPart: one or more of the specified parts could not be found")
        del self.multiparts[upload_id]
        self.put_bytes(
            key, b"".join(parts[n][1] for n in range(1, len(etags) + 1)), content_type=upload["content_type"]
        )
        self.metadata[key] = dict(upload["metadata"])

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            for kind in (self.documents, self.arrays, self.archives, self.objects):
                kind.pop(key, None)

    # -- JSON ------------------------------------------------------------
    def put_json(self, key: str, doc: Any, *, if_absent: bool = False, if_match: str | None = None) -> str:
        self._write(key, if_absent=if_absent, if_match=if_match)
        self.documents[key] = json.loads(json.dumps(doc))
        return self.etag(key)

    def get_json(self, key: str) -> Any:
        return self.get_json_tagged(key)[0]

    def get_json_tagged(self, key: str) -> tuple[Any, str]:
        self._read(key)
        if key in self.documents:
            return self.documents[key], self.etag(key)
        return json.loads(self.objects[key]), self.etag(key)

    # -- arrays ----------------------------------------------------------
    def put_array(self, key: str, array: np.ndarray, *, if_absent: bool = False) -> str:
        self._write(key, if_absent=if_absent, if_match=None)
        self.arrays[key] = np.array(array, copy=True)
        return self.etag(key)

    def get_array(self, key: str) -> np.ndarray:
        self._read(key)
        if key in self.arrays:
            return self.arrays[key].copy()
        return npy_view(self.objects[key])

    def put_arrays(
        self, key: str, arrays: dict[str, np.ndarray], *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        self._write(key, if_absent=if_absent, if_match=if_match)
        self.archives[key] = {name: np.array(a, copy=True) for name, a in arrays.items()}
        return self.etag(key)

    def get_arrays(self, key: str) -> dict[str, np.ndarray]:
        return self.get_arrays_with_etag(key)[0]

    def get_arrays_with_etag(self, key: str) -> tuple[dict[str, np.ndarray], str]:
        self._read(key)
        return {name: a.copy() for name, a in self.archives[key].items()}, self.etag(key)


def _satisfies_the_port(store: FakeStore) -> ObjectStore:
    return store  # mypy checks FakeStore against the ObjectStore protocol here


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CrashAt:
    """A store, except that its ``k``-th JSON write raises (a function dying mid-way, e.g. Evaluate registering)."""

    def __init__(self, store, k: int):
        self.store, self.k, self.writes = store, k, 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    def put_json(self, key, doc, **kwargs):
        self.writes += 1
        if self.writes == self.k:
            raise ConnectionError(f"crash at write {self.k}")
        return self.store.put_json(key, doc, **kwargs)
