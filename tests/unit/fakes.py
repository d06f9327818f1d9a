"""In-memory stand-ins for the storage adapter and the clock (no AWS, no moto)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from mlcore.storage import NotFound


class FakeStore:
    """Just the read methods that registry/serving/training call, with a read counter per key."""

    def __init__(self, documents: dict[str, Any] | None = None, arrays: dict[str, np.ndarray] | None = None):
        self.documents = dict(documents or {})
        self.arrays = dict(arrays or {})
        self.reads: Counter[str] = Counter()

    def get_json(self, key: str) -> Any:
        self.reads[key] += 1
        if key not in self.documents:
            raise NotFound(key)
        return self.documents[key]

    def get_array(self, key: str) -> np.ndarray:
        self.reads[key] += 1
        if key not in self.arrays:
            raise NotFound(key)
        return self.arrays[key].copy()


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
