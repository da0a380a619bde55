"""Protocomm over HTTP: the SoftAP transport (``protocomm_httpd``) on a loopback port.

Every endpoint is ``POST /<name>`` with a raw body of 1..4096 bytes; the answer is a 200 with
the raw response. Which security session a request belongs to follows the cookie rules of
``HttpSessions``. Any failure closes the socket without an HTTP response, which is how Espressif's
clients learn that a handshake was refused.
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
# An idle keep-alive socket is closed after this long (esp_http_server's recv timeout order).
IDLE_TIMEOUT_S = 30.0


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
        except (_RefusedError, h11.RemoteProtocolError, ConnectionError, TimeoutError) as err:
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
            status, headers, payload = self._respond(socket_id, request, body)
            writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
            writer.write(conn.send(h11.Data(data=payload)))
            writer.write(conn.send(h11.EndOfMessage()))
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
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                # asyncio.timeout: wait_for (3.11) may swallow the cancellation of a restart.
                async with asyncio.timeout(IDLE_TIMEOUT_S):
                    data = await reader.read(READ_CHUNK)
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

    def _respond(
        self, socket_id: int, request: h11.Request, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        name = request.target.decode("latin-1").lstrip("/")
        if name not in self.protocomm.endpoints:
            return 404, _plain(b"This URI does not exist"), b"This URI does not exist"
        if request.method != b"POST":
            return (
                405,
                _plain(b"Request method for this URI is not handled by server"),
                (b"Request method for this URI is not handled by server"),
            )
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
        headers = [(b"content-type", b"text/html"), (b"content-length", b"%d" % len(response))]
        if choice.set_cookie is not None:
            headers.append((b"set-cookie", choice.set_cookie.encode()))
        return 200, headers, response


def _plain(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"text/html"), (b"content-length", b"%d" % len(body))]


def _content_length(request: h11.Request) -> int | None:
    for key, value in request.headers:
        if key == b"content-length":
            return int(value)
    return None
