"""Make moto's conditional S3 writes atomic, as they are on S3.

moto 5.x checks ``If-Match`` / ``If-None-Match`` in ``S3Response.put_object`` and
then stores the object in a separate step, so two threads can both pass the check
and both write: a compare-and-swap that S3 guarantees would silently lose an
update locally; and a GET racing an overwrite can read a closed buffer.
``atomic_conditional_writes`` serializes both methods (check and write together)
for the duration of the context. Pinned to moto 5.x.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from unittest import mock

from moto.s3.responses import S3Response

_lock = threading.RLock()


def _serialized(original):
    @functools.wraps(original)
    def method(self, *args, **kwargs):
        with _lock:
            return original(self, *args, **kwargs)

    return method


@contextlib.contextmanager
def atomic_conditional_writes() -> Iterator[None]:
    # GETs too: moto closes an object's buffer when it is overwritten, under a concurrent reader
    with (
        mock.patch.object(S3Response, "put_object", _serialized(S3Response.put_object)),
        mock.patch.object(S3Response, "get_object", _serialized(S3Response.get_object)),
    ):
        yield
