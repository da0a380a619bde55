"""Client transports for unified provisioning: how ``jumpstart prov`` reaches a device.

``HttpTransport`` is the SoftAP transport as Espressif's clients speak it: ``POST /<endpoint>``
with their headers, and the device's ``Set-Cookie`` echoed verbatim as ``Cookie``.
"""

from __future__ import annotations

import http.client
from abc import ABC, abstractmethod

from jumpstart.errors import InputError

__all__ = ["HttpTransport", "ProvTransport", "TransportError"]

# esp_prov's HTTP client headers; the device ignores both, but they are what it receives.
HEADERS = {"Content-type": "application/x-www-form-urlencoded", "Accept": "text/plain"}
TIMEOUT_S = 60.0


class TransportError(InputError):
    """The device closed the exchange or answered something other than 200."""


class ProvTransport(ABC):
    @abstractmethod
    def send(self, endpoint: str, data: bytes) -> bytes: ...

    @abstractmethod
    def close(self) -> None: ...


class HttpTransport(ProvTransport):
    """``transport_http``: one keep-alive connection, reconnected when the device closes it."""

    def __init__(self, hostport: str, timeout: float = TIMEOUT_S) -> None:
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise InputError(f"service address {hostport!r} is not host:port")
        self.hostport = hostport
        self._conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        self.cookie: str | None = None

    def send(self, endpoint: str, data: bytes) -> bytes:
        headers = dict(HEADERS)
        if self.cookie is not None:
            headers["Cookie"] = self.cookie
        try:
            self._conn.request("POST", f"/{endpoint}", data, headers)
            response = self._conn.getresponse()
            body = response.read()
        except (http.client.HTTPException, OSError) as err:
            self._conn.close()
            raise TransportError(f"Connection Failure : {err}") from None
        if response.status != 200:
            raise TransportError(f"/{endpoint}: HTTP {response.status} {response.reason}")
        cookie = response.getheader("Set-Cookie")
        if cookie is not None:
            self.cookie = cookie
        return body

    def close(self) -> None:
        self._conn.close()
