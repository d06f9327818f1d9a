"""URL ingestion: streamed into uploads/ by multipart upload, registered by the notification; private,
loopback and link-local destinations refused, redirects re-checked at every hop. The local test server
on 127.0.0.1 is reachable only through the explicit allowance the tests set (never in the template)."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from mlcore.steps import ingestion
from tests.helpers import keys, load_event

CSV = load_event("ingest_api")["body"].encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/data.csv":
            self.send_response(200)
            self.send_header("Content-Length", str(len(CSV)))
            self.end_headers()
            self.wfile.write(CSV)
        elif self.path == "/chunked.csv":  # no Content-Length: the limit is enforced while streaming
            self.send_response(200)
            self.end_headers()
            for _ in range(20):
                self.wfile.write(CSV)
        elif self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.split("=", 1)[1])
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def allow_local(monkeypatch, server):
    monkeypatch.setenv("INGEST_URL_ALLOW_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("INGEST_URL_ALLOW_HTTP", "true")
    monkeypatch.setenv("INGEST_URL_ALLOW_PORTS", server.rsplit(":", 1)[1])


def _post(cloud, url, name="web"):
    resp = cloud.request("POST", f"/datasets/{name}", {"url": url})
    return resp["statusCode"], json.loads(resp["body"])


def _nothing_written(cloud):
    assert keys(cloud, "uploads/") == [] and keys(cloud, "raw/") == []
    assert cloud.s3.list_multipart_uploads(Bucket=cloud.stack.bucket).get("Uploads", []) == []


def test_local_addresses_are_refused_by_default(cloud, server):
    assert _post(cloud, f"{server}/data.csv") == (
        400,
        {"message": f"only https URLs can be ingested, got '{server}/data.csv'"},
    )
    for url, address in [
        ("https://127.0.0.1/data.csv", "127.0.0.1"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe"),
        ("https://10.1.2.3/x.csv", "10.1.2.3"),
        ("https://localhost/x.csv", None),
    ]:
        status, body = _post(cloud, url)
        assert status == 400 and "which is not a public address" in body["message"], (url, body)
        if address:
            assert f"resolves to {address}," in body["message"]
    _nothing_written(cloud)


def test_allowed_local_server_is_streamed_then_registered(cloud, server, allow_local):
    status, body = _post(cloud, f"{server}/redirect?to=/data.csv")  # a redirect to an allowed address is followed
    assert status == 202, body
    assert body["status"] == "pending" and body["key"].startswith("uploads/web/url-") and body["bytes"] == len(CSV)
    stored = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=body["key"])["Body"].read()
    assert stored == CSV
    assert json.loads(cloud.request("GET", "/datasets/web")["body"])["status"] == "pending"
    event = load_event("ingest_s3_upload")
    event["detail"]["object"]["key"] = body["key"]
    result, error = cloud.invoke("IngestFunction", event)
    assert error is None, result
    assert result["rows"] == 40 and result["source"] == f"{server}/redirect?to=/data.csv"
    described = json.loads(cloud.request("GET", "/datasets/web")["body"])
    assert (described["status"], described["version"]) == ("ready", result["version"])
    assert keys(cloud, "uploads/") == []


def test_redirects_to_private_destinations_are_refused_at_that_hop(cloud, server, allow_local):
    for target in ("http://169.254.169.254/latest/meta-data/iam/", "http://10.0.0.1/", "ftp://example.com/x"):
        status, body = _post(cloud, f"{server}/redirect?to={target}")
        assert status == 400, body
        assert "not a public address" in body["message"] or "only https and http URLs" in body["message"]
    status, body = _post(cloud, f"{server}/missing.csv")
    assert (status, body["message"]) == (400, f"fetching '{server}/missing.csv' returned HTTP 404")
    _nothing_written(cloud)


def test_size_limit_aborts_the_stream(cloud, server, allow_local, monkeypatch):
    monkeypatch.setattr(ingestion, "MAX_FILE_BYTES", 5000)
    status, body = _post(cloud, f"{server}/chunked.csv")
    assert (status, body["message"]) == (400, "the file is over the 5000 byte limit")
    monkeypatch.setattr(ingestion, "MAX_FILE_BYTES", 1000)
    status, body = _post(cloud, f"{server}/data.csv")
    assert (status, body["message"]) == (400, f"the file is {len(CSV)} bytes, over the 1000 byte limit")
    _nothing_written(cloud)
