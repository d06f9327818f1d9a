"""URL ingestion: the POST checks the URL and queues it (202, status pending); the request document's notification
makes Ingest stream the file into uploads/ asynchronously, bounded in size and time, and the file's own notification
registers it. Private, loopback and link-local destinations are refused, redirects re-checked at every hop. The
local test server on 127.0.0.1 is reachable only through the explicit allowance the tests set (never in the
template)."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from mlcore.infra import urlfetch
from mlcore.steps import ingestion
from tests.helpers import keys, load_event

CSV = load_event("ingest_api")["body"].encode()


class Handler(http.server.BaseHTTPRequestHandler):
    server: Server

    def do_GET(self):
        if self.path == "/data.csv":
            self._send_csv()
        elif self.path == "/slow.csv":  # answers once the test opens the gate (or after 10 s)
            self.server.requested.set()
            self.server.gate.wait(10)
            self._send_csv()
            self.server.answered.set()
        elif self.path == "/stall.csv":  # headers, then silence until the gate opens
            self.send_response(200)
            self.send_header("Content-Length", str(len(CSV)))
            self.end_headers()
            self.wfile.flush()
            self.server.gate.wait(10)
        elif self.path == "/drip.csv":  # a byte at a time, each well within the read timeout, never done
            self.send_response(200)
            self.end_headers()
            for _ in range(200):
                if self.server.gate.wait(0.05):
                    return
                try:
                    self.wfile.write(b"a")
                    self.wfile.flush()
                except OSError:  # the client hung up
                    return
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

    def _send_csv(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(CSV)))
        self.end_headers()
        self.wfile.write(CSV)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.gate, self.requested, self.answered = threading.Event(), threading.Event(), threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def httpd():
    server = Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.gate.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def server(httpd):
    return httpd.url


@pytest.fixture
def allow_local(monkeypatch, server):
    monkeypatch.setenv("INGEST_URL_ALLOW_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("INGEST_URL_ALLOW_HTTP", "true")
    monkeypatch.setenv("INGEST_URL_ALLOW_PORTS", server.rsplit(":", 1)[1])


def _post(cloud, url, name="web"):
    resp = cloud.request("POST", f"/datasets/{name}", {"url": url})
    return resp["statusCode"], json.loads(resp["body"])


def _status(cloud, name="web"):
    resp = cloud.request("GET", f"/datasets/{name}")
    assert resp["statusCode"] == 200, resp
    return json.loads(resp["body"])


def _nothing_written(cloud):
    assert keys(cloud, "uploads/") == [] and keys(cloud, "raw/") == []
    assert cloud.s3.list_multipart_uploads(Bucket=cloud.stack.bucket).get("Uploads", []) == []


def _fails_with(cloud, url, reason):
    """The POST is accepted; the asynchronous fetch then fails with ``reason`` and leaves nothing behind."""
    status, body = _post(cloud, url)
    assert (status, body["status"]) == (202, "pending"), body
    answers = cloud.settle()
    assert [error for _, error in answers] == [None], answers  # a failure is a status, never raised (no retries)
    described = _status(cloud)
    assert (described["status"], described["reason"]) == ("failed", reason)
    assert "version" not in described
    _nothing_written(cloud)


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
    assert keys(cloud, "datasets/") == [] and cloud.settle() == []  # no status, nothing queued


def test_the_post_answers_202_while_the_server_is_still_holding_the_file(cloud, httpd, allow_local):
    url = f"{httpd.url}/slow.csv"
    status, body = _post(cloud, url)
    assert not httpd.answered.is_set()  # the server has not answered (it waits for the gate): no download yet
    assert status == 202, body
    upload_id = body["upload_id"]
    assert body == {
        "dataset": "web",
        "status": "pending",
        "upload_id": upload_id,
        "key": f"uploads/web/{upload_id}.csv",
        "source": url,
    }
    assert upload_id.startswith("url-")
    assert _status(cloud)["status"] == "pending"
    assert httpd.requested.wait(10)  # the asynchronous invocation is fetching
    assert keys(cloud, "uploads/") == [f"uploads/web/{upload_id}.request.json"]

    httpd.gate.set()
    fetched, registered = sorted(cloud.settle(), key=lambda answer: "rows" in answer[0])
    assert fetched == ({"dataset": "web", "status": "pending", "key": body["key"], "bytes": len(CSV),
                        "sha256": fetched[0]["sha256"], "source": url}, None)  # fmt: skip
    assert registered[1] is None and registered[0]["rows"] == 40 and registered[0]["source"] == url
    described = _status(cloud)
    assert (described["status"], described["version"], described["source"]) == ("ready", registered[0]["version"], url)
    assert keys(cloud, "uploads/") == []  # the request document and the fetched file are both removed
    assert keys(cloud, "raw/web/") == sorted(
        [
            f"raw/web/{described['version']}/data.csv",
            f"raw/web/{described['version']}/dataset.json",
            "raw/web/latest.json",
        ]
    )


def test_a_redirect_to_an_allowed_address_is_followed(cloud, server, allow_local):
    url = f"{server}/redirect?to=/data.csv"
    status, body = _post(cloud, url)
    assert status == 202, body
    cloud.settle()
    described = _status(cloud)
    assert (described["status"], described["rows"], described["source"]) == ("ready", 40, url)
    assert keys(cloud, "uploads/") == []


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (
            "http://169.254.169.254/latest/meta-data/iam/",
            "refusing to fetch '169.254.169.254': it resolves to 169.254.169.254, which is not a public address",
        ),
        ("http://10.0.0.1/", "refusing to fetch '10.0.0.1': it resolves to 10.0.0.1, which is not a public address"),
        ("ftp://example.com/x", "only https and http URLs can be ingested, got 'ftp://example.com/x'"),
    ],
)
def test_a_redirect_to_a_refused_destination_fails_the_ingestion(cloud, server, allow_local, target, reason):
    _fails_with(cloud, f"{server}/redirect?to={target}", reason)


def test_a_missing_file_fails_the_ingestion(cloud, server, allow_local):
    _fails_with(cloud, f"{server}/missing.csv", f"fetching '{server}/missing.csv' returned HTTP 404")


def test_a_stalled_read_times_out(cloud, server, allow_local, monkeypatch):
    monkeypatch.setattr(urlfetch, "TIMEOUT_SECONDS", 0.5)
    _fails_with(cloud, f"{server}/stall.csv", f"the download of '{server}/stall.csv' failed: timed out")


def test_a_download_past_the_deadline_fails(cloud, server, allow_local, monkeypatch):
    """Every read is quick, the whole never ends: the overall deadline stops it."""
    monkeypatch.setattr(urlfetch, "DEADLINE_SECONDS", 1.0)
    _fails_with(cloud, f"{server}/drip.csv", f"the download of '{server}/drip.csv' did not finish within 1 seconds")


def test_the_deadline_is_well_within_the_ingest_functions_timeout(cloud):
    assert urlfetch.DEADLINE_SECONDS == 600.0
    assert cloud.stack.functions["IngestFunction"].timeout >= urlfetch.DEADLINE_SECONDS + 120


def test_size_limit_aborts_the_stream(cloud, server, allow_local, monkeypatch):
    monkeypatch.setattr(ingestion, "MAX_FILE_BYTES", 5000)
    _fails_with(cloud, f"{server}/chunked.csv", "the file is over the 5000 byte limit")
    monkeypatch.setattr(ingestion, "MAX_FILE_BYTES", 1000)
    _fails_with(cloud, f"{server}/data.csv", f"the file is {len(CSV)} bytes, over the 1000 byte limit")


def test_a_request_document_is_never_a_data_set_version(cloud, server, allow_local):
    """Not registrable as an object, and one that is not a request (here: CSV bytes) fails without a version."""
    key = "uploads/web/url-0123456789abcdef.request.json"
    assert _post(cloud, f"{server}/data.csv")[0] == 202
    cloud.settle()
    resp = cloud.request("POST", "/datasets/other", {"s3_key": key})
    assert resp["statusCode"] == 400 and json.loads(resp["body"])["message"].startswith(
        f"s3_key {key!r} is not allowed"
    )

    before = keys(cloud, "raw/")
    [(answer, error)] = cloud.object_created(key, CSV)
    assert error is None, answer
    reason = "ingestion failed unexpectedly (JSONDecodeError); see the Ingest logs"
    assert (answer["status"], answer["reason"]) == ("failed", reason)
    assert _status(cloud)["reason"] == reason
    assert keys(cloud, "raw/") == before and keys(cloud, "uploads/") == []
    assert cloud.settle() == []  # nothing was fetched
