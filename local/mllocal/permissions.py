"""Enforce each function's S3 write permissions from template.yaml in local runs.

On AWS a handler that writes where its role does not allow gets AccessDenied; moto
allows everything. Here every handler invocation (``lambdas.invoke``) runs
``acting_as(spec)``, and moto's S3 backend refuses object writes, deletes and
multipart aborts that the function's ``Policies`` (``FunctionSpec.s3_grants``) do
not grant, with an ``AccessDenied`` that names the function, action and object. So
a policy narrowed too far fails the local tests, not the first deploy. Deleting a given
version (``VersionId``) is checked as ``s3:DeleteObjectVersion``, as IAM does: no function
is granted it. Calls made outside any invocation (test setup, the local server's upload
emulation) are not checked; reads are not checked (every function may read the bucket,
``S3ReadPolicy``). Pinned to moto 5.x's ``S3Backend`` method names.
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


# what a call of an S3Backend method does, from its arguments: (IAM action, bucket, key) per object it acts on
type Targets = Callable[..., list[tuple[str, str, str]]]


def _guarded(original: Callable, targets: Targets) -> Callable:
    @functools.wraps(original)
    def method(self, *args, **kwargs):
        for action, bucket, key in targets(self, *args, **kwargs):
            check(action, bucket, key)
        return original(self, *args, **kwargs)

    return method


def _put(_backend: S3Backend, bucket_name: str, key_name: str, *_, **__) -> list[tuple[str, str, str]]:
    return [("s3:PutObject", bucket_name, key_name)]


def _copy_destination(
    _backend: S3Backend, src_key: object, dest_bucket_name: str, dest_key_name: str, *_, **__
) -> list[tuple[str, str, str]]:
    return [("s3:PutObject", dest_bucket_name, dest_key_name)]


def _delete_action(version_id: object) -> str:
    """Deleting a given version removes it for good: IAM calls that s3:DeleteObjectVersion."""
    return "s3:DeleteObjectVersion" if version_id else "s3:DeleteObject"


def _deleted_key(
    _backend: S3Backend, bucket_name: str, key_name: str, version_id: str | None = None, *_, **__
) -> list[tuple[str, str, str]]:
    return [(_delete_action(version_id), bucket_name, key_name)]


def _deleted_keys(_backend: S3Backend, bucket_name: str, objects: list[dict], *_, **__) -> list[tuple[str, str, str]]:
    return [(_delete_action(o.get("VersionId")), bucket_name, o["Key"]) for o in objects]


def _upload(action: str) -> Targets:
    """The object a multipart upload (by its id) is writing."""

    def targets(backend: S3Backend, bucket_name: str, multipart_id: str, *_, **__) -> list[tuple[str, str, str]]:
        multipart = backend.get_bucket(bucket_name).multiparts.get(multipart_id)
        return [(action, bucket_name, multipart.key_name)] if multipart is not None else []

    return targets


# moto's S3Backend methods that write, delete or abort, and what they act on
_GUARDS: dict[str, Targets] = {
    "put_object": _put,
    "create_multipart_upload": _put,
    "upload_part": _upload("s3:PutObject"),
    "upload_part_copy": _upload("s3:PutObject"),
    "copy_object": _copy_destination,
    "delete_object": _deleted_key,
    "delete_objects": _deleted_keys,
    "abort_multipart_upload": _upload("s3:AbortMultipartUpload"),
}


@contextlib.contextmanager
def enforce_s3_permissions() -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for name, targets in _GUARDS.items():
            stack.enter_context(mock.patch.object(S3Backend, name, _guarded(getattr(S3Backend, name), targets)))
        yield
