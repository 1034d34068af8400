"""Outbound HTTP to users' URLs: refuse internal addresses, connect only to the address checked.

A webhook URL is user input that our workers will call, so it must not reach the metadata
service, the database or anything else on our own networks (server-side request forgery).
Checking the name at creation is not enough: DNS can change afterwards, and a name checked and
then resolved again by the HTTP client can answer differently the second time (DNS rebinding).
So every delivery resolves the name once, checks every address it got, and connects to a
checked address itself, sending the original name as the Host header and as the TLS server
name (SNI, and the name the certificate is verified against).

This uses the standard library's `http.client` rather than a third-party client: its
connection classes take the socket we opened to the checked address (we override `connect`),
they never follow redirects, and they need no new dependency. `requests` would need a custom
transport adapter that re-implements connection pooling internals to do the same.
"""

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from django.conf import settings

ALLOWED_SCHEMES = ("http", "https")
# Cloud metadata services (AWS, GCP, Azure: 169.254.169.254; AWS IPv6; Alibaba; Oracle): refused
# even when private networks are allowed, because reaching them from a worker leaks credentials.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192", "169.254.170.2")
)
NAT64_NETWORKS = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
MAX_RESPONSE_BYTES = 2048  # what is kept of a receiver's answer, for the delivery log
USER_AGENT = "ai-tasks-webhooks/1.0"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeURL(ValueError):
    """The URL may not be called: bad scheme, unresolvable, or an internal address."""


class UnresolvableHost(UnsafeURL):
    """The host has no address right now (may be temporary)."""


@dataclass(frozen=True)
class Target:
    """A URL taken apart, with the addresses its host resolved to (all checked)."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: str


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if any(ip in network for network in NAT64_NETWORKS):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_refusal(address: str, *, allow_private: bool) -> str | None:
    """Why `address` may not be called, or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone index
    embedded = _embedded_ipv4(ip)
    if ip in METADATA_ADDRESSES or (embedded is not None and embedded in METADATA_ADDRESSES):
        return f"{ip} is a cloud metadata address"
    if allow_private:
        return None
    if embedded is not None:
        return address_refusal(str(embedded), allow_private=False)
    for kind in ("loopback", "private", "link_local", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{kind}"):
            return f"{ip} is a {kind.replace('_', '-')} address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return f"{ip} is a site-local address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


def url_parse(url: str) -> tuple[str, str, int, str]:
    """Scheme, host, port and path of an http(s) URL; UnsafeURL for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"The URL could not be read: {exc}.") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeURL(f"Only http and https URLs are allowed, not {scheme or 'a URL without a scheme'}.")
    if not parts.hostname:
        raise UnsafeURL("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("Credentials in the URL are not supported; use the signature to authenticate us.")
    try:  # the Host header and TLS want the ASCII (IDNA) form of an international name
        host = parts.hostname.encode("idna").decode("ascii") if not parts.hostname.isascii() else parts.hostname
    except UnicodeError:
        raise UnsafeURL(f"The host {parts.hostname!r} is not a valid name.") from None
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    # Percent-encode what HTTP does not allow raw in a request line (spaces, non-ASCII).
    path = quote(path, safe="/?&=;:@+$,!~*'()%[]")
    return scheme, host, port or (443 if scheme == "https" else 80), path


def url_resolve(url: str, *, allow_private: bool | None = None) -> Target:
    """Resolve the URL's host once and check every address; UnsafeURL if any is refused.

    Every address must pass, not just one: otherwise a name with one public and one internal
    address could be checked against the first and connected to the second.
    """
    if allow_private is None:
        allow_private = settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS
    scheme, host, port, path = url_parse(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableHost(f"The host {host!r} could not be resolved ({exc}).") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UnresolvableHost(f"The host {host!r} has no address.")
    for address in addresses:
        reason = address_refusal(address, allow_private=allow_private)
        if reason:
            shown = host if host == address else f"{host!r} resolves to {address}, which"
            raise UnsafeURL(
                f"Refused: {shown} is not allowed for webhooks ({reason}). Use a public address of your own server."
            )
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=addresses)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to `address`, whatever `host` (used for the Host header) resolves to."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """TLS to `address`, with SNI and certificate verification for `host`."""

    default_port = http.client.HTTPS_PORT

    def __init__(self, host: str, port: int, *, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, address=address, timeout=timeout)
        self.context = context

    def connect(self) -> None:
        super().connect()
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)


def _connection(
    target: Target, address: str, timeout: float, ssl_context: ssl.SSLContext | None
) -> http.client.HTTPConnection:
    if target.scheme == "https":
        context = ssl_context or ssl.create_default_context()
        return _PinnedHTTPSConnection(target.host, target.port, address=address, timeout=timeout, context=context)
    return _PinnedHTTPConnection(target.host, target.port, address=address, timeout=timeout)


def _connect(
    target: Target, addresses: tuple[str, ...], timeout: float, ssl_context: ssl.SSLContext | None
) -> http.client.HTTPConnection:
    """A connection to the first of `addresses` that accepts one (as a browser tries each)."""
    last_error: OSError = OSError("no address to connect to")
    for address in addresses:
        connection = _connection(target, address, timeout, ssl_context)
        try:
            connection.connect()
            return connection
        except ssl.SSLError:  # the server answered, but not as the name we asked for
            connection.close()
            raise
        except OSError as exc:
            connection.close()
            last_error = exc
    raise last_error


def post(
    target: Target,
    *,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    address: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Answer:
    """POST `body` to `target`, connected to one of its checked addresses (or to `address`).

    `timeout` bounds the connection and each read, and the whole answer is read within twice
    that, so a receiver that trickles its answer cannot hold a worker. Redirects are returned
    as they are, never followed. The request is sent once: only connecting is tried per address.
    """
    if address is not None and address not in target.addresses:
        raise UnsafeURL(f"{address} is not one of the checked addresses of {target.host}.")
    deadline = time.monotonic() + 2 * timeout
    connection = _connect(target, (address,) if address else target.addresses, timeout, ssl_context)
    try:
        connection.request("POST", target.path, body=body, headers={"User-Agent": USER_AGENT, **headers})
        response = connection.getresponse()
        chunks: list[bytes] = []
        received = 0
        while received < MAX_RESPONSE_BYTES and time.monotonic() < deadline:
            chunk = response.read1(MAX_RESPONSE_BYTES - received)
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
        return Answer(
            status=response.status,
            headers={name.lower(): value for name, value in response.getheaders()},
            body=b"".join(chunks).decode("utf-8", errors="replace"),
        )
    finally:
        connection.close()
