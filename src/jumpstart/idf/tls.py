"""``esp-tls``: the TLS client configuration every device connection uses.

The device keeps its CA, certificate and key in memory (embedded files or the factory NVS
partition, as the guide does), so they arrive as PEM bytes. The server must chain to the given
CA; there is no option to skip that check, only (for IP-address endpoints) the host name check.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jumpstart.formats.tls_session import TlsError, TlsSession
from jumpstart.idf.esp_err import EspErr, EspError

__all__ = ["TlsConnection", "client_context", "open_tls_connection"]


def client_context(
    ca_pem: bytes,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
    *,
    alpn: Sequence[str] = (),
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A TLS 1.2+ client context trusting only ``ca_pem``, with the client credentials given."""
    try:
        context = ssl.create_default_context(cadata=ca_pem.decode("ascii"))
    except (ssl.SSLError, ValueError, UnicodeDecodeError) as err:
        raise EspError(
            EspErr.ESP_ERR_INVALID_ARG, f"the server CA is not a PEM certificate ({err})"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = check_hostname
    if cert_pem and key_pem:
        try:
            _load_cert_chain(context, cert_pem, key_pem)
        except ssl.SSLError as err:
            raise EspError(
                EspErr.ESP_ERR_INVALID_ARG,
                f"the device certificate and key do not load ({err.reason})",
            ) from None
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def _load_cert_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """The ssl module loads credentials only from files: an anonymous in-memory file where
    the OS has them (no key ever touches a disk, and a fleet booting thousands of devices
    makes no directories), else a temporary directory for the one call."""
    pem = cert_pem.rstrip(b"\0") + b"\n" + key_pem.rstrip(b"\0")
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("esp-tls-credentials", os.MFD_CLOEXEC)
        try:
            with os.fdopen(os.dup(fd), "wb") as file:
                file.write(pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "credentials.pem")
        path.write_bytes(pem)
        context.load_cert_chain(path)


class TlsConnection(asyncio.Protocol):
    """A TLS client connection as esp-tls makes one: the TLS session is a sans-I/O one over a
    plain TCP transport, so a connection holds a few KiB, not asyncio's 256 KiB SSL read
    buffer (thousands of devices run in one process). Read and write like a stream."""

    def __init__(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        self.session = TlsSession(context, server_side=False, server_hostname=server_hostname)
        self.transport: asyncio.Transport | None = None
        self._plain = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[None] = loop.create_future()
        self._readable: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._feed(b"")  # the ClientHello

    def data_received(self, data: bytes) -> None:
        self._feed(data)

    def eof_received(self) -> bool:
        self._finish(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(exc)

    def _feed(self, data: bytes) -> None:
        try:
            plain = self.session.receive(data)
        except TlsError as err:
            # The ssl error itself (certificate not trusted, ...) is what callers describe.
            self._finish(err.__cause__ or err)
            if self.transport is not None:
                self.transport.abort()
            return
        self._send_pending()
        if self.session.handshake_done and not self.handshake.done():
            self.handshake.set_result(None)
        if plain:
            self._plain += plain
            self._wake()
        if self.session.closed:
            self._finish(None)

    def _finish(self, exc: BaseException | None) -> None:
        self._eof = True
        if exc is not None and self._error is None:
            self._error = exc
        if not self.handshake.done():
            self.handshake.set_exception(
                exc if exc is not None else ConnectionError("the server closed the connection")
            )
            self.handshake.exception()  # retrieved: a failed connect is reported by read()
        self._wake()

    def _wake(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    def _send_pending(self) -> None:
        out = self.session.outgoing()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)

    # -- the stream side -----------------------------------------------------------------
    async def read(self, limit: int) -> bytes:
        """Up to ``limit`` plaintext bytes; b"" at the end; the TLS error if it failed."""
        while not self._plain:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            self._readable = asyncio.get_running_loop().create_future()
            await self._readable
        data = bytes(self._plain[:limit])
        del self._plain[:limit]
        return data

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("the connection is closed")
        self.session.send(data)
        self._send_pending()

    async def drain(self) -> None:
        """Until what was written has left for the socket (or the connection ended)."""
        while (
            self.transport is not None
            and not self.transport.is_closing()
            and self.transport.get_write_buffer_size()
        ):
            await asyncio.sleep(0.01)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def get_extra_info(self, name: str) -> Any:
        return None if self.transport is None else self.transport.get_extra_info(name)


async def open_tls_connection(
    host: str, port: int, context: ssl.SSLContext, server_hostname: str | None = None
) -> TlsConnection:
    """Connect over TCP and complete the TLS handshake (``esp_tls_conn_new``)."""
    loop = asyncio.get_running_loop()
    _, connection = await loop.create_connection(
        lambda: TlsConnection(context, server_hostname or host), host, port
    )
    try:
        await connection.handshake
    except BaseException:
        connection.close()
        raise
    return connection
