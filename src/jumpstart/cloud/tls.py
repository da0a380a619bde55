"""The cloud servers' TLS: their context, and the sans-I/O session (formats/tls_session.py)
the gateway feeds from its raw socket, re-arming TCP_QUICKACK on every read (spec 5.4 item 6).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from jumpstart.formats.tls_session import TlsError, TlsSession

__all__ = ["TlsError", "TlsSession", "server_context"]


def server_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """TLS 1.2+ server context that requires a client certificate from ``client_ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    context.verify_mode = ssl.CERT_REQUIRED
    return context
