"""Local runs enforce each function's S3 write permissions as template.yaml grants them."""

from __future__ import annotations

from dataclasses import replace

import pytest
from botocore.exceptions import ClientError

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
        ("GradientWorkerFunction", "s3:PutObject", "scratch/run-1/gradients/round-00000/shard-00000.npy", True),
        ("GradientWorkerFunction", "s3:PutObject", "runs/run-1/async/head.npz", True),
        ("GradientWorkerFunction", "s3:PutObject", "runs/run-1/params/round-00001.npz", False),
        ("BatchPredictFunction", "s3:PutObject", "batch/batch-1/parts/00000.jsonl", True),
        ("BatchPredictFunction", "s3:PutObject", "datasets/housing/status.json", False),
        ("IngestFunction", "s3:AbortMultipartUpload", "uploads/housing/x.csv", True),
        ("IngestFunction", "s3:AbortMultipartUpload", "processed/run-1/shard-00000.npy", False),
        ("AggregatorFunction", "s3:DeleteObject", "scratch/run-1/gradients/round-00000/shard-00000.npy", True),
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
