"""GET /models/{name}/versions/{v}/onnx through the local API server (the Export function on moto), the SDK's
export_onnx and `sml models export`: the downloaded graph answers as Predict does, it is built once and then
reused, and an unknown version or an inexpressible transform is refused with nothing written."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from mlclient import Client
from mlclient.cli import main as sml
from mlcore.infra import layout
from mlcore.serving.registry import ModelArtifact
from mllocal.server import LocalApi
from tests.unit.test_onnx_export import HASH_REFUSAL, artifact, hashed_artifact, onnx_inputs, raw_rows

ort = pytest.importorskip("onnxruntime")

CLASSES = ["high", "low", "mid"]


@pytest.fixture(scope="module")
def server():
    with LocalApi(port=0, access_log=False) as api:
        for art in (
            artifact("mlp_classifier", classes=CLASSES).model_copy(update={"name": "shop", "version": 1}),
            hashed_artifact(),
        ):
            put(api, layout.version_key(art.name, art.version), art.model_dump_json().encode())
        yield api


def put(api: LocalApi, key: str, body: bytes) -> None:
    api.cloud.s3.put_object(Bucket=api.cloud.stack.bucket, Key=key, Body=body)


def keys(api: LocalApi, prefix: str) -> list[str]:
    listed = api.cloud.s3.list_objects_v2(Bucket=api.cloud.stack.bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def call(api: LocalApi, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"x-api-key": api.api_key or "", "Content-Type": "application/json"}
    request = urllib.request.Request(f"{api.url}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_sdk_downloads_a_graph_that_answers_as_predict(server, tmp_path):
    path = tmp_path / "shop.onnx"
    with Client(server.url, server.api_key) as client:
        answer = client.export_onnx("shop", 1, path)
    key = "models/shop/versions/000001/model.onnx"
    stored = server.cloud.s3.get_object(Bucket=server.cloud.stack.bucket, Key=key)["Body"].read()
    assert path.read_bytes() == stored and answer["size"] == len(stored) and answer["key"] == key
    assert answer["built"] is True and answer["classes"] == CLASSES
    assert [o["name"] for o in answer["outputs"]] == ["label", "probabilities"]

    art = ModelArtifact.model_validate_json(
        server.cloud.s3.get_object(Bucket=server.cloud.stack.bucket, Key=layout.version_key("shop", 1))["Body"].read()
    )
    rows = raw_rows(50)
    status, predicted = call(server, "/models/shop/predict?version=1", {"instances": rows})
    assert status == 200, predicted
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels, proba = session.run(["label", "probabilities"], onnx_inputs(art, rows))
    assert labels.tolist() == predicted["predictions"]
    np.testing.assert_allclose(proba, predicted["probabilities"], rtol=1e-5, atol=1e-7)


def test_a_second_request_reuses_the_stored_graph(server):
    first_status, first = call(server, "/models/shop/versions/1/onnx")
    head = server.cloud.s3.head_object(Bucket=server.cloud.stack.bucket, Key=first["key"])
    status, again = call(server, "/models/shop/versions/1/onnx")
    assert first_status == status == 200 and again["built"] is False and again["size"] == first["size"]
    later = server.cloud.s3.head_object(Bucket=server.cloud.stack.bucket, Key=first["key"])
    assert (later["ETag"], later["LastModified"]) == (head["ETag"], head["LastModified"])
    assert keys(server, "models/shop/") == ["models/shop/versions/000001/model.json", first["key"]]


def test_the_download_url_is_signed_for_its_key(server):
    _, answer = call(server, "/models/shop/versions/1/onnx")
    tampered = answer["download_url"].replace("signature=", "signature=0")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered)
    assert refused.value.code == 403
    with urllib.request.urlopen(answer["download_url"]) as response:
        assert response.headers["Content-Type"] == "application/octet-stream" and len(response.read()) == answer["size"]


def test_an_unknown_version_is_404_and_nothing_is_written(server):
    before = keys(server, "models/")
    assert call(server, "/models/shop/versions/9/onnx") == (404, {"message": "model 'shop' has no version 9"})
    assert call(server, "/models/nope/versions/1/onnx") == (404, {"message": "model 'nope' has no version 1"})
    assert keys(server, "models/") == before


def test_a_hashed_column_is_refused_with_422_naming_it_and_nothing_is_written(server):
    before = keys(server, "models/houses/")
    assert call(server, "/models/houses/versions/1/onnx") == (422, {"message": HASH_REFUSAL})
    assert keys(server, "models/houses/") == before == ["models/houses/versions/000001/model.json"]


def test_sml_models_export_writes_the_file(server, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    base = ["--url", server.url, "--api-key", server.api_key or "unused"]
    assert sml([*base, "models", "export", "shop", "--version", "1", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("model shop version 1: ONNX graph (opset 19, ") and str(out) in printed
    assert "outputs: label, probabilities" in printed
    key = layout.onnx_key("shop", 1)
    assert out.read_bytes() == server.cloud.s3.get_object(Bucket=server.cloud.stack.bucket, Key=key)["Body"].read()
    assert sml([*base, "models", "export", "shop", "--version", "1", "-o", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["key"] == key
    assert sml([*base, "models", "export", "shop", "-o", str(out)]) == 1
    assert "models export needs a version and a file" in capsys.readouterr().err
    assert sml([*base, "models", "export", "houses", "--version", "1", "-o", str(tmp_path / "h.onnx")]) == 1
    assert "column 'street' uses encoding 'hash'" in capsys.readouterr().err
    assert not (tmp_path / "h.onnx").exists()
