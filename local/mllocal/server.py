"""`make local`: the whole API on http://127.0.0.1:3000, the way `sam local start-api` would serve it.

Each HTTP request becomes an API Gateway REST proxy event for the handler that template.yaml
routes it to; S3 and Step Functions are moto's (the real state machines, executed with the
real handlers). No AWS account and no Docker. Stops cleanly on Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from .cloud import LocalCloud
from .faults import FaultInjector
from .template import local_stack

LOCAL_API_KEY = "local-api-key"
BODY_TIMEOUT_SECONDS = 5.0  # how long the server waits for a declared request body


LOCAL_S3_PATH = "/_local_s3/"


class UploadSigner:
    """Presigned upload URLs for this server: the key's HMAC under a secret of the server's run, as S3's
    signature is, so only a URL the API handed out can write, and only to its own key."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def signature(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()

    def valid(self, key: str, signature: str) -> bool:
        return hmac.compare_digest(self.signature(key), signature)

    @staticmethod
    def download(key: str) -> str:
        """What a download URL is signed for: a GET of the key (never a PUT of it)."""
        return f"GET {key}"

    @staticmethod
    def part(key: str, number: str, upload_id: str) -> str:
        """What a multipart upload's part URL is signed for: the key, the part number and the upload."""
        return f"{key}?partNumber={number}&uploadId={upload_id}"

    def rewrite(self, data: bytes, base: str) -> bytes:
        """Presigned S3 URLs point at moto's (unreachable) S3: send the client to this server instead (the URL of
        a single upload, or of each part of a multipart upload)."""
        if b'"upload_url"' not in data and b'"predictions_url"' not in data and b'"download_url"' not in data:
            return data
        try:
            doc = json.loads(data)
        except ValueError:
            return data
        if isinstance(doc, dict) and "predictions_url" in doc and "predictions_key" in doc:  # a batch job's output
            for name in ("predictions", "errors"):
                key = doc[f"{name}_key"]
                query = urlencode({"signature": self.signature(self.download(key))})
                doc[f"{name}_url"] = f"{base}{LOCAL_S3_PATH}{quote(key)}?{query}"
            return json.dumps(doc).encode()
        if isinstance(doc, dict) and "download_url" in doc and "key" in doc:  # a model version's ONNX graph
            query = urlencode({"signature": self.signature(self.download(doc["key"]))})
            doc["download_url"] = f"{base}{LOCAL_S3_PATH}{quote(doc['key'])}?{query}"
            return json.dumps(doc).encode()
        if isinstance(doc, dict) and "upload_url" in doc and "key" in doc:
            query = urlencode({"signature": self.signature(doc["key"])})
            doc["upload_url"] = f"{base}{LOCAL_S3_PATH}{quote(doc['key'])}?{query}"
            return json.dumps(doc).encode()
        if isinstance(doc, dict) and isinstance(doc.get("parts"), list) and "multipart_upload_id" in doc:
            key, upload_id = doc["key"], doc["multipart_upload_id"]
            for part in doc["parts"]:
                number = str(part["part_number"])
                signature = self.signature(self.part(key, number, upload_id))
                query = urlencode({"partNumber": number, "uploadId": upload_id, "signature": signature})
                part["upload_url"] = f"{base}{LOCAL_S3_PATH}{quote(key)}?{query}"
            return json.dumps(doc).encode()
        return data


def make_handler(cloud: LocalCloud, api_key: str | None, access_log: bool = True):
    signer = UploadSigner()

    class Handler(BaseHTTPRequestHandler):
        server_version = "serverless-ml-local"
        protocol_version = "HTTP/1.1"

        timeout = BODY_TIMEOUT_SECONDS  # socket timeout: a body declared but never sent ends in a 400

        def _body(self) -> bytes | None:
            """The request body, or None after answering 400 for a Content-Length the body does not match."""
            declared = self.headers.get("Content-Length") or "0"
            try:
                length = int(declared)
                body = self.rfile.read(length) if length > 0 else b""
            except (ValueError, TimeoutError):
                length, body = -1, b""
            if length < 0 or len(body) < length:
                self.close_connection = True
                message = f"the request body does not match its Content-Length ({declared!r})"
                self._send(400, {"Content-Type": "application/json"}, json.dumps({"message": message}).encode())
                return None
            return body

        def _serve(self) -> None:
            url = urlsplit(self.path)
            body = self._body()
            if body is None:
                return
            if url.path.startswith(LOCAL_S3_PATH):  # a presigned upload or download, rewritten to this server
                key = unquote(url.path[len(LOCAL_S3_PATH) :])
                query = dict(parse_qsl(url.query))
                if self.command == "GET":
                    self._download(key, query.get("signature", ""))
                    return
                if self.command != "PUT":
                    self._send(405, {}, b"")
                    return
                number, upload_id = query.get("partNumber"), query.get("uploadId")
                signed = key if number is None or upload_id is None else signer.part(key, number, upload_id)
                if not signer.valid(signed, query.get("signature", "")):
                    message = "this upload URL is not signed for this key: POST /datasets gives one that is"
                    self._send(403, {"Content-Type": "application/json"}, json.dumps({"message": message}).encode())
                    return
                if number is not None and upload_id is not None:  # a part: no object (and no event) until complete
                    etag = cloud.s3.upload_part(
                        Bucket=cloud.stack.bucket, Key=key, UploadId=upload_id, PartNumber=int(number), Body=body
                    )["ETag"]
                    self._send(200, {"ETag": etag}, b"")
                    return
                cloud.object_created(key, body)
                self._send(200, {}, b"")
                return
            headers = {k: v for k, v in self.headers.items()}
            if api_key is not None and self.headers.get("x-api-key") != api_key:
                self._send(403, {"Content-Type": "application/json"}, json.dumps({"message": "Forbidden"}).encode())
                return
            resp = cloud.request(
                self.command,
                url.path,
                body or None,
                headers=headers,
                query=dict(parse_qsl(url.query, keep_blank_values=True)),  # as API Gateway: `?a=` is {"a": ""}
            )
            out_headers = dict(resp.get("headers") or {})
            for key, values in (resp.get("multiValueHeaders") or {}).items():
                out_headers[key] = ", ".join(values)
            raw = resp.get("body") or ""
            data = base64.b64decode(raw) if resp.get("isBase64Encoded") else raw.encode()
            data = signer.rewrite(data, f"http://{self.headers.get('Host', 'localhost')}")
            self._send(int(resp["statusCode"]), out_headers, data)

        def _download(self, key: str, signature: str) -> None:
            """A presigned GET of a batch job's output or a model version's ONNX graph: the object's bytes, if the
            URL was signed for it."""
            if not signer.valid(signer.download(key), signature):
                message = (
                    "this download URL is not signed for this key: GET /batch-jobs/{id}/output "
                    "or GET /models/{name}/versions/{version}/onnx gives one that is"
                )
                self._send(403, {"Content-Type": "application/json"}, json.dumps({"message": message}).encode())
                return
            body = cloud.s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read()
            kind = "application/octet-stream" if key.endswith(".onnx") else "application/x-ndjson"
            self._send(200, {"Content-Type": kind}, body)

        def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in ("content-length", "connection"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def __getattr__(self, name: str):
            # every method reaches the router: one the template does not declare gets API Gateway's 403
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

        def log_message(self, fmt: str, *args) -> None:
            if access_log:
                sys.stderr.write(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n")

    return Handler


class LocalApi:
    """The local cloud plus an HTTP server in a background thread (used by `make local` and tests)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 3000,
        api_key: str | None = LOCAL_API_KEY,
        log_level: str = "WARNING",
        access_log: bool = True,
        faults: FaultInjector | None = None,
    ):
        self.cloud = LocalCloud(local_stack(overrides={"LogLevel": log_level}), hook=faults)
        self.host, self.port = host, port
        self.api_key = api_key if self.cloud.stack.api_key_required else None
        self.access_log = access_log
        self.httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> LocalApi:
        self.cloud.__enter__()
        self.httpd = ThreadingHTTPServer(
            (self.host, self.port), make_handler(self.cloud, self.api_key, self.access_log)
        )
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
        self.cloud.__exit__(*exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--api-key", default=LOCAL_API_KEY, help="key clients send as x-api-key")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--faults", help="JSON fault settings per function (see mllocal.faults)")
    parser.add_argument("--fault-seed", type=int, default=0)
    args = parser.parse_args(argv)
    faults = FaultInjector.from_file(args.faults, args.fault_seed) if args.faults else None
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalApi(args.host, args.port, args.api_key, args.log_level, faults=faults) as api:
        print(f"serving the API at {api.url}", flush=True)
        if api.api_key:
            print(f"local API key (x-api-key): {api.api_key}", flush=True)
        print("routes (from template.yaml):", flush=True)
        for spec in api.cloud.stack.functions.values():
            for method, path in spec.api_routes:
                print(f"  {method:6} {path:40} -> {spec.logical_id}", flush=True)
        print("Ctrl-C to stop", flush=True)
        stop.wait()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
