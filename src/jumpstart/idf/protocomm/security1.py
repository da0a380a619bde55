"""Security 1: X25519 key exchange, proof of possession, one AES-256-CTR stream.

The shared secret (XOR SHA-256 of the PoP, if there is one) keys a single CTR keystream whose
initial counter block is the device's 16 random bytes. Both directions consume that one stream
in processing order: the client's verifier takes bytes 0..31, the device's 32..63, and every
later request and response continues it. A lost message therefore desynchronises the session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from jumpstart.idf.protocomm.proto import constants_pb2, sec1_pb2, session_pb2
from jumpstart.idf.protocomm.security import (
    HandshakeScheme,
    HandshakeSession,
    HandshakeState,
    SecurityClient,
    SecurityEvent,
    SessionError,
    parse_session_data,
)

__all__ = ["Security1", "Security1Client", "session_key"]

KEY_BYTES = 32
RANDOM_BYTES = 16

RandomSource = Callable[[int], bytes]


def session_key(shared: bytes, pop: bytes) -> bytes:
    """The AES key: the X25519 secret, XOR SHA-256(PoP) when a PoP is set."""
    if not pop:
        return shared
    digest = hashlib.sha256(pop).digest()
    return bytes(a ^ b for a, b in zip(shared, digest, strict=True))


def _ctr(key: bytes, iv: bytes) -> CipherContext:
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()


def _public_bytes(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes_raw()


@dataclass(slots=True)
class _Session(HandshakeSession):
    stream: CipherContext | None = None
    client_public: bytes = b""
    device_public: bytes = b""


class Security1(HandshakeScheme[_Session]):
    """Device side. ``pop`` empty means no proof of possession (capability ``no_pop``)."""

    version = 1

    def __init__(self, pop: bytes = b"", random: RandomSource = secrets.token_bytes) -> None:
        super().__init__(_Session)
        self.pop = pop
        self._random = random

    def capabilities(self) -> list[str]:
        return [] if self.pop else ["no_pop"]

    def handle(self, session_id: int, data: bytes) -> bytes:
        session = self._current(session_id)
        request = parse_session_data(data, self.version, "sec1")
        payload = request.sec1
        case = payload.WhichOneof("payload")
        if payload.msg == sec1_pb2.Session_Command0 and case == "sc0":
            return self._command0(session, payload.sc0.client_pubkey)
        if payload.msg == sec1_pb2.Session_Command1 and case == "sc1":
            return self._command1(session, payload.sc1.client_verify_data)
        raise SessionError(f"unexpected Security 1 message {payload.msg} ({case})")

    def _command0(self, session: _Session, client_public: bytes) -> bytes:
        if len(client_public) != KEY_BYTES:
            self._event(SecurityEvent.INVALID_SECURITY_PARAMS, session.id)
            raise SessionError(f"client public key of {len(client_public)} bytes, not 32")
        private = X25519PrivateKey.from_private_bytes(self._random(KEY_BYTES))
        try:
            shared = private.exchange(X25519PublicKey.from_public_bytes(client_public))
        except ValueError as err:  # the all-zero secret of a low-order point
            self._event(SecurityEvent.INVALID_SECURITY_PARAMS, session.id)
            raise SessionError(f"unusable client public key: {err}") from None
        device_random = self._random(RANDOM_BYTES)
        session.state = HandshakeState.WAIT_CMD1
        session.stream = _ctr(session_key(shared, self.pop), device_random)
        session.client_public = client_public
        session.device_public = _public_bytes(private)
        reply = session_pb2.SessionData(sec_ver=session_pb2.SecScheme1)
        reply.sec1.msg = sec1_pb2.Session_Response0
        reply.sec1.sr0.status = constants_pb2.Success
        reply.sec1.sr0.device_pubkey = session.device_public
        reply.sec1.sr0.device_random = device_random
        return reply.SerializeToString()

    def _command1(self, session: _Session, client_verify: bytes) -> bytes:
        if session.state is not HandshakeState.WAIT_CMD1 or session.stream is None:
            raise SessionError("Session_Command1 before Session_Command0")
        if len(client_verify) != KEY_BYTES:
            self._event(SecurityEvent.INVALID_SECURITY_PARAMS, session.id)
            raise SessionError(f"client verifier of {len(client_verify)} bytes, not 32")
        if not hmac.compare_digest(session.stream.update(client_verify), session.device_public):
            # The stream has moved on; only a new Command0 can start over.
            session.state, session.stream = HandshakeState.WAIT_CMD0, None
            self._event(SecurityEvent.CREDENTIALS_MISMATCH, session.id)
            raise SessionError("client verifier does not match: wrong proof of possession")
        device_verify = session.stream.update(session.client_public)
        session.state = HandshakeState.ESTABLISHED
        self._event(SecurityEvent.SETUP_OK, session.id)
        reply = session_pb2.SessionData(sec_ver=session_pb2.SecScheme1)
        reply.sec1.msg = sec1_pb2.Session_Response1
        reply.sec1.sr1.status = constants_pb2.Success
        reply.sec1.sr1.device_verify_data = device_verify
        return reply.SerializeToString()

    def _stream(self, session_id: int) -> CipherContext:
        session = self._current(session_id)
        if session.state is not HandshakeState.ESTABLISHED or session.stream is None:
            raise SessionError("secure session not established")
        return session.stream

    def encrypt(self, session_id: int, data: bytes) -> bytes:
        return self._stream(session_id).update(data)

    def decrypt(self, session_id: int, data: bytes) -> bytes:
        return self._stream(session_id).update(data)


class Security1Client(SecurityClient):
    version = 1

    def __init__(self, pop: bytes = b"", random: RandomSource = secrets.token_bytes) -> None:
        self.pop = pop
        self._private = X25519PrivateKey.from_private_bytes(random(KEY_BYTES))
        self.public = _public_bytes(self._private)
        self._stream: CipherContext | None = None
        self._device_public = b""
        self.established = False

    def start(self) -> bytes:
        request = session_pb2.SessionData(sec_ver=session_pb2.SecScheme1)
        request.sec1.sc0.client_pubkey = self.public
        return request.SerializeToString()

    def step(self, response: bytes) -> bytes | None:
        reply = parse_session_data(response, self.version, "sec1").sec1
        if reply.msg == sec1_pb2.Session_Response0 and self._stream is None:
            if reply.sr0.status or len(reply.sr0.device_pubkey) != KEY_BYTES:
                raise SessionError("device refused Session_Command0")
            if len(reply.sr0.device_random) != RANDOM_BYTES:
                raise SessionError("device random is not 16 bytes")
            self._device_public = reply.sr0.device_pubkey
            try:
                peer = X25519PublicKey.from_public_bytes(self._device_public)
                shared = self._private.exchange(peer)
            except ValueError as err:
                raise SessionError(f"unusable device public key: {err}") from None
            self._stream = _ctr(session_key(shared, self.pop), reply.sr0.device_random)
            request = session_pb2.SessionData(sec_ver=session_pb2.SecScheme1)
            request.sec1.msg = sec1_pb2.Session_Command1
            request.sec1.sc1.client_verify_data = self._stream.update(self._device_public)
            return request.SerializeToString()
        if reply.msg == sec1_pb2.Session_Response1 and self._stream is not None:
            if reply.sr1.status:
                raise SessionError("device refused Session_Command1")
            device_verify = self._stream.update(reply.sr1.device_verify_data)
            if not hmac.compare_digest(device_verify, self.public):
                raise SessionError("device verifier does not match: wrong proof of possession")
            self.established = True
            return None
        raise SessionError(f"unexpected Security 1 response {reply.msg}")

    def encrypt(self, data: bytes) -> bytes:
        if not self.established or self._stream is None:
            raise SessionError("secure session not established")
        return self._stream.update(data)

    def decrypt(self, data: bytes) -> bytes:
        return self.encrypt(data)
