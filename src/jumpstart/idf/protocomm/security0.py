"""Security 0: a one-message handshake and plaintext traffic."""

from __future__ import annotations

from jumpstart.idf.protocomm.proto import constants_pb2, sec0_pb2, session_pb2
from jumpstart.idf.protocomm.security import (
    SecurityClient,
    SecurityScheme,
    SessionError,
    parse_session_data,
)

__all__ = ["Security0", "Security0Client"]


class Security0(SecurityScheme):
    version = 0

    def capabilities(self) -> list[str]:
        return ["no_sec"]

    def new_session(self, session_id: int) -> None:
        pass

    def close_session(self, session_id: int) -> None:
        pass

    def handle(self, session_id: int, data: bytes) -> bytes:
        request = parse_session_data(data, self.version, "sec0")
        if request.sec0.msg != sec0_pb2.S0_Session_Command or not request.sec0.HasField("sc"):
            raise SessionError("expected S0_Session_Command")
        reply = session_pb2.SessionData(sec_ver=request.sec_ver)
        reply.sec0.msg = sec0_pb2.S0_Session_Response
        reply.sec0.sr.status = constants_pb2.Success
        return reply.SerializeToString()

    def encrypt(self, session_id: int, data: bytes) -> bytes:
        return data

    def decrypt(self, session_id: int, data: bytes) -> bytes:
        return data


class Security0Client(SecurityClient):
    version = 0

    def start(self) -> bytes:
        request = session_pb2.SessionData(sec_ver=session_pb2.SecScheme0)
        request.sec0.sc.SetInParent()
        return request.SerializeToString()

    def step(self, response: bytes) -> bytes | None:
        reply = parse_session_data(response, self.version, "sec0")
        if reply.sec0.msg != sec0_pb2.S0_Session_Response or reply.sec0.sr.status:
            raise SessionError("device refused the Security 0 session")
        return None

    def encrypt(self, data: bytes) -> bytes:
        return data

    def decrypt(self, data: bytes) -> bytes:
        return data
