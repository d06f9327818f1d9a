"""Fetch a file from an HTTPS URL into S3 without holding it in memory, and without letting the URL
turn the function against the network it runs in (SSRF).

Every hop is checked before connecting: the scheme (https only, unless a test allows http), the host
resolved here with ``getaddrinfo`` and *every* address it resolves to checked with ``ipaddress`` (no
private, loopback, link-local - 169.254.169.254 above all -, multicast, reserved or unspecified
address), and the connection is then made to the checked address itself, so a second DNS answer
cannot swap in another (DNS rebinding). Redirects are followed by hand, each hop checked again. The
body streams into an S3 multipart upload one part at a time; the size limit aborts it.

Time is bounded twice: every connect and every read by ``TIMEOUT_SECONDS``, and the whole download (redirects
included) by ``DEADLINE_SECONDS``: at the deadline the socket is shut down, whatever it is waiting for, so a server
that drips bytes cannot hold the function past it.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from mlcore.infra.errors import InvalidInput

MAX_REDIRECTS = 5
MAX_HOST_NAME = 253  # characters of a DNS name (RFC 1035)
CHUNK_BYTES = 1024 * 1024
TIMEOUT_SECONDS = 15.0  # each connect and each read
DEADLINE_SECONDS = 600.0  # the whole download; well within the Ingest function's Timeout in template.yaml

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class UrlPolicy:
    """Where URL ingestion may connect. The defaults allow public HTTPS on port 443 only; ``allow_networks``,
    ``allow_http`` and ``allow_ports`` exist for tests against a local server and are never set by the template."""

    allow_networks: tuple[Network, ...] = ()
    allow_http: bool = False
    allow_ports: tuple[int, ...] = ()  # besides the scheme's own (443, or 80 for http)
    resolver: Callable[[str, int], Iterable[str]] | None = field(default=None, compare=False)

    @classmethod
    def from_settings(cls, networks: str = "", allow_http: bool = False, ports: str = "") -> UrlPolicy:
        try:
            parsed = tuple(ipaddress.ip_network(n.strip()) for n in networks.split(",") if n.strip())
            allowed_ports = tuple(int(p) for p in ports.split(",") if p.strip())
        except ValueError as err:
            raise RuntimeError(f"invalid URL allow-list setting: {err}") from None
        return cls(allow_networks=parsed, allow_http=allow_http, allow_ports=allowed_ports)


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise InvalidInput(f"cannot resolve host {host!r}: {err.strerror}") from None
    return sorted({str(info[4][0]) for info in infos})


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix: the IPv4 address in the last 32 bits


def embedded_ipv4(address: Address) -> Address:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, 6to4 or NAT64), which is where it leads; else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def is_public(address: Address) -> bool:
    address = embedded_ipv4(address)
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def check_host_name(host: str) -> None:
    """An IP address, or a DNS name of at most 253 characters in labels of 1 to 63 (IDNA for non-ASCII)."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        ascii_name = host.encode("idna").decode("ascii")  # refuses empty labels and labels over 63 characters
    except UnicodeError as err:
        raise InvalidInput(f"invalid host name {host!r}: {err}") from None
    if len(ascii_name.rstrip(".")) > MAX_HOST_NAME:
        raise InvalidInput(f"invalid host name: {len(ascii_name)} characters, more than {MAX_HOST_NAME}")


def check_url(url: str, policy: UrlPolicy) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, path with query, the address to connect to) or InvalidInput naming why not."""
    try:
        parts = urlsplit(url)
        declared_port = parts.port  # out of range or not a number: ValueError
    except ValueError as err:  # also an unclosed IPv6 bracket
        raise InvalidInput(f"the URL {url!r} is malformed: {err}") from None
    allowed = ("https", "http") if policy.allow_http else ("https",)
    if parts.scheme not in allowed:
        raise InvalidInput(f"only {' and '.join(allowed)} URLs can be ingested, got {url!r}")
    if not parts.hostname:
        raise InvalidInput(f"the URL {url!r} has no host")
    if parts.username or parts.password:
        raise InvalidInput("URLs with credentials are not accepted")
    check_host_name(parts.hostname)
    default_port = 443 if parts.scheme == "https" else 80
    port = declared_port or default_port
    if port != default_port and port not in policy.allow_ports:
        raise InvalidInput(f"refusing to fetch {url!r}: only port {default_port} is allowed for {parts.scheme} URLs")
    resolver = policy.resolver or _resolve
    addresses = list(resolver(parts.hostname, port))
    if not addresses:
        raise InvalidInput(f"host {parts.hostname!r} has no addresses")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])
        if not is_public(address) and not any(address in net for net in policy.allow_networks):
            raise InvalidInput(
                f"refusing to fetch {parts.hostname!r}: it resolves to {address}, which is not a public address"
            )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path, addresses[0]


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an already checked address, with SNI and certificate checks for the host name."""

    def __init__(self, host: str, address: str, port: int, timeout: float):
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


class Deadline:
    """The end of a download: ``watch`` shuts a socket down when it passes, so a blocked read returns at once."""

    def __init__(self, url: str, seconds: float):
        self.url, self.seconds = url, seconds
        self.at = time.monotonic() + seconds
        self.expired = threading.Event()

    def error(self) -> InvalidInput:
        return InvalidInput(f"the download of {self.url!r} did not finish within {self.seconds:g} seconds")

    def timeout(self) -> float:
        """The timeout of the next connect or read: ``TIMEOUT_SECONDS``, or less near the deadline."""
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise self.error()
        return min(TIMEOUT_SECONDS, remaining)

    def watch(self, sock: socket.socket) -> threading.Timer:
        timer = threading.Timer(max(0.0, self.at - time.monotonic()), self._expire, (sock,))
        timer.daemon = True
        timer.start()
        return timer

    def _expire(self, sock: socket.socket) -> None:
        self.expired.set()
        with contextlib.suppress(OSError):  # already closed
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's: TLS state is left to the reader


def _open(
    url: str, policy: UrlPolicy, deadline: Deadline
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, threading.Timer | None]:
    for _ in range(MAX_REDIRECTS + 1):
        scheme, host, port, path, address = check_url(url, policy)
        timeout = deadline.timeout()
        if scheme == "https":
            conn: http.client.HTTPConnection = _PinnedHTTPSConnection(host, address, port, timeout)
        else:
            conn = http.client.HTTPConnection(address, port, timeout=timeout)
        timer = None
        try:
            conn.connect()
            timer = deadline.watch(conn.sock) if conn.sock is not None else None
            conn.request("GET", path, headers={"Host": host, "User-Agent": "serverless-ml-ingest"})
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            if timer is not None:
                timer.cancel()
            if deadline.expired.is_set():
                raise deadline.error() from None
            raise InvalidInput(f"could not fetch {url!r}: {err}") from None
        if response.status in (301, 302, 303, 307, 308):
            location = response.getheader("Location")
            conn.close()
            if timer is not None:
                timer.cancel()
            if not location:
                raise InvalidInput(f"{url!r} redirected without a Location")
            url = urljoin(url, location)
            continue
        if response.status != 200:
            conn.close()
            if timer is not None:
                timer.cancel()
            raise InvalidInput(f"fetching {url!r} returned HTTP {response.status}")
        return conn, response, timer
    raise InvalidInput(f"more than {MAX_REDIRECTS} redirects")


def stream(url: str, policy: UrlPolicy, max_bytes: int, deadline_seconds: float | None = None) -> Iterable[bytes]:
    """The body in chunks; InvalidInput once it passes ``max_bytes`` (checked as it arrives), a read waits longer
    than ``TIMEOUT_SECONDS`` or the download (redirects included) outlasts ``deadline_seconds``
    (``DEADLINE_SECONDS`` when None)."""
    deadline = Deadline(url, DEADLINE_SECONDS if deadline_seconds is None else deadline_seconds)
    conn, response, timer = _open(url, policy, deadline)
    try:
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise InvalidInput(f"the file is {declared} bytes, over the {max_bytes} byte limit")
        total = 0
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException, ValueError) as err:  # ValueError: closed by the deadline
                if deadline.expired.is_set():
                    raise deadline.error() from None
                if isinstance(err, ValueError):
                    raise
                raise InvalidInput(f"the download of {url!r} failed: {err}") from None
            if deadline.expired.is_set():  # the shutdown can look like the end of the body
                raise deadline.error()
            if not chunk:
                return
            total += len(chunk)
            if total > max_bytes:
                raise InvalidInput(f"the file is over the {max_bytes} byte limit")
            yield chunk
    finally:
        if timer is not None:
            timer.cancel()
        conn.close()
