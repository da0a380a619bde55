"""``protocomm``: named endpoints behind one security scheme, independent of the transport.

Three kinds of endpoint exist. The version endpoint answers its fixed text to any body; the
security endpoint carries the handshake in the clear; every other endpoint is a request endpoint
whose body is decrypted before its handler sees it and whose answer is encrypted. Transports
(HTTP, BLE) map their own connections onto session ids and call ``handle``; a ``SessionError``
means "drop this exchange without an answer".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto

from jumpstart.errors import InputError, UsageError
from jumpstart.idf.protocomm.security import SecurityScheme, SessionError

__all__ = ["EndpointKind", "Protocomm", "RequestHandler"]

RequestHandler = Callable[[int, bytes], bytes]
"""``(session_id, plaintext request) -> plaintext response``; raise InputError to refuse."""


class EndpointKind(Enum):
    VERSION = auto()
    SECURITY = auto()
    REQUEST = auto()


@dataclass(slots=True)
class _Endpoint:
    kind: EndpointKind
    handler: RequestHandler | None = None
    version: bytes = b""


class Protocomm:
    """One protocomm instance: at most one security scheme and one live session."""

    def __init__(self) -> None:
        self._endpoints: dict[str, _Endpoint] = {}
        self.security: SecurityScheme | None = None
        self.session_id: int | None = None

    @property
    def endpoints(self) -> list[str]:
        return list(self._endpoints)

    def set_version(self, name: str, version: str | bytes) -> None:
        """``protocomm_set_version``: ``name`` answers ``version`` to any request."""
        text = version.encode() if isinstance(version, str) else version
        self._add(name, _Endpoint(EndpointKind.VERSION, version=text))

    def set_security(self, name: str, scheme: SecurityScheme) -> None:
        """``protocomm_set_security``: the handshake endpoint and the scheme for all requests."""
        if self.security is not None:
            raise UsageError("protocomm already has a security endpoint")
        self._add(name, _Endpoint(EndpointKind.SECURITY))
        self.security = scheme

    def unset_security(self, name: str) -> None:
        self.remove_endpoint(name)
        if self.security is not None and self.session_id is not None:
            self.security.close_session(self.session_id)
        self.security = None
        self.session_id = None

    def add_endpoint(self, name: str, handler: RequestHandler) -> None:
        self._add(name, _Endpoint(EndpointKind.REQUEST, handler))

    def remove_endpoint(self, name: str) -> None:
        if self._endpoints.pop(name, None) is None:
            raise UsageError(f"no endpoint {name!r}")

    def _add(self, name: str, endpoint: _Endpoint) -> None:
        if not name or name in self._endpoints:
            raise UsageError(f"endpoint {name!r} is empty or already registered")
        self._endpoints[name] = endpoint

    # -- sessions ----------------------------------------------------------------------
    def open_session(self, session_id: int) -> None:
        """A transport session starts; it replaces the previous one (one at a time)."""
        if self.session_id is not None and self.security is not None:
            self.security.close_session(self.session_id)
        self.session_id = session_id
        if self.security is not None:
            self.security.new_session(session_id)

    def close_session(self, session_id: int) -> None:
        if self.session_id != session_id:
            return
        if self.security is not None:
            self.security.close_session(session_id)
        self.session_id = None

    # -- requests ----------------------------------------------------------------------
    def handle(self, name: str, session_id: int, data: bytes) -> bytes:
        """``protocomm_req_handle``. Raises SessionError for anything that must get no answer."""
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise SessionError(f"no endpoint {name!r}")
        if endpoint.kind is EndpointKind.VERSION:
            return endpoint.version
        if endpoint.kind is EndpointKind.SECURITY:
            if self.security is None:
                raise SessionError("no security scheme")
            return self.security.handle(session_id, data)
        assert endpoint.handler is not None
        if self.security is None:
            return self._call(endpoint.handler, name, session_id, data)
        plain = self.security.decrypt(session_id, data)
        response = self._call(endpoint.handler, name, session_id, plain)
        return self.security.encrypt(session_id, response)

    @staticmethod
    def _call(handler: RequestHandler, name: str, session_id: int, data: bytes) -> bytes:
        try:
            return handler(session_id, data)
        except SessionError:
            raise
        except InputError as err:
            raise SessionError(f"{name}: {err}") from None
