"""S3 "Object Created" events for the objects the functions write, as EventBridge sends them on AWS.

On AWS every object written to the bucket emits an event, and a rule whose pattern matches invokes its
function asynchronously. Here ``objects_created(on_created)`` calls ``on_created(bucket, key, size)`` after a
function's S3 call (``PutObject``, ``CopyObject``, ``CompleteMultipartUpload``) has written an object: the
caller (``LocalCloud``) matches the template's rules and runs the function in a thread of its own. Writes made
outside a function invocation (a test's setup, the local server's presigned-upload emulation) are not reported:
those callers deliver their events themselves (``LocalCloud.object_created``). Pinned to moto 5.x's
``S3Backend`` method names.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from unittest import mock

from moto.s3.models import S3Backend

_invocation: contextvars.ContextVar[str | None] = contextvars.ContextVar("mllocal_invocation", default=None)
_written: contextvars.ContextVar[list[tuple[str, str, int]] | None] = contextvars.ContextVar(
    "mllocal_written", default=None
)

type OnCreated = Callable[[str, str, int], None]


@contextlib.contextmanager
def invocation(function: str) -> Iterator[None]:
    """Objects written in this block (in this thread) are written by ``function`` and reported."""
    token = _invocation.set(function)
    try:
        yield
    finally:
        _invocation.reset(token)


def _reporting(original: Callable, on_created: OnCreated) -> Callable:
    """The S3Backend method, reporting every object it writes once the outermost call returns (moto's multipart
    completion and copy call ``put_object`` themselves, and set the metadata after it)."""

    @functools.wraps(original)
    def method(self, *args, **kwargs):
        if _invocation.get() is None:
            return original(self, *args, **kwargs)
        outer = _written.get() is None
        token = _written.set([]) if outer else None
        try:
            result = original(self, *args, **kwargs)
            if original.__name__ == "put_object" and result is not None:
                written = _written.get()
                assert written is not None
                written.append((result.bucket_name, result.name, result.size))
            reported = list(_written.get() or []) if outer else []
        finally:
            if token is not None:
                _written.reset(token)
        for bucket, key, size in reported:
            on_created(bucket, key, size)
        return result

    return method


@contextlib.contextmanager
def objects_created(on_created: OnCreated) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for name in ("put_object", "copy_object", "complete_multipart_upload"):
            stack.enter_context(mock.patch.object(S3Backend, name, _reporting(getattr(S3Backend, name), on_created)))
        yield
