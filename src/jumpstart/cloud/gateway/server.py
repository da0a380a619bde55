"""The gateway's asyncio face: TCP + TLS (client certificate required) around
``ClientConnection``.

Every socket gets TCP_NODELAY, and TCP_QUICKACK is re-armed on each read: Linux clears it
after every ACK, and without it awscrt clients stall 40 ms on each PUBACK (spec/cloud.md 5.4).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable

from jumpstart.cloud.gateway.broker import Broker
from jumpstart.cloud.gateway.connection import ClientConnection
from jumpstart.cloud.policy import Principal
from jumpstart.cloud.tls import TlsError, TlsSession

__all__ = ["GatewayServer", "tune_socket"]

Authenticate = Callable[[bytes], Principal | None]
HOUSEKEEPING_S = 1.0
SESSION_SWEEP_S = 60.0
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def tune_socket(sock: socket.socket | None) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def quickack(sock: socket.socket | None) -> None:
    if sock is not None and _QUICKACK is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


class _GatewayProtocol(asyncio.Protocol):
    __slots__ = ("_sock", "broker", "connection", "server", "tls", "transport")

    def __init__(self, server: GatewayServer) -> None:
        self.server = server
        self.broker = server.broker
        self.tls = TlsSession(server.context)
        self.transport: asyncio.Transport | None = None
        self._sock: socket.socket | None = None
        self.connection: ClientConnection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._sock = transport.get_extra_info("socket")
        tune_socket(self._sock)
        self.server.protocols.add(self)

    def data_received(self, data: bytes) -> None:
        quickack(self._sock)
        try:
            plaintext = self.tls.receive(data)
        except TlsError:
            self._flush()
            self.close()
            return
        if self.connection is None and self.tls.handshake_done:
            der = self.tls.peer_certificate()
            principal = self.server.authenticate(der) if der else None
            peer = self.transport.get_extra_info("peername") if self.transport else None
            address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            self.connection = ClientConnection(self.broker, self, principal, address)
        self._flush()
        if plaintext and self.connection is not None:
            self.connection.receive_data(plaintext)
        if self.tls.closed:
            self.close()

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self.tls.send(data)
        except TlsError:
            self.close()
            return
        self._flush()

    def _flush(self) -> None:
        out = self.tls.outgoing()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.protocols.discard(self)
        if self.connection is not None:
            self.connection.connection_lost()
        self.transport = None


class GatewayServer:
    """Listens for MQTT over TLS; ``authenticate`` maps a client certificate to a principal."""

    def __init__(self, broker: Broker, context: ssl.SSLContext, authenticate: Authenticate) -> None:
        self.broker = broker
        self.context = context
        self.authenticate = authenticate
        self.protocols: set[_GatewayProtocol] = set()
        self._server: asyncio.Server | None = None
        self._housekeeping: asyncio.Task[None] | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 8883) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _GatewayProtocol(self), host, port, backlog=2048, reuse_address=True
        )
        self._housekeeping = asyncio.create_task(self._keep_house(), name="gateway.housekeeping")
        return int(self._server.sockets[0].getsockname()[1])

    async def _keep_house(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            self.broker.check_keep_alive()
            ticks += 1
            if ticks % int(SESSION_SWEEP_S / HOUSEKEEPING_S) == 0:
                self.broker.expire_sessions()

    async def close(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        if self._server is not None:
            self._server.close()
            for protocol in list(self.protocols):
                protocol.abort()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
