"""Protocomm over HTTP: the SoftAP transport (``protocomm_httpd``) on a loopback port.

Every endpoint is ``POST /<name>`` with a raw body of 1..4096 bytes; the answer is a 200 with
the raw response. Which security session a request belongs to follows the cookie rules of
``HttpSessions``. A handler failure closes the socket without an HTTP response, which is how
Espressif's clients learn that a handshake was refused.

The bytes on the wire are esp_http_server's (``httpd_resp_send``, ESP-IDF v5.5): the status
line with its reason phrase, ``Content-Type``, ``Content-Length``, then the handler's headers
(``Set-Cookie``) in that spelling, no ``Connection`` or ``Date``. An idle connection is never
timed out (httpd's ``select`` has no timeout); the 5 s receive timeout applies only once a
request has begun, and then ends it with 408. An unknown URI (404) or method (405) is answered
with httpd's own text and the socket is closed, as ``httpd_req_handle_err`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import h11

from jumpstart.idf.log import EspLog
from jumpstart.idf.protocomm.protocomm import Protocomm
from jumpstart.idf.protocomm.security import SessionError

__all__ = ["MAX_BODY", "HttpSessions", "ProtocommHttpd"]

TAG = "protocomm_httpd"
# protocomm_httpd refuses Content-Length 0 and anything over its 4096-byte receive buffer.
MAX_BODY = 4096
# PROTOCOMM_HTTPD_DEFAULT_CONFIG: one open socket; a new one purges the least recently used.
MAX_OPEN_SOCKETS = 1
READ_CHUNK = 8192
# HTTPD_DEFAULT_CONFIG's recv_wait_timeout: a request that has begun must go on arriving.
RECV_WAIT_TIMEOUT_S = 5.0
# httpd_resp_send_err's texts (esp_http_server/src/httpd_txrx.c).
NOT_FOUND = (404, "Not Found", b"Nothing matches the given URI")
METHOD_NOT_ALLOWED = (405, "Method Not Allowed", b"Specified method is invalid for this resource")
REQUEST_TIMEOUT = (408, "Request Timeout", b"Server closed this connection")
HTTPD_TYPE_TEXT = b"text/html"  # the default Content-Type of every response


def response_bytes(
    status: int, reason: str, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> bytes:
    """A response as ``httpd_resp_send`` writes it."""
    head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
        status,
        reason.encode(),
        HTTPD_TYPE_TEXT,
        len(body),
    )
    for name, value in headers or []:
        head += name + b": " + value + b"\r\n"
    return head + b"\r\n" + body


@dataclass(frozen=True, slots=True)
class SessionChoice:
    session_id: int
    set_cookie: str | None
    """``session=<id>`` for the first response of a new session, else None."""


class HttpSessions:
    """Which protocomm session an HTTP request belongs to (``common_post_handler``).

    1. A ``Cookie`` header exactly ``session=<current id>``: that session, and from then on the
       socket no longer identifies it.
    2. No ``Cookie`` header, on the socket that opened the current session: that session.
    3. Anything else starts a new session with a fresh random 32-bit id, replacing the last.
    """

    def __init__(self, protocomm: Protocomm, random: Callable[[], int] | None = None) -> None:
        self.protocomm = protocomm
        self._random = random or (lambda: secrets.randbits(32))
        self.current: int | None = None
        self._owner_socket: int | None = None
        self._by_socket = True

    def resolve(self, socket_id: int, cookie: str | None) -> SessionChoice:
        if self.current is not None:
            if cookie is not None and cookie == f"session={self.current}":
                self._by_socket = False
                return SessionChoice(self.current, None)
            if cookie is None and self._by_socket and socket_id == self._owner_socket:
                return SessionChoice(self.current, None)
        session_id = self._random()
        if self.current is not None:
            self.protocomm.close_session(self.current)
        self.protocomm.open_session(session_id)
        self.current, self._owner_socket, self._by_socket = session_id, socket_id, True
        return SessionChoice(session_id, f"session={session_id}")

    def close(self) -> None:
        if self.current is not None:
            self.protocomm.close_session(self.current)
        self.current = None


class _RefusedError(Exception):
    """Close the socket without answering."""


class _AnsweredError(Exception):
    """Close the socket after sending ``response`` (httpd's own errors)."""

    def __init__(self, response: bytes, why: str) -> None:
        super().__init__(why)
        self.response = response


class ProtocommHttpd:
    """``protocomm_httpd_start``: serve ``protocomm`` on ``host:port`` (0: any free port)."""

    def __init__(
        self,
        protocomm: Protocomm,
        log: EspLog,
        host: str = "127.0.0.1",
        port: int = 0,
        max_open_sockets: int = MAX_OPEN_SOCKETS,
    ) -> None:
        self.protocomm = protocomm
        self.sessions = HttpSessions(protocomm)
        self.log = log
        self.host = host
        self.port = port
        self.max_open_sockets = max_open_sockets
        self._server: asyncio.Server | None = None
        self._sockets: OrderedDict[int, asyncio.StreamWriter] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_socket = 0

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.log.i(TAG, f"Started HTTP server on {self.endpoint}")

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._sockets.values()):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._server.wait_closed()
        self._server = None
        self.sessions.close()
        self.log.i(TAG, "HTTP server stopped")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        socket_id = self._next_socket
        self._next_socket += 1
        while len(self._sockets) >= self.max_open_sockets:
            _, oldest = self._sockets.popitem(last=False)
            oldest.close()
        self._sockets[socket_id] = writer
        try:
            await self._exchanges(socket_id, reader, writer)
        except _AnsweredError as err:
            self.log.d(TAG, f"closing socket {socket_id} after an error response: {err}")
            with contextlib.suppress(ConnectionError):
                writer.write(err.response)
                await writer.drain()
        except (_RefusedError, h11.RemoteProtocolError, ConnectionError) as err:
            self.log.d(TAG, f"closing socket {socket_id}: {err}")
        finally:
            self._tasks.discard(task)
            self._sockets.pop(socket_id, None)
            writer.close()

    async def _exchanges(
        self, socket_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
        while True:
            request, body = await self._receive(conn, reader)
            if request is None:
                return
            response = self._respond(socket_id, request, body)
            # h11 keeps the connection's state; the bytes are httpd's own (response_bytes).
            conn.send(
                h11.Response(status_code=200, headers=[("Content-Length", str(len(response[1])))])
            )
            conn.send(h11.Data(data=response[1]))
            conn.send(h11.EndOfMessage())
            writer.write(response[0])
            await writer.drain()
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
            self._sockets.move_to_end(socket_id)

    async def _receive(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        begun = bool(conn.trailing_data[0])  # pipelined bytes of this request came already
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await self._read(reader, begun)
                begun = begun or bool(data)
                conn.receive_data(data)
                if not data and request is None:
                    return None, b""
                continue
            if isinstance(event, h11.ConnectionClosed):
                return None, b""
            if isinstance(event, h11.Request):
                request = event
                length = _content_length(event)
                if event.method == b"POST" and (length is None or not 1 <= length <= MAX_BODY):
                    raise _RefusedError(f"Content-Length {length} outside 1..{MAX_BODY}")
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise _RefusedError("body over 4096 bytes")
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return request, bytes(body)

    @staticmethod
    async def _read(reader: asyncio.StreamReader, begun: bool) -> bytes:
        """The next bytes: waiting as long as it takes between requests, at most
        RECV_WAIT_TIMEOUT_S once a request has begun (then 408 and close)."""
        if not begun:
            return await reader.read(READ_CHUNK)
        try:
            # asyncio.timeout: wait_for (3.11) may swallow the cancellation of a restart.
            async with asyncio.timeout(RECV_WAIT_TIMEOUT_S):
                return await reader.read(READ_CHUNK)
        except TimeoutError:
            raise _AnsweredError(response_bytes(*REQUEST_TIMEOUT), "request timed out") from None

    def _respond(self, socket_id: int, request: h11.Request, body: bytes) -> tuple[bytes, bytes]:
        """The response's bytes and its body."""
        name = request.target.decode("latin-1").lstrip("/")
        if name not in self.protocomm.endpoints:
            raise _AnsweredError(response_bytes(*NOT_FOUND), f"no URI /{name}")
        if request.method != b"POST":
            raise _AnsweredError(response_bytes(*METHOD_NOT_ALLOWED), f"{request.method!r} /{name}")
        cookies = [value for key, value in request.headers if key == b"cookie"]
        cookie = cookies[0].decode("latin-1") if cookies else None
        choice = self.sessions.resolve(socket_id, cookie)
        try:
            response = self.protocomm.handle(name, choice.session_id, body)
        except SessionError as err:
            self.log.w(TAG, f"/{name}: {err}")
            raise _RefusedError(str(err)) from None
        except Exception as err:  # a handler bug must not take the server down
            self.log.e(TAG, f"/{name}: handler failed: {err!r}")
            raise _RefusedError(repr(err)) from None
        headers = []
        if choice.set_cookie is not None:  # only a new session's first response sets it
            headers.append((b"Set-Cookie", choice.set_cookie.encode()))
        return response_bytes(200, "OK", response, headers), response


def _content_length(request: h11.Request) -> int | None:
    for key, value in request.headers:
        if key == b"content-length":
            return int(value)
    return None
