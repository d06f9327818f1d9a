"""Enforce each function's S3 write permissions from template.yaml in local runs.

On AWS a handler that writes where its role does not allow gets AccessDenied; moto
allows everything. Here every handler invocation (``lambdas.invoke``) runs
``acting_as(spec)``, and moto's S3 backend refuses object writes, deletes and
multipart aborts that the function's ``Policies`` (``FunctionSpec.s3_grants``) do
not grant, with an ``AccessDenied`` that names the function, action and object. So
a policy narrowed too far fails the local tests, not the first deploy. Calls made
outside any invocation (test setup, the local server's upload emulation) are not
checked; reads are not checked (every function may read the bucket). Pinned to
moto 5.x's ``S3Backend`` method names.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from unittest import mock

from moto.s3.exceptions import S3ClientError
from moto.s3.models import S3Backend

from .template import FunctionSpec

_current: contextvars.ContextVar[FunctionSpec | None] = contextvars.ContextVar("mllocal_function", default=None)


@contextlib.contextmanager
def acting_as(spec: FunctionSpec) -> Iterator[None]:
    """S3 calls made in this block (in this thread) are made with ``spec``'s permissions."""
    token = _current.set(spec)
    try:
        yield
    finally:
        _current.reset(token)


def check(action: str, bucket: str, key: str) -> None:
    spec = _current.get()
    if spec is not None and not spec.allowed(action, bucket, key):
        raise S3ClientError(
            "AccessDenied",
            f"{spec.logical_id} is not allowed {action} on arn:aws:s3:::{bucket}/{key} by its Policies in "
            f"template.yaml",
        )


# the objects (bucket, key) that a call of an S3Backend method writes or deletes, from its arguments
type Targets = Callable[..., list[tuple[str, str]]]


def _guarded(original: Callable, action: str, targets: Targets) -> Callable:
    @functools.wraps(original)
    def method(self, *args, **kwargs):
        for bucket, key in targets(self, *args, **kwargs):
            check(action, bucket, key)
        return original(self, *args, **kwargs)

    return method


def _key(_backend: S3Backend, bucket_name: str, key_name: str, *_, **__) -> list[tuple[str, str]]:
    return [(bucket_name, key_name)]


def _copy_destination(
    _backend: S3Backend, src_key: object, dest_bucket_name: str, dest_key_name: str, *_, **__
) -> list[tuple[str, str]]:
    return [(dest_bucket_name, dest_key_name)]


def _deleted_keys(_backend: S3Backend, bucket_name: str, objects: list[dict], *_, **__) -> list[tuple[str, str]]:
    return [(bucket_name, o["Key"]) for o in objects]


def _upload_key(backend: S3Backend, bucket_name: str, multipart_id: str, *_, **__) -> list[tuple[str, str]]:
    multipart = backend.get_bucket(bucket_name).multiparts.get(multipart_id)
    return [(bucket_name, multipart.key_name)] if multipart is not None else []


# moto's S3Backend method: (IAM action, the objects it acts on, from its arguments)
_GUARDS: dict[str, tuple[str, Targets]] = {
    "put_object": ("s3:PutObject", _key),
    "create_multipart_upload": ("s3:PutObject", _key),
    "upload_part": ("s3:PutObject", _upload_key),
    "copy_object": ("s3:PutObject", _copy_destination),
    "delete_object": ("s3:DeleteObject", _key),
    "delete_objects": ("s3:DeleteObject", _deleted_keys),
    "abort_multipart_upload": ("s3:AbortMultipartUpload", _upload_key),
}


@contextlib.contextmanager
def enforce_s3_permissions() -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for name, (action, targets) in _GUARDS.items():
            stack.enter_context(mock.patch.object(S3Backend, name, _guarded(getattr(S3Backend, name), action, targets)))
        yield
