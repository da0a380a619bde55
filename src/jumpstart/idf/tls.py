"""``esp-tls``: the TLS client configuration every device connection uses.

The device keeps its CA, certificate and key in memory (embedded files or the factory NVS
partition, as the guide does), so they arrive as PEM bytes. The server must chain to the given
CA; there is no option to skip that check, only (for IP-address endpoints) the host name check.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from jumpstart.idf.esp_err import EspErr, EspError

__all__ = ["client_context"]


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
