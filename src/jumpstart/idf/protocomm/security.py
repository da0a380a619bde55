"""What every protocomm security scheme provides, on the device and on the client side.

A scheme is a sans-I/O object: the transport hands it the bytes of ``prov-session`` requests
and of encrypted endpoint traffic and gets bytes back. Any failure raises ``SessionError``; the
transport then drops the exchange without answering, as ESP-IDF does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from typing import ClassVar, Generic, TypeVar

from google.protobuf.message import DecodeError, Message

from jumpstart.errors import InputError
from jumpstart.idf.protocomm.proto import session_pb2

__all__ = [
    "HandshakeScheme",
    "HandshakeSession",
    "HandshakeState",
    "SecurityClient",
    "SecurityEvent",
    "SecurityScheme",
    "SessionError",
    "parse_message",
    "parse_session_data",
]


class SessionError(InputError):
    """The peer's message is malformed, out of order or fails a cryptographic check."""


class SecurityEvent(Enum):
    """``PROTOCOMM_SECURITY_SESSION_EVENT`` ids."""

    SETUP_OK = auto()
    INVALID_SECURITY_PARAMS = auto()
    CREDENTIALS_MISMATCH = auto()


EventSink = Callable[[SecurityEvent, int], None]


M = TypeVar("M", bound=Message)


def parse_message(message: M, data: bytes) -> M:
    """Decode ``data`` into ``message``; undecodable bytes are a SessionError."""
    try:
        message.ParseFromString(data)
    except DecodeError as err:
        raise SessionError(f"malformed {type(message).__name__}: {err}") from None
    return message


def parse_session_data(data: bytes, version: int, case: str) -> session_pb2.SessionData:
    """Decode a ``SessionData`` and insist on this scheme's version and payload."""
    message = parse_message(session_pb2.SessionData(), data)
    if message.sec_ver != version:
        raise SessionError(f"session uses security {message.sec_ver}, device has {version}")
    if message.WhichOneof("proto") != case:
        raise SessionError(f"SessionData carries {message.WhichOneof('proto')}, not {case}")
    return message


class SecurityScheme(ABC):
    """The device side: one security session at a time (a new one replaces the last)."""

    version: ClassVar[int]

    def __init__(self) -> None:
        self.on_event: EventSink | None = None

    @property
    def patch_version(self) -> int:
        """``sec_patch_ver`` announced in ``proto-ver``."""
        return 0

    def capabilities(self) -> list[str]:
        """Entries this scheme adds to ``prov.cap`` (``no_sec``, ``no_pop``)."""
        return []

    def _event(self, event: SecurityEvent, session_id: int) -> None:
        if self.on_event is not None:
            self.on_event(event, session_id)

    @abstractmethod
    def new_session(self, session_id: int) -> None: ...

    @abstractmethod
    def close_session(self, session_id: int) -> None: ...

    @abstractmethod
    def handle(self, session_id: int, data: bytes) -> bytes:
        """Answer one ``prov-session`` request."""

    @abstractmethod
    def encrypt(self, session_id: int, data: bytes) -> bytes: ...

    @abstractmethod
    def decrypt(self, session_id: int, data: bytes) -> bytes: ...


class HandshakeState(Enum):
    """Where a two-round-trip handshake (Security 1 and 2) stands."""

    WAIT_CMD0 = auto()
    WAIT_CMD1 = auto()
    ESTABLISHED = auto()


@dataclass(slots=True)
class HandshakeSession:
    id: int
    state: HandshakeState = HandshakeState.WAIT_CMD0


SessionT = TypeVar("SessionT", bound=HandshakeSession)


class HandshakeScheme(SecurityScheme, Generic[SessionT]):
    """A scheme holding one live ``SessionT``; a new transport session replaces it."""

    def __init__(self, session_type: type[SessionT]) -> None:
        super().__init__()
        self._session_type = session_type
        self._session: SessionT | None = None

    def new_session(self, session_id: int) -> None:
        self._session = self._session_type(session_id)

    def close_session(self, session_id: int) -> None:
        if self._session is not None and self._session.id == session_id:
            self._session = None

    def _current(self, session_id: int) -> SessionT:
        if self._session is None or self._session.id != session_id:
            raise SessionError(f"no security session {session_id}")
        return self._session


class SecurityClient(ABC):
    """The client side: ``start()`` gives the first handshake request, ``step(response)`` the
    next one or None once the session is established."""

    version: ClassVar[int]

    @abstractmethod
    def start(self) -> bytes: ...

    @abstractmethod
    def step(self, response: bytes) -> bytes | None: ...

    @abstractmethod
    def encrypt(self, data: bytes) -> bytes: ...

    @abstractmethod
    def decrypt(self, data: bytes) -> bytes: ...
