"""Security 2: SRP6a (3072-bit, SHA-512) and AES-256-GCM.

The device holds only the salt and the verifier. After the proofs are exchanged, traffic is
AES-GCM with the first 32 bytes of K, no AAD, the tag appended. The 12-byte nonce is 8 random
session bytes and a 32-bit big-endian counter starting at 1. With ``sec_patch_ver`` 1 both sides
count every GCM operation (request n uses 2n-1, its response 2n); patch version 0 firmware
reused the first nonce for every message, and is kept for clients of that generation.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jumpstart.errors import InputError
from jumpstart.idf.protocomm.proto import constants_pb2, sec2_pb2, session_pb2
from jumpstart.idf.protocomm.security import (
    HandshakeScheme,
    HandshakeSession,
    HandshakeState,
    SecurityClient,
    SecurityEvent,
    SessionError,
    parse_session_data,
)
from jumpstart.idf.protocomm.srp6a import GROUP_BYTES, SrpClient, SrpServer

__all__ = ["GcmChannel", "Security2", "Security2Client"]

PROOF_BYTES = 64
SESSION_ID_BYTES = 8
COUNTER_LIMIT = 1 << 32
AES_KEY_BYTES = 32

RandomSource = Callable[[int], bytes]


@dataclass(slots=True)
class GcmChannel:
    """Both directions' AES-GCM state: one key, one nonce prefix, one shared counter."""

    key: bytes
    nonce: bytes
    patch_version: int
    counter: int = field(init=False)
    _aead: AESGCM = field(init=False)

    def __post_init__(self) -> None:
        self._aead = AESGCM(self.key[:AES_KEY_BYTES])
        self.counter = int.from_bytes(self.nonce[SESSION_ID_BYTES:], "big")

    def _next_nonce(self) -> bytes:
        if self.patch_version == 0:
            return self.nonce
        if self.counter == 0:
            raise SessionError("GCM nonce counter wrapped; start a new session")
        return self.nonce[:SESSION_ID_BYTES] + self.counter.to_bytes(4, "big")

    def _advance(self) -> None:
        if self.patch_version:
            self.counter = (self.counter + 1) % COUNTER_LIMIT

    def encrypt(self, data: bytes) -> bytes:
        sealed = self._aead.encrypt(self._next_nonce(), data, None)
        self._advance()
        return sealed

    def decrypt(self, data: bytes) -> bytes:
        try:
            plain = self._aead.decrypt(self._next_nonce(), data, None)
        except InvalidTag:
            # A forged or stale message does not move the counter: the client may go on.
            raise SessionError("GCM tag mismatch: message altered or out of order") from None
        self._advance()
        return plain


@dataclass(slots=True)
class _Session(HandshakeSession):
    srp: SrpServer | None = None
    channel: GcmChannel | None = None


class Security2(HandshakeScheme[_Session]):
    """Device side, from the salt and verifier made at the factory."""

    version = 2

    def __init__(
        self,
        salt: bytes,
        verifier: bytes,
        patch_version: int = 1,
        random: RandomSource = secrets.token_bytes,
    ) -> None:
        super().__init__(_Session)
        if patch_version not in (0, 1):
            raise ValueError(f"sec_patch_ver {patch_version} (0 or 1)")
        if not salt or len(verifier) != GROUP_BYTES:
            raise ValueError(f"Security 2 needs a salt and a {GROUP_BYTES}-byte verifier")
        self.salt = salt
        self.verifier = verifier
        self._patch_version = patch_version
        self._random = random

    @property
    def patch_version(self) -> int:
        return self._patch_version

    def handle(self, session_id: int, data: bytes) -> bytes:
        session = self._current(session_id)
        payload = parse_session_data(data, self.version, "sec2").sec2
        case = payload.WhichOneof("payload")
        if payload.msg == sec2_pb2.S2Session_Command0 and case == "sc0":
            return self._command0(session, payload.sc0.client_username, payload.sc0.client_pubkey)
        if payload.msg == sec2_pb2.S2Session_Command1 and case == "sc1":
            return self._command1(session, payload.sc1.client_proof)
        raise SessionError(f"unexpected Security 2 message {payload.msg} ({case})")

    def _command0(self, session: _Session, username: bytes, client_public: bytes) -> bytes:
        srp = SrpServer(self.salt, self.verifier, self._random(32))
        try:
            device_public = srp.challenge(username, client_public)
        except InputError as err:
            self._event(SecurityEvent.INVALID_SECURITY_PARAMS, session.id)
            raise SessionError(str(err)) from None
        session.state, session.srp, session.channel = HandshakeState.WAIT_CMD1, srp, None
        reply = session_pb2.SessionData(sec_ver=session_pb2.SecScheme2)
        reply.sec2.msg = sec2_pb2.S2Session_Response0
        reply.sec2.sr0.status = constants_pb2.Success
        reply.sec2.sr0.device_pubkey = device_public
        reply.sec2.sr0.device_salt = self.salt
        return reply.SerializeToString()

    def _command1(self, session: _Session, client_proof: bytes) -> bytes:
        if session.state is not HandshakeState.WAIT_CMD1 or session.srp is None:
            raise SessionError("S2Session_Command1 before S2Session_Command0")
        if len(client_proof) != PROOF_BYTES:
            self._event(SecurityEvent.INVALID_SECURITY_PARAMS, session.id)
            raise SessionError(f"client proof of {len(client_proof)} bytes, not 64")
        try:
            keys = session.srp.verify(client_proof)
        except InputError as err:
            session.state, session.srp = HandshakeState.WAIT_CMD0, None
            self._event(SecurityEvent.CREDENTIALS_MISMATCH, session.id)
            raise SessionError(str(err)) from None
        nonce = self._random(SESSION_ID_BYTES) + (1).to_bytes(4, "big")
        session.channel = GcmChannel(keys.key, nonce, self._patch_version)
        session.state, session.srp = HandshakeState.ESTABLISHED, None
        self._event(SecurityEvent.SETUP_OK, session.id)
        reply = session_pb2.SessionData(sec_ver=session_pb2.SecScheme2)
        reply.sec2.msg = sec2_pb2.S2Session_Response1
        reply.sec2.sr1.status = constants_pb2.Success
        reply.sec2.sr1.device_proof = keys.device_proof
        reply.sec2.sr1.device_nonce = nonce
        return reply.SerializeToString()

    def _channel(self, session_id: int) -> GcmChannel:
        session = self._current(session_id)
        if session.state is not HandshakeState.ESTABLISHED or session.channel is None:
            raise SessionError("secure session not established")
        return session.channel

    def encrypt(self, session_id: int, data: bytes) -> bytes:
        return self._channel(session_id).encrypt(data)

    def decrypt(self, session_id: int, data: bytes) -> bytes:
        return self._channel(session_id).decrypt(data)


class Security2Client(SecurityClient):
    """Client side; ``patch_version`` is the device's ``sec_patch_ver`` (absent: 0)."""

    version = 2

    def __init__(
        self,
        username: bytes,
        password: bytes,
        patch_version: int = 0,
        private: bytes | None = None,
    ) -> None:
        self._srp = SrpClient(username, password, private)
        self.patch_version = patch_version
        self._channel: GcmChannel | None = None
        self._client_proof_sent = False

    def start(self) -> bytes:
        request = session_pb2.SessionData(sec_ver=session_pb2.SecScheme2)
        request.sec2.msg = sec2_pb2.S2Session_Command0
        request.sec2.sc0.client_username = self._srp.username
        request.sec2.sc0.client_pubkey = self._srp.public
        return request.SerializeToString()

    def step(self, response: bytes) -> bytes | None:
        reply = parse_session_data(response, self.version, "sec2").sec2
        if reply.msg == sec2_pb2.S2Session_Response0 and not self._client_proof_sent:
            if reply.sr0.status:
                raise SessionError("device refused S2Session_Command0")
            try:
                proof = self._srp.process(reply.sr0.device_salt, reply.sr0.device_pubkey)
            except InputError as err:
                raise SessionError(str(err)) from None
            self._client_proof_sent = True
            request = session_pb2.SessionData(sec_ver=session_pb2.SecScheme2)
            request.sec2.msg = sec2_pb2.S2Session_Command1
            request.sec2.sc1.client_proof = proof
            return request.SerializeToString()
        if reply.msg == sec2_pb2.S2Session_Response1 and self._client_proof_sent:
            if reply.sr1.status:
                raise SessionError("device refused S2Session_Command1")
            try:
                keys = self._srp.verify(reply.sr1.device_proof)
            except InputError as err:
                raise SessionError(str(err)) from None
            if len(reply.sr1.device_nonce) != SESSION_ID_BYTES + 4:
                raise SessionError("device nonce is not 12 bytes")
            self._channel = GcmChannel(keys.key, reply.sr1.device_nonce, self.patch_version)
            return None
        raise SessionError(f"unexpected Security 2 response {reply.msg}")

    def _require(self) -> GcmChannel:
        if self._channel is None:
            raise SessionError("secure session not established")
        return self._channel

    def encrypt(self, data: bytes) -> bytes:
        return self._require().encrypt(data)

    def decrypt(self, data: bytes) -> bytes:
        return self._require().decrypt(data)
