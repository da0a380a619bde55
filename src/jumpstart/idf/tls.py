"""``esp-tls``: the TLS client configuration every device connection uses.

The device keeps its CA, certificate and key in memory (embedded files or the factory NVS
partition, as the guide does), so they arrive as PEM bytes. The server must chain to the given
CA; there is no option to skip that check, only (for IP-address endpoints) the host name check.
"""

from __future__ import annotations

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
        # The ssl module loads credentials only from files; they live there for one call.
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder, "cert.pem"), Path(folder, "key.pem")
            cert.write_bytes(cert_pem)
            key.write_bytes(key_pem)
            try:
                context.load_cert_chain(cert, key)
            except ssl.SSLError as err:
                raise EspError(
                    EspErr.ESP_ERR_INVALID_ARG,
                    f"the device certificate and key do not load ({err.reason})",
                ) from None
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context
