"""protocomm_httpd on the wire: esp_http_server's exact bytes, its error answers and its
timeouts (ESP-IDF v5.5 ``httpd_txrx.c``, ``httpd_main.c``, ``protocomm_httpd.c``)."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable

import pytest

from jumpstart.idf.protocomm.httpd import RECV_WAIT_TIMEOUT_S, response_bytes
from tests.idf.wifi_prov.prov_helpers import running_outlet

PROTO_VER = b"POST /proto-ver HTTP/1.1\r\nHost: 192.168.4.1\r\nContent-Length: 3\r\n\r\n---"
FIRST_RESPONSE = re.compile(
    rb"HTTP/1\.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: (\d+)\r\n"
    rb"Set-Cookie: session=(\d+)\r\n\r\n(.*)",
    re.DOTALL,
)
LATER_RESPONSE = re.compile(
    rb"HTTP/1\.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: (\d+)\r\n\r\n(.*)",
    re.DOTALL,
)


def _connect(endpoint: str) -> socket.socket:
    host, port = endpoint.split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def _read_response(sock: socket.socket) -> bytes:
    """One whole response (by its Content-Length), b"" if the server closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head)[1])  # type: ignore[index]
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def _closed(sock: socket.socket, wait: float = 0.5) -> bool:
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def test_response_bytes_are_httpd_resp_sends() -> None:
    assert response_bytes(200, "OK", b"abc", [(b"Set-Cookie", b"session=42")]) == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 3\r\n"
        b"Set-Cookie: session=42\r\n\r\nabc"
    )


def test_exact_bytes_of_a_session_and_of_httpds_errors() -> None:
    async def main() -> None:
        async with running_outlet(prov_security=1) as outlet:
            endpoint = outlet.endpoint()

            def exchanges() -> None:
                with _connect(endpoint) as sock:
                    sock.sendall(PROTO_VER)
                    first = FIRST_RESPONSE.fullmatch(_read_response(sock))
                    assert first is not None
                    assert int(first[1]) == len(first[3])
                    assert b'"prov"' in first[3]  # cJSON's formatted proto-ver answer
                    # The same socket, no cookie: the same session, and no Set-Cookie again.
                    sock.sendall(PROTO_VER)
                    assert LATER_RESPONSE.fullmatch(_read_response(sock)) is not None
                for request, answer in (
                    (
                        b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na",
                        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n"
                        b"Content-Length: 29\r\n\r\nNothing matches the given URI",
                    ),
                    (
                        b"GET /proto-ver HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/html\r\n"
                        b"Content-Length: 45\r\n\r\nSpecified method is invalid for this resource",
                    ),
                ):
                    with _connect(endpoint) as sock:
                        sock.sendall(request)
                        assert _read_response(sock) == answer
                        assert _closed(sock)  # httpd_req_handle_err closes the socket

            await asyncio.to_thread(exchanges)

    asyncio.run(main())


def _jump_clock(loop: asyncio.AbstractEventLoop) -> Callable[[float], None]:
    """Make ``loop`` believe ``seconds`` passed (its timers fire as if they had)."""
    real = loop.time
    offset = [0.0]
    loop.time = lambda: real() + offset[0]  # type: ignore[method-assign]

    def jump(seconds: float) -> None:
        offset[0] += seconds
        loop.call_soon_threadsafe(lambda: None)  # wake it to look at its timers
        time.sleep(0.3)

    return jump


def test_a_60_s_pause_mid_session_keeps_the_connection() -> None:
    """A person taking a minute at the phone's prompt: httpd never closes an idle socket."""

    async def main() -> None:
        async with running_outlet(prov_security=1) as outlet:
            endpoint = outlet.endpoint()
            jump = _jump_clock(asyncio.get_running_loop())

            def pause() -> None:
                with _connect(endpoint) as sock:
                    sock.sendall(PROTO_VER)
                    assert FIRST_RESPONSE.fullmatch(_read_response(sock)) is not None
                    jump(60.0)
                    assert not _closed(sock)
                    sock.settimeout(5)
                    sock.sendall(PROTO_VER)  # still the same session: no new cookie
                    assert LATER_RESPONSE.fullmatch(_read_response(sock)) is not None

            await asyncio.to_thread(pause)

    asyncio.run(main())


@pytest.mark.parametrize("partial", [b"POST /proto-ver HTT", PROTO_VER[:-1]])
def test_a_request_stalled_midway_gets_408_after_the_receive_timeout(partial: bytes) -> None:
    async def main() -> None:
        async with running_outlet(prov_security=1) as outlet:
            endpoint = outlet.endpoint()
            jump = _jump_clock(asyncio.get_running_loop())

            def stall() -> None:
                with _connect(endpoint) as sock:
                    sock.sendall(partial)
                    time.sleep(0.2)
                    jump(RECV_WAIT_TIMEOUT_S + 1)
                    assert _read_response(sock) == (
                        b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/html\r\n"
                        b"Content-Length: 29\r\n\r\nServer closed this connection"
                    )
                    assert _closed(sock)

            await asyncio.to_thread(stall)

    asyncio.run(main())
