"""Against a real ``vigil serve`` over raw sockets: a body that trickles in gets 408 and its connection closed, and
a declared size the tenant cannot afford is refused before a byte of the body is sent."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import event

from vigil.testing import HOST, ServerProcess, tenant_with_key

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    where: Path = tmp_path_factory.mktemp("vigil-fairness")
    database = str(where / "vigil.db")
    _, key = tenant_with_key(database, "acme", "ingest")
    extra = ["--body-timeout", "1", "--rate-limit-bytes", "3000", "--rate-burst-bytes", "3000"]
    extra += ["--signing-key", str(where / "signing-key"), "--detect", "false", "--checkpoint-interval", "0"]
    with ServerProcess(database, synchronous="NORMAL", rate_limit=0, extra=extra) as server:
        yield server, key


def _request(key: str, length: int, body: bytes = b"") -> bytes:
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    return head.encode() + body


def _read_all(sock: socket.socket, limit: float) -> bytes:
    """Everything the server sends until it closes the connection (or ``limit`` seconds pass)."""
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    return data


def _response(sock: socket.socket) -> bytes:
    """One whole HTTP response (head and Content-Length body) off a kept-alive connection."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(v)
        for k, _, v in (ln.partition(b":") for ln in head.split(b"\r\n"))
        if k.lower() == b"content-length"
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest


def test_a_trickled_body_gets_408_and_the_connection_is_closed(served: tuple[ServerProcess, str]) -> None:
    """A client that sends 10 of 500 declared bytes and then stalls gets 408 after body_timeout (1 s), and the
    server closes the connection instead of waiting on it."""
    server, key = served
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        sock.sendall(_request(key, 500, b'[{"action"'))
        start = time.monotonic()
        answer = _read_all(sock, 10)
        waited = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer and b"connection: close" in answer.lower()
    assert 0.9 <= waited < 8  # closed: recv saw the end of the stream, not the 10 s timeout


def test_a_declared_size_is_refused_before_the_body_is_sent(served: tuple[ServerProcess, str]) -> None:
    """Content-Length over the byte burst is a 413 at once; with the budget spent, a declared size the tenant
    cannot afford is a 429 at once; in both cases the client never sent its body, and the server closes the
    connection rather than read a refused body that a client may send anyway."""
    server, key = served
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        sock.sendall(_request(key, 5000))
        answer = _response(sock)
        assert _read_all(sock, 5) == b""  # closed, not waiting for 5,000 bytes
    assert answer.startswith(b"HTTP/1.1 413") and b"batch_too_large" in answer, answer[:300]
    assert b"connection: close" in answer.lower()
    body = json.dumps([event()] * 12).encode()  # about 2 KB of the 3,000-byte budget
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        sock.sendall(_request(key, len(body), body))
        assert _response(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(_request(key, len(body)))  # the same size again: no body follows
        answer = _response(sock)
        assert _read_all(sock, 5) == b""
    assert answer.startswith(b"HTTP/1.1 429") and b"retry-after" in answer.lower(), answer[:300]
    assert b"connection: close" in answer.lower()
