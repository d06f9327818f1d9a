"""Local runs enforce each function's S3 write permissions as template.yaml grants them."""

from __future__ import annotations

from dataclasses import replace

import pytest
from botocore.exceptions import ClientError

from mlcore.infra import layout
from mllocal import lambdas, permissions
from mllocal.template import local_stack
from tests.helpers import keys, load_event


@pytest.fixture(scope="module")
def functions():
    return local_stack().functions


@pytest.mark.parametrize(
    ("function", "action", "key", "allowed"),
    [
        ("PredictFunction", "s3:GetObject", "models/m/aliases/production.json", True),
        ("PredictFunction", "s3:PutObject", "models/m/aliases/production.json", False),
        ("ModelsFunction", "s3:PutObject", "models/m/aliases/production.json", True),
        ("ModelsFunction", "s3:PutObject", "models/m/versions/000001/model.json", False),
        ("ModelsFunction", "s3:DeleteObject", "models/m/aliases/production.json", False),
        ("ExportFunction", "s3:PutObject", "models/m/versions/000001/model.onnx", True),
        ("ExportFunction", "s3:PutObject", "models/m/versions/000001/model.json", False),
        ("ExportFunction", "s3:PutObject", "models/m/aliases/production.json", False),
        ("GradientWorkerFunction", "s3:PutObject", "scratch/run-1/gradients/round-00000/shard-00000.npy", True),
        ("GradientWorkerFunction", "s3:PutObject", "runs/run-1/async/head.npz", True),
        ("GradientWorkerFunction", "s3:PutObject", "runs/run-1/params/round-00001.npz", False),
        ("BatchPredictFunction", "s3:PutObject", "batch/batch-1/parts/00000.jsonl", True),
        ("BatchPredictFunction", "s3:PutObject", "datasets/housing/status.json", False),
        ("IngestFunction", "s3:AbortMultipartUpload", "uploads/housing/x.csv", True),
        ("IngestFunction", "s3:AbortMultipartUpload", "processed/run-1/shard-00000.npy", False),
        ("AggregatorFunction", "s3:DeleteObject", "scratch/run-1/gradients/round-00000/shard-00000.npy", False),
        ("AggregatorFunction", "s3:PutObject", "runs/run-1/params/round-00001.npz", True),
        ("AggregatorFunction", "s3:PutObject", "runs/run-1/rounds/round-00001.json", True),
        ("AggregatorFunction", "s3:PutObject", "runs/run-1/model.json", False),
        ("AggregatorFunction", "s3:PutObject", "models/m/versions/000001/model.json", False),
        ("IngestFunction", "s3:PutObject", "uploads/housing/x.csv", True),
        ("IngestFunction", "s3:DeleteObject", "uploads/housing/x.csv", True),
        ("IngestFunction", "s3:PutObject", "raw/housing/0123456789abcdef/data.csv", True),
        ("IngestFunction", "s3:PutObject", "raw/housing/0123456789abcdef/dataset.json", True),
        ("IngestFunction", "s3:PutObject", "raw/housing/latest.json", True),
        ("IngestFunction", "s3:DeleteObject", "raw/housing/0123456789abcdef/data.csv", False),
        ("IngestFunction", "s3:PutObject", "raw/housing/0123456789abcdef/parts/part-00000.csv", True),
        ("IngestFunction", "s3:DeleteObject", "raw/housing/0123456789abcdef/parts/part-00000.csv", False),
        ("IngestFunction", "s3:PutObject", "landing/big/a.csv", False),
        ("IngestFunction", "s3:PutObject", "raw/housing/notes.txt", False),
        ("IngestFunction", "s3:PutObject", "datasets/housing/status.json", True),
        ("IngestFunction", "s3:DeleteObject", "datasets/housing/status.json", False),
        ("IngestFunction", "s3:PutObject", "processed/run-1/manifest.json", False),
        ("IngestFunction", "s3:PutObject", "models/m/aliases/production.json", False),
        ("PreprocessFunction", "s3:PutObject", "processed/run-1/shards/shard-00000.npy", True),
        ("PreprocessFunction", "s3:DeleteObject", "processed/run-1/manifest.json", True),
        ("PreprocessFunction", "s3:PutObject", "raw/housing/latest.json", False),
        ("PreprocessFunction", "s3:DeleteObject", "raw/housing/0123456789abcdef/data.csv", False),
        ("EvaluateFunction", "s3:PutObject", "models/m/versions/000001/model.json", True),
        ("EvaluateFunction", "s3:PutObject", "models/m/aliases/latest.json", True),
        ("EvaluateFunction", "s3:PutObject", "runs/run-1/model.json", True),
        ("EvaluateFunction", "s3:PutObject", "runs/run-1/params/round-00001.npz", False),
        ("EvaluateFunction", "s3:DeleteObject", "models/m/versions/000001/model.json", False),
    ],
)
def test_grants_come_from_the_template(functions, function, action, key, allowed):
    bucket = local_stack().bucket
    assert functions[function].allowed(action, bucket, key) is allowed
    assert not functions[function].allowed(action, "another-bucket", key)


def _error(call) -> dict:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]


ALIAS = "models/m/aliases/production.json"
VERSION = "models/m/versions/000001/model.json"


def _writes_as_predict(cloud) -> list[dict]:
    """Predict may write nothing: a PUT and a multipart upload of an alias, with their errors."""
    s3, bucket = cloud.s3, cloud.stack.bucket
    with permissions.acting_as(cloud.stack.functions["PredictFunction"]):
        return [
            _error(lambda: s3.put_object(Bucket=bucket, Key=ALIAS, Body=b"{}")),
            _error(lambda: s3.create_multipart_upload(Bucket=bucket, Key=ALIAS)),
        ]


def _writes_as_models(cloud) -> list[dict]:
    """Models may write aliases only: it writes one, then a version, a delete and a batch delete fail."""
    s3, bucket = cloud.s3, cloud.stack.bucket
    with permissions.acting_as(cloud.stack.functions["ModelsFunction"]):
        s3.put_object(Bucket=bucket, Key=ALIAS, Body=b"{}")
        return [
            _error(lambda: s3.put_object(Bucket=bucket, Key=VERSION, Body=b"{}")),
            _error(lambda: s3.delete_object(Bucket=bucket, Key=ALIAS)),
            _error(lambda: s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": ALIAS}]})),
        ]


def test_writes_outside_the_grants_are_denied(cloud):
    bucket = cloud.stack.bucket
    put, multipart = _writes_as_predict(cloud)
    assert put["Code"] == "AccessDenied"
    assert put["Message"] == (
        f"PredictFunction is not allowed s3:PutObject on arn:aws:s3:::{bucket}/{ALIAS} by its Policies in template.yaml"
    )
    assert multipart["Code"] == "AccessDenied"
    assert [error["Code"] for error in _writes_as_models(cloud)] == ["AccessDenied"] * 3


def test_denied_writes_leave_nothing(cloud):
    s3, bucket = cloud.s3, cloud.stack.bucket
    _writes_as_predict(cloud)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    _writes_as_models(cloud)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [ALIAS]


def test_calls_outside_any_function_are_not_checked(cloud):
    s3, bucket = cloud.s3, cloud.stack.bucket
    s3.put_object(Bucket=bucket, Key=ALIAS, Body=b"{}")
    s3.delete_object(Bucket=bucket, Key=ALIAS)  # outside any function (test setup and teardown): not checked
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_a_handler_runs_with_the_permissions_of_its_function(cloud):
    """Through the invocation path: Ingest with its S3 writes narrowed away fails with AccessDenied and
    writes nothing; with the template's own grants the same event stores the data set."""
    spec = cloud.stack.functions["IngestFunction"]
    read_only = replace(spec, s3_grants=tuple(g for g in spec.s3_grants if g[0] == "s3:GetObject"))
    event = load_event("ingest_api")

    payload, error = lambdas.invoke(read_only, event)
    assert error == "Unhandled" and payload["errorType"] == "AccessDenied", payload
    assert "IngestFunction is not allowed s3:PutObject" in payload["errorMessage"]
    assert keys(cloud) == []

    payload, error = lambdas.invoke(spec, event)
    assert error is None and payload["statusCode"] == 201, payload
    assert any(k.startswith("raw/housing-sample/") for k in keys(cloud)), keys(cloud)


# what a function may do besides reading: object writes, deletes and multipart aborts, under the product's prefixes
OBJECT_WRITES = {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}


def test_no_function_can_change_the_bucket_or_write_outside_its_prefixes(functions):
    """No S3CrudPolicy/S3WritePolicy-style grants: no wildcard actions, no lifecycle, ACL or bucket writes, and
    every write, delete or abort on an object ARN under one of the layout's prefixes, never the whole bucket."""
    objects = f"arn:aws:s3:::{local_stack().bucket}/"
    offending = [
        (name, action, resource)
        for name, spec in functions.items()
        for action, resource in spec.s3_grants
        if "*" in action
        or not (
            action.startswith(("s3:Get", "s3:List"))
            or (action in OBJECT_WRITES and resource.startswith(tuple(objects + p for p in layout.INTERNAL_PREFIXES)))
        )
    ]
    assert offending == []


FOREIGN = {
    "raw/housing/0123456789abcdef/data.csv": b"a,b\n1,2\n",
    "raw/housing/0123456789abcdef/dataset.json": b"{}",
    "processed/run-1/manifest.json": b"{}",
    "models/m/versions/000001/model.json": b"{}",
    "models/m/aliases/production.json": b"{}",
}


def test_ingest_cannot_delete_or_overwrite_what_it_does_not_own(cloud):
    """Ingest parses untrusted files: it cannot delete a data set version, nor write (or delete) shards and
    models; every attempt is AccessDenied naming the function, action and object, and changes nothing."""
    s3, bucket = cloud.s3, cloud.stack.bucket
    for key, body in FOREIGN.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)  # outside any function: not checked
    attempts = {("s3:DeleteObject", key): lambda key=key: s3.delete_object(Bucket=bucket, Key=key) for key in FOREIGN}
    # data set versions are Ingest's to write (content-addressed); any other key under raw/ is not
    overwritten = [k for k in FOREIGN if not k.startswith("raw/")] + ["raw/housing/notes.txt"]
    attempts |= {
        ("s3:PutObject", key): lambda key=key: s3.put_object(Bucket=bucket, Key=key, Body=b"x") for key in overwritten
    }
    with permissions.acting_as(cloud.stack.functions["IngestFunction"]):
        errors = {attempt: _error(call) for attempt, call in attempts.items()}
        batch = _error(lambda: s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in FOREIGN]}))
    assert {attempt: (e["Code"], e["Message"]) for attempt, e in errors.items()} == {
        (action, key): (
            "AccessDenied",
            f"IngestFunction is not allowed {action} on arn:aws:s3:::{bucket}/{key} by its Policies in template.yaml",
        )
        for action, key in attempts
    }
    assert batch["Code"] == "AccessDenied"
    assert keys(cloud) == sorted(FOREIGN)
    assert {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in FOREIGN} == FOREIGN
    assert all(
        "DeleteMarkers" not in s3.list_object_versions(Bucket=bucket, Prefix=k) for k in FOREIGN
    )  # no delete marker either: the current versions are untouched


def test_deleting_a_version_is_denied_even_where_deletes_are_granted(cloud):
    """A delete with a VersionId destroys that version for good (s3:DeleteObjectVersion, which no role has):
    Preprocess may delete its manifest (a delete marker, recoverable) but not remove a version of it."""
    s3, bucket, key = cloud.s3, cloud.stack.bucket, "processed/run-1/manifest.json"
    version = s3.put_object(Bucket=bucket, Key=key, Body=b"{}")["VersionId"]
    with permissions.acting_as(cloud.stack.functions["PreprocessFunction"]):
        one = _error(lambda: s3.delete_object(Bucket=bucket, Key=key, VersionId=version))
        batch = _error(
            lambda: s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key, "VersionId": version}]})
        )
        s3.delete_object(Bucket=bucket, Key=key)  # granted: leaves a delete marker over the version
    assert (one["Code"], one["Message"]) == (
        "AccessDenied",
        f"PreprocessFunction is not allowed s3:DeleteObjectVersion on arn:aws:s3:::{bucket}/{key} by its Policies "
        "in template.yaml",
    )
    assert batch["Code"] == "AccessDenied"
    listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
    assert [v["VersionId"] for v in listing["Versions"]] == [version]
    assert len(listing["DeleteMarkers"]) == 1


def test_multipart_copies_are_checked_part_by_part(cloud):
    """A server-side multipart copy (UploadPartCopy, what a managed copy of a large object does) writes its
    destination: Ingest cannot copy parts into a model version, even into an upload begun by someone else."""
    s3, bucket = cloud.s3, cloud.stack.bucket
    s3.put_object(Bucket=bucket, Key="inputs/big.csv", Body=b"a,b\n1,2\n")
    upload = s3.create_multipart_upload(Bucket=bucket, Key=VERSION)["UploadId"]
    with permissions.acting_as(cloud.stack.functions["IngestFunction"]):
        error = _error(
            lambda: s3.upload_part_copy(
                Bucket=bucket,
                Key=VERSION,
                UploadId=upload,
                PartNumber=1,
                CopySource={"Bucket": bucket, "Key": "inputs/big.csv"},
            )
        )
    assert (error["Code"], error["Message"]) == (
        "AccessDenied",
        f"IngestFunction is not allowed s3:PutObject on arn:aws:s3:::{bucket}/{VERSION} by its Policies in "
        "template.yaml",
    )
    assert s3.list_parts(Bucket=bucket, Key=VERSION, UploadId=upload).get("Parts", []) == []
    s3.abort_multipart_upload(Bucket=bucket, Key=VERSION, UploadId=upload)
