"""TLS as a sans-I/O session over ``ssl.MemoryBIO``, for the cloud's servers.

Owning the TLS object (instead of asyncio's SSL transport) keeps per-connection memory small
(asyncio allocates a 256 KiB read buffer per TLS connection, spec/cloud.md 6) and leaves the
raw socket to the server, which re-arms TCP_QUICKACK on every read (spec 5.4 item 6).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from jumpstart.errors import InputError

__all__ = ["TlsError", "TlsSession", "server_context"]

READ_CHUNK = 16 * 1024  # one TLS record's plaintext at most


class TlsError(InputError):
    """The peer's TLS is broken: failed handshake, bad record, missing certificate."""


def server_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """TLS 1.2+ server context that requires a client certificate from ``client_ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class TlsSession:
    """Feed wire bytes with ``receive`` (plaintext out), send plaintext with ``send``, and put
    ``outgoing()`` on the wire after either."""

    __slots__ = ("_in", "_obj", "_out", "closed", "handshake_done")

    def __init__(self, context: ssl.SSLContext) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._in, self._out, server_side=True)
        self.handshake_done = False
        self.closed = False

    def receive(self, data: bytes) -> bytes:
        self._in.write(data)
        try:
            if not self.handshake_done:
                self._obj.do_handshake()
                self.handshake_done = True
            chunks = []
            while chunk := self._obj.read(READ_CHUNK):
                chunks.append(chunk)
            # b"" without an exception: the peer's close_notify arrived
            self.closed = True
            return b"".join(chunks)
        except ssl.SSLWantReadError:
            return b"".join(chunks) if self.handshake_done else b""
        except ssl.SSLZeroReturnError:
            self.closed = True
            return b""
        except ssl.SSLError as err:
            self.closed = True
            raise TlsError(f"TLS failed: {err.reason or err}") from None

    def send(self, data: bytes) -> None:
        try:
            self._obj.write(data)
        except ssl.SSLError as err:
            self.closed = True
            raise TlsError(f"TLS failed: {err.reason or err}") from None

    def outgoing(self) -> bytes:
        return self._out.read()

    def peer_certificate(self) -> bytes | None:
        """The client certificate's DER bytes (after the handshake)."""
        return self._obj.getpeercert(binary_form=True)
