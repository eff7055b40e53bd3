"""H1Upstream against raw TCP servers that answer exactly what each test needs."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.proxy.h1 import H1Upstream, _origin, _split
from gateway.proxy.upstream import (
    UpstreamBusy,
    UpstreamConnectError,
    UpstreamFailed,
    UpstreamTimeout,
)
from tests.support.redis_server import unused_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A TCP server on loopback; counts the connections it accepted."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """Head and body of one request (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    if b"content-length:" in lower:
        length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
        return head, await reader.readexactly(length)
    if b"transfer-encoding: chunked" in lower:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return head, body
            body += chunk[:-2]
    return head, b""


def keep_alive(body: bytes = b"hello") -> Handler:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
            await writer.drain()
    return serve


@pytest.fixture
async def upstream() -> AsyncIterator[H1Upstream]:
    client = H1Upstream()
    yield client
    await client.aclose()


async def get(client: H1Upstream, url: str, method: str = "GET",
              body: list[bytes] | None = None,
              headers: list[tuple[str, str]] | None = None) -> tuple[int, bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in body or []:
            yield chunk

    resp = await client.send(method, url, headers or [], chunks() if body is not None else None,
                             wait=2.0)
    try:
        return resp.status, await resp.read()
    finally:
        await resp.close()


async def test_connections_are_kept_alive_and_reused(upstream: H1Upstream) -> None:
    server = Server(keep_alive())
    async with server as base:
        for _ in range(5):
            assert await get(upstream, base + "/x") == (200, b"hello")
    assert server.connections == 1


async def test_a_connection_the_upstream_closed_while_idle_is_replaced(
        upstream: H1Upstream) -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()  # then closes, without saying so in the answer

    server = Server(once)
    async with server as base:
        assert await get(upstream, base + "/") == (200, b"ok")
        await asyncio.sleep(0.05)  # the close reaches the idle connection
        assert await get(upstream, base + "/") == (200, b"ok")
    assert server.connections == 2


async def test_chunked_answers_and_uploads(upstream: H1Upstream) -> None:
    seen: list[bytes] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, body = await read_request(reader)
        seen.append(head)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (body[:3], body[3:]):
            writer.write(b"%x\r\n%b\r\n" % (len(part), part))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with Server(echo) as base:
        assert await get(upstream, base + "/up", "POST", body=[b"abc", b"", b"defg"]) == (
            200, b"abcdefg")
    assert b"transfer-encoding: chunked" in seen[0].lower()


async def test_a_post_without_body_says_so_and_headers_pass(upstream: H1Upstream) -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        seen.append(head)
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    async with Server(record) as base:
        status, body = await get(upstream, base + "/p?q=1", "POST",
                                 headers=[("X-Roam-Sub", "c-0001"), ("host", "forged")])
    assert (status, body) == (204, b"")
    head = seen[0].decode()
    assert head.startswith("POST /p?q=1 HTTP/1.1\r\n")
    assert f"Host: {base.removeprefix('http://')}\r\n" in head
    assert "forged" not in head
    assert "X-Roam-Sub: c-0001\r\n" in head
    assert "Content-Length: 0\r\n" in head


async def test_informational_answers_are_skipped(upstream: H1Upstream) -> None:
    async def hints(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmain")
        await writer.drain()

    async with Server(hints) as base:
        assert await get(upstream, base + "/") == (200, b"main")


async def test_head_ends_with_the_head(upstream: H1Upstream) -> None:
    async def head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.5)

    async with Server(head) as base:
        assert await get(upstream, base + "/", "HEAD") == (200, b"")


async def test_errors_come_out_as_upstream_errors(upstream: H1Upstream) -> None:
    with pytest.raises(UpstreamConnectError):
        await get(upstream, f"http://127.0.0.1:{unused_port()}/")

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()

    async with Server(garbage) as base:
        with pytest.raises(UpstreamFailed):
            await get(upstream, base + "/")

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with Server(silent) as base:
        with pytest.raises(UpstreamTimeout):
            await upstream.send("GET", base + "/", [], None, wait=0.3)

    # an answer with a length, or chunked, that the close cuts short is broken (only one
    # with neither ends at the close)
    for answer in (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part",
                   b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\n"):
        async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      answer: bytes = answer) -> None:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()

        async with Server(cut) as base:
            resp = await upstream.send("GET", base + "/", [], None, wait=2.0)
            with pytest.raises(UpstreamFailed):
                await resp.read()
            await resp.close()


@pytest.mark.parametrize("header", [
    ("X-A", "1\r\nX-Injected: 2"), ("X-A", "1\nX-Injected: 2"), ("X-A", "1\rX-Injected: 2"),
    ("X-A", "1\0"), ("X-A\r\nX-Injected", "2"), ("X-A\n", "1"),
])
async def test_a_line_break_in_a_header_is_refused(upstream: H1Upstream,
                                                  header: tuple[str, str]) -> None:
    server = Server(keep_alive())
    async with server as base:
        with pytest.raises(UpstreamFailed):
            await get(upstream, base + "/", headers=[("X-Ok", "fine"), header])
        assert await get(upstream, base + "/", headers=[("X-Ok", "fine")]) == (200, b"hello")
    assert server.connections == 1  # nothing was sent for the refused one


@pytest.mark.parametrize(("url", "origin", "target"), [
    ("http://h:8080/a/b?c=d", "http://h:8080", "/a/b?c=d"),
    ("http://h:8080", "http://h:8080", "/"),
    ("http://h?x=1", "http://h", "/?x=1"),
    ("https://[::1]:8443/p", "https://[::1]:8443", "/p"),
])
def test_urls_split_into_origin_and_target(url: str, origin: str, target: str) -> None:
    assert _split(url) == (origin, target)


def test_origins_give_the_pool_key_and_host_header() -> None:
    assert _origin("http://h:8080") == (("http", "h", 8080), "h:8080")
    assert _origin("https://Gjj.Example") == (("https", "gjj.example", 443), "Gjj.Example")
    with pytest.raises(UpstreamConnectError):
        _origin("ftp://h")


async def test_an_answer_with_connection_close_is_not_reused(upstream: H1Upstream) -> None:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    server = Server(closing)
    async with server as base:
        for _ in range(3):
            assert await get(upstream, base + "/") == (200, b"ok")
    assert server.connections == 3


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files (the upstream's)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "roam-test-upstream")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_https_upstreams_are_verified(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    server = await asyncio.start_server(
        lambda r, w: keep_alive(b"secure")(r, w), "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    trusting = H1Upstream(tls=ssl.create_default_context(cafile=str(cert)))
    default = H1Upstream()
    try:
        for _ in range(2):  # the second one on the kept-alive TLS connection
            assert await get(trusting, f"https://127.0.0.1:{port}/") == (200, b"secure")
        with pytest.raises(UpstreamConnectError):  # an unknown issuer is refused
            await get(default, f"https://127.0.0.1:{port}/")
    finally:
        await trusting.aclose()
        await default.aclose()
        server.close()


async def test_requests_of_one_loop_turn_are_written_together(upstream: H1Upstream) -> None:
    """Body-less requests are written at the end of the loop turn, all of them: eight at
    once get eight answers on eight connections."""
    server = Server(keep_alive())
    async with server as base:
        answers = await asyncio.gather(*(get(upstream, f"{base}/{n}") for n in range(8)))
    assert answers == [(200, b"hello")] * 8
    assert server.connections == 8


async def test_a_cancelled_request_leaves_the_pool_usable(upstream: H1Upstream) -> None:
    """Cancelled (the client went away) while its write waits for the turn's end: its
    connection is closed, never handed to the next request with an answer pending."""
    heads: list[bytes] = []

    async def recording(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await read_request(reader)
            heads.append(head.split(b"\r\n")[0])
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    server = Server(recording)
    async with server as base:
        assert await get(upstream, base + "/first") == (200, b"ok")  # a pooled connection
        task = asyncio.create_task(upstream.send("GET", base + "/cancelled", [], None, wait=2))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await get(upstream, base + "/after") == (200, b"ok")
    assert heads[0] == b"GET /first HTTP/1.1"
    assert heads[-1] == b"GET /after HTTP/1.1"
    assert server.connections == 2  # the cancelled one's connection was not reused


# -- answers delimited by the close; bytes nobody asked for; connections per origin --------

@pytest.mark.parametrize("head", [
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n",
])
async def test_an_answer_delimited_by_the_close_is_whole(upstream: H1Upstream,
                                                        head: bytes) -> None:
    """No Content-Length, not chunked: the body is everything until the upstream closes
    (RFC 9112 §6.3), read whole or streamed, and the connection is not reused."""
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head + b"first part, ")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"second part")
        await writer.drain()  # then the server closes: the end of the body

    server = Server(until_close)
    async with server as base:
        assert await get(upstream, base + "/") == (200, b"first part, second part")
        resp = await upstream.send("GET", base + "/", [], None, wait=2.0)
        assert b"".join([chunk async for chunk in resp.body]) == b"first part, second part"
        await resp.close()
    assert server.connections == 2


@pytest.mark.parametrize("extra", [
    b"GARBAGE",  # not HTTP
    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",  # an answer nobody asked for
])
async def test_bytes_after_an_answer_close_the_connection(upstream: H1Upstream,
                                                          extra: bytes) -> None:
    """They belong neither to that answer nor to the next request's."""
    async def extra_bytes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + extra)
            await writer.drain()

    server = Server(extra_bytes)
    async with server as base:
        assert await get(upstream, base + "/") == (200, b"ok")  # nothing appended
        assert await get(upstream, base + "/") == (200, b"ok")  # on a new connection
    assert server.connections == 2


async def test_an_answer_arriving_while_idle_closes_the_connection(upstream: H1Upstream) -> None:
    """A second answer sent later, while the connection waits in the pool, is never handed
    to the next request: the connection is closed when it arrives."""
    async def twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        while True:
            await read_request(reader)
            n += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nreal%d" % n)
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!")
            await writer.drain()

    server = Server(twice)
    async with server as base:
        assert await get(upstream, base + "/") == (200, b"real1")
        await asyncio.sleep(0.05)  # the unasked answer reaches the idle connection
        assert await get(upstream, base + "/") == (200, b"real1")  # a new connection's first
    assert server.connections == 2


async def test_no_more_connections_than_the_cap_under_load() -> None:
    """N allowed, 3 N at once: every request is answered, over no more than N
    connections, the others waiting their turn."""
    cap = 4
    open_now = 0
    most = 0

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        try:
            while True:
                await read_request(reader)
                await asyncio.sleep(0.02)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        finally:
            open_now -= 1

    client = H1Upstream(max_connections=cap)
    server = Server(slow)
    try:
        async with server as base:
            for _ in range(2):
                answers = await asyncio.gather(*(get(client, f"{base}/{n}")
                                                 for n in range(3 * cap)))
                assert answers == [(200, b"ok")] * (3 * cap)
                posts = await asyncio.gather(*(get(client, f"{base}/{n}", "POST", body=[b"x"])
                                               for n in range(3 * cap)))
                assert posts == [(200, b"ok")] * (3 * cap)
                assert client.open_connections(base) <= cap
    finally:
        await client.aclose()
    assert most <= cap
    assert server.connections >= cap  # they were used (posts take new ones)


async def test_all_connections_busy_past_the_wait_is_busy() -> None:
    release = asyncio.Event()

    async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    client = H1Upstream(max_connections=1)
    server = Server(held)
    try:
        async with server as base:
            first = asyncio.create_task(client.send("GET", base + "/", [], None, wait=5.0))
            await asyncio.sleep(0.05)  # the first holds the only connection
            with pytest.raises(UpstreamBusy):
                await client.send("GET", base + "/", [], None, wait=0.2)
            release.set()
            resp = await first
            assert (resp.status, await resp.read()) == (200, b"ok")
            await resp.close()
    finally:
        await client.aclose()
    assert server.connections == 1
