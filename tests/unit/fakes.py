"""In-memory stand-ins for the storage adapter and the clock (no AWS, no moto)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np

from mlcore.infra.storage import NotFound


class FakeStore:
    """The methods that registry/serving/training call, with read and write counters per key."""

    def __init__(self, documents: dict[str, Any] | None = None, arrays: dict[str, np.ndarray] | None = None):
        self.documents = dict(documents or {})
        self.arrays = dict(arrays or {})
        self.archives: dict[str, dict[str, np.ndarray]] = {}  # what put_arrays stores (.npz on S3)
        self.reads: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()

    def get_json(self, key: str) -> Any:
        self.reads[key] += 1
        if key not in self.documents:
            raise NotFound(key)
        return self.documents[key]

    def put_json(self, key: str, doc: Any, *, if_absent: bool = False, if_match: str | None = None) -> str:
        from mlcore.infra.storage import AlreadyExists, Conflict

        if if_absent and key in self.documents:
            raise AlreadyExists(key)
        if if_match is not None and (key not in self.documents or if_match != self.etag(key)):
            raise Conflict(key)
        self.writes[key] += 1
        self.documents[key] = json.loads(json.dumps(doc))
        return self.etag(key)

    def etag(self, key: str) -> str:
        return f'"{self.writes[key]}"'

    def get_json_tagged(self, key: str) -> tuple[Any, str]:
        return self.get_json(key), self.etag(key)

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in [*self.documents, *self.arrays, *self.archives] if k.startswith(prefix))

    def get_array(self, key: str) -> np.ndarray:
        self.reads[key] += 1
        if key not in self.arrays:
            raise NotFound(key)
        return self.arrays[key].copy()

    def put_arrays(
        self, key: str, arrays: dict[str, np.ndarray], *, if_absent: bool = False, if_match: str | None = None
    ) -> str:
        from mlcore.infra.storage import AlreadyExists, Conflict

        if if_absent and key in self.archives:
            raise AlreadyExists(key)
        if if_match is not None and (key not in self.archives or if_match != self.etag(key)):
            raise Conflict(key)
        self.writes[key] += 1
        self.archives[key] = {name: np.array(a, copy=True) for name, a in arrays.items()}
        return self.etag(key)

    def get_arrays_with_etag(self, key: str) -> tuple[dict[str, np.ndarray], str]:
        self.reads[key] += 1
        if key not in self.archives:
            raise NotFound(key)
        return {name: a.copy() for name, a in self.archives[key].items()}, self.etag(key)

    def get_arrays(self, key: str) -> dict[str, np.ndarray]:
        return self.get_arrays_with_etag(key)[0]


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
