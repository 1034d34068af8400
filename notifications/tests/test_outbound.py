"""Outbound safety: which addresses are refused, and that a delivery connects where it checked."""

import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from notifications import outbound


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "ff02::1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:10.0.0.1",  # IPv4-mapped
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "240.0.0.1",
    ],
)
def test_internal_addresses_are_refused(address):
    assert outbound.address_refusal(address, allow_private=False)


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert outbound.address_refusal(address, allow_private=False) is None


def test_allowing_private_networks_still_refuses_metadata_addresses():
    assert outbound.address_refusal("127.0.0.1", allow_private=True) is None
    assert outbound.address_refusal("10.0.0.1", allow_private=True) is None
    assert "metadata" in outbound.address_refusal("169.254.169.254", allow_private=True)
    assert "metadata" in outbound.address_refusal("::ffff:169.254.169.254", allow_private=True)


def test_every_address_of_a_name_must_pass():
    with pytest.raises(outbound.UnsafeURL, match=r"resolves to 127\.0\.0\.1"):
        outbound.url_resolve("http://localhost/", allow_private=False)
    assert "127.0.0.1" in outbound.url_resolve("http://localhost:8080/x?y=1", allow_private=True).addresses


def test_delivery_connects_to_the_checked_address_and_never_resolves_the_name_again(receiver):
    # `.invalid` never resolves (RFC 2606): a request that arrives went to the checked address.
    target = outbound.Target(
        scheme="http", host="hook.invalid", port=receiver.port, path="/ok?a=1", addresses=("127.0.0.1",)
    )

    answer = outbound.post(target, body=b"{}", headers={"X-Webhook-Id": "x"}, timeout=2)

    assert answer.status == 200
    [request] = receiver.received("/ok")
    assert request.headers["Host"] == f"hook.invalid:{receiver.port}"
    assert request.path == "/ok?a=1"


def test_an_address_that_was_not_checked_is_refused(receiver):
    target = outbound.Target(scheme="http", host="hook.invalid", port=receiver.port, path="/", addresses=("1.1.1.1",))

    with pytest.raises(outbound.UnsafeURL, match="not one of the checked addresses"):
        outbound.post(target, address="127.0.0.1", body=b"{}", headers={}, timeout=2)
    assert receiver.received() == []


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on 127.0.0.1 whose certificate names only `hook.test`; records the SNI it got."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-days", "1", "-subj", "/CN=hook.test", "-addext", "subjectAltName=DNS:hook.test"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    seen: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: seen.append(name)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], str(cert), seen
    server.shutdown()
    server.server_close()


def test_https_sends_the_name_as_sni_and_verifies_the_certificate_against_it(tls_server):
    port, cert, seen = tls_server
    trusted = ssl.create_default_context(cafile=cert)
    target = outbound.Target(scheme="https", host="hook.test", port=port, path="/", addresses=("127.0.0.1",))

    answer = outbound.post(target, body=b"{}", headers={}, timeout=2, ssl_context=trusted)

    assert answer.status == 204
    assert seen == ["hook.test"]
    # The same certificate does not name the address, so checking against it would fail.
    by_address = outbound.Target(scheme="https", host="127.0.0.1", port=port, path="/", addresses=("127.0.0.1",))
    with pytest.raises(ssl.SSLCertVerificationError):
        outbound.post(by_address, body=b"{}", headers={}, timeout=2, ssl_context=trusted)
