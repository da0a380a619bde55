"""TLS as a sans-I/O session over ``ssl.MemoryBIO``: wire bytes in, plaintext out.

Owning the TLS object, instead of asyncio's SSL transport, keeps a connection's memory small
(asyncio allocates a 256 KiB read buffer per TLS connection, spec/cloud.md 6) and leaves the
raw socket to its owner. The cloud's servers and the devices' esp-tls both use it.
"""

from __future__ import annotations

import ssl

from jumpstart.errors import InputError

__all__ = ["READ_CHUNK", "TlsError", "TlsSession"]

READ_CHUNK = 16 * 1024  # one TLS record's plaintext at most


class TlsError(InputError):
    """The peer's TLS is broken: failed handshake, bad record, missing certificate. The
    ``ssl`` error is its ``__cause__``."""


class TlsSession:
    """Feed wire bytes with ``receive`` (plaintext out), send plaintext with ``send``, and put
    ``outgoing()`` on the wire after either. A client starts its handshake with
    ``receive(b"")``."""

    __slots__ = ("_in", "_obj", "_out", "closed", "handshake_done")

    def __init__(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool = True,
        server_hostname: str | None = None,
    ) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(
            self._in, self._out, server_side=server_side, server_hostname=server_hostname
        )
        self.handshake_done = False
        self.closed = False

    def receive(self, data: bytes) -> bytes:
        self._in.write(data)
        chunks: list[bytes] = []
        try:
            if not self.handshake_done:
                self._obj.do_handshake()
                self.handshake_done = True
            while chunk := self._obj.read(READ_CHUNK):
                chunks.append(chunk)
            # b"" without an exception: the peer's close_notify arrived
            self.closed = True
            return b"".join(chunks)
        except ssl.SSLWantReadError:
            return b"".join(chunks)
        except ssl.SSLZeroReturnError:
            self.closed = True
            return b"".join(chunks)
        except ssl.SSLError as err:
            self.closed = True
            raise TlsError(f"TLS failed: {err.reason or err}") from err

    def send(self, data: bytes) -> None:
        try:
            self._obj.write(data)
        except ssl.SSLError as err:
            self.closed = True
            raise TlsError(f"TLS failed: {err.reason or err}") from err

    def outgoing(self) -> bytes:
        return self._out.read()

    def peer_certificate(self) -> bytes | None:
        """The peer's certificate as DER bytes (after the handshake)."""
        return self._obj.getpeercert(binary_form=True)
