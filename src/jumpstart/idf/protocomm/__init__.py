"""``protocomm``: transport-independent secure request/response endpoints (unified provisioning).

Security schemes and the endpoint registry are sans-I/O; ``httpd`` and ``ble`` carry them over
loopback sockets.
"""

from jumpstart.idf.protocomm.protocomm import EndpointKind, Protocomm, RequestHandler
from jumpstart.idf.protocomm.security import (
    SecurityClient,
    SecurityEvent,
    SecurityScheme,
    SessionError,
)
from jumpstart.idf.protocomm.security0 import Security0, Security0Client
from jumpstart.idf.protocomm.security1 import Security1, Security1Client
from jumpstart.idf.protocomm.security2 import Security2, Security2Client

__all__ = [
    "EndpointKind",
    "Protocomm",
    "RequestHandler",
    "Security0",
    "Security0Client",
    "Security1",
    "Security1Client",
    "Security2",
    "Security2Client",
    "SecurityClient",
    "SecurityEvent",
    "SecurityScheme",
    "SessionError",
]
