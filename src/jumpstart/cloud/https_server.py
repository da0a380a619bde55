"""The asyncio side shared by the cloud's HTTPS servers (REST API, firmware hosting).

A subclass implements ``handle(reader, writer)`` for one connection, usually a loop over
:func:`requests` answering each with :func:`send_response`; this class tracks connections so
``close()`` ends them. Every refusal is answered: a request the handler refuses before it
can answer in turn (``HttpRefusalError``, e.g. a body over the limit) and a peer that breaks
HTTP (no Host, a bad or duplicate Content-Length: h11's ``RemoteProtocolError``) get a
response with its status and ``Connection: close``; only a peer that goes away or breaks TLS
is closed without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus

import h11

__all__ = [
    "HttpRefusalError",
    "HttpsServer",
    "reason_phrase",
    "receive_request",
    "requests",
    "send_response",
    "server_connection",
]

READ_CHUNK = 64 * 1024
# After a refusal: how long and how much of the client's remaining request is read and dropped.
DRAIN_S = 1.0
DRAIN_LIMIT = 1024 * 1024
IDLE_TIMEOUT_S = 60.0
MAX_HEAD = 16 * 1024  # request line and headers: h11 refuses more (431)


class HttpRefusalError(Exception):
    """A request refused with ``status``; raised where the answer cannot be sent in turn."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def reason_phrase(status: int) -> str:
    """The status line's reason phrase (h11 sends none unless told)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class HttpsServer:
    quiet_errors: tuple[type[BaseException], ...] = (
        h11.LocalProtocolError,
        ConnectionError,
        TimeoutError,
        ssl.SSLError,
    )
    """What ends a connection silently: the peer's fault or its departure."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        self.context = context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; the port (useful when ``port`` is 0)."""
        self._server = await asyncio.start_server(self._serve, host, port, ssl=self.context)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.handle(reader, writer)
        except HttpRefusalError as refusal:
            await self._refuse(reader, writer, refusal.status, refusal)
        except h11.RemoteProtocolError as broken:
            answer = HttpRefusalError(400, str(broken))
            await self._refuse(reader, writer, broken.error_status_hint, answer)
        except self.quiet_errors:
            return
        except asyncio.CancelledError:
            # close() cancels open connections; asyncio's start_server callback would log a
            # cancelled handler task as an error (CPython 3.11 streams.py), so end normally.
            return
        finally:
            self._tasks.discard(task)
            writer.close()

    def refusal_body(self, refusal: HttpRefusalError) -> tuple[list[tuple[str, str]], bytes]:
        """Extra headers and the body of a refusal (plain text here; JSON for the API)."""
        return [("Content-Type", "text/plain")], refusal.message.encode() + b"\n"

    async def _refuse(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        why: HttpRefusalError,
    ) -> None:
        """Answer outside h11's state machine: the connection ends after it anyway. What
        the client is still sending (the rest of a body over the limit) is read and dropped,
        within bounds: closing with unread data would make the kernel send a reset that can
        destroy the answer before the client reads it."""
        headers, body = self.refusal_body(why)
        lines = [f"HTTP/1.1 {status} {reason_phrase(status)}"]
        lines += [f"{name}: {value}" for name, value in headers]
        lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        with contextlib.suppress(*self.quiet_errors):
            writer.write("\r\n".join(lines).encode("latin-1") + body)
            await writer.drain()
            async with asyncio.timeout(DRAIN_S):
                drained = 0
                while drained < DRAIN_LIMIT and (chunk := await reader.read(READ_CHUNK)):
                    drained += len(chunk)


async def receive_request(
    conn: h11.Connection,
    reader: asyncio.StreamReader,
    on_body: Callable[[int], None] | None = None,
) -> tuple[h11.Request | None, bytes]:
    """The next request and its body; (None, b"") when the client closed the connection.

    ``on_body`` sees the body's length as it grows (to refuse oversized bodies early)."""
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await asyncio.wait_for(reader.read(READ_CHUNK), IDLE_TIMEOUT_S)
            conn.receive_data(data)
            if not data and request is None:
                return None, b""
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if on_body is not None:
                on_body(len(body))
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None, b""


async def requests(
    conn: h11.Connection,
    reader: asyncio.StreamReader,
    on_body: Callable[[int], None] | None = None,
) -> AsyncIterator[tuple[h11.Request, bytes]]:
    """Each request of a keep-alive connection with its body, once the previous one was
    answered; ends when the client closes or either side asked to close."""
    while True:
        request, body = await receive_request(conn, reader, on_body)
        if request is None:
            return
        yield request, body
        if conn.our_state is h11.MUST_CLOSE:
            return
        conn.start_next_cycle()


def server_connection() -> h11.Connection:
    """The server side of one HTTP/1.1 connection, its head bounded by MAX_HEAD."""
    return h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)


async def send_response(
    conn: h11.Connection,
    writer: asyncio.StreamWriter,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    """One whole response: the headers given, then Content-Length, the body, drained."""
    headers = [*headers, ("Content-Length", str(len(body)))]
    reason = reason_phrase(status).encode()
    writer.write(conn.send(h11.Response(status_code=status, headers=headers, reason=reason)))
    writer.write(conn.send(h11.Data(data=body)))
    writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()
