"""Security 0/1/2 sessions: known answers, full handshakes, and every refusal path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jumpstart.idf.protocomm import (
    Security0,
    Security0Client,
    Security1,
    Security1Client,
    Security2,
    Security2Client,
    SecurityClient,
    SecurityEvent,
    SecurityScheme,
    SessionError,
)
from jumpstart.idf.protocomm.proto import session_pb2
from jumpstart.idf.protocomm.srp6a import GROUP_BYTES, N, verifier

VECTORS = Path(__file__).parents[2] / "vectors"
EXAMPLE = json.loads((VECTORS / "sec2_example_credentials.json").read_text())
SALT = bytes.fromhex(EXAMPLE["salt"])
VERIFIER = bytes.fromhex(EXAMPLE["verifier"])

# RFC 7748 section 6.1: Alice and Bob's X25519 keys and their shared secret.
ALICE_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIVATE = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUBLIC = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
DEVICE_RANDOM = bytes(range(16))


def handshake(device: SecurityScheme, client: SecurityClient, session_id: int = 7) -> None:
    device.new_session(session_id)
    request: bytes | None = client.start()
    while request is not None:
        request = client.step(device.handle(session_id, request))


def fixed(*chunks: bytes):  # type: ignore[no-untyped-def]
    """A random source that hands out the given bytes in order."""
    queue = list(chunks)

    def take(n: int) -> bytes:
        chunk = queue.pop(0)
        assert len(chunk) == n
        return chunk

    return take


# -- Security 0 ------------------------------------------------------------------------
def test_security0_answers_the_example_request() -> None:
    device = Security0()
    device.new_session(1)
    reply = session_pb2.SessionData.FromString(device.handle(1, bytes.fromhex("5203a20100")))
    assert reply.sec_ver == 0
    assert reply.sec0.msg == 1
    assert reply.sec0.HasField("sr")
    assert device.capabilities() == ["no_sec"]


def test_security0_client_and_device_agree() -> None:
    client = Security0Client()
    assert client.start() == bytes.fromhex("5203a20100")
    handshake(Security0(), client)
    assert client.encrypt(b"plain") == b"plain"


def test_security0_refuses_other_schemes() -> None:
    device = Security0()
    device.new_session(1)
    with pytest.raises(SessionError, match="security 1"):
        device.handle(1, Security1Client().start())


# -- Security 1 ------------------------------------------------------------------------
def test_security1_fixed_key_transcript() -> None:
    """Alice is the client, Bob the device: every wire field is recomputed from the spec."""
    pop = b"abcd1234"
    device = Security1(pop, random=fixed(BOB_PRIVATE, DEVICE_RANDOM))
    client = Security1Client(pop, random=fixed(ALICE_PRIVATE))
    device.new_session(3)

    cmd0 = client.start()
    assert session_pb2.SessionData.FromString(cmd0).sec1.sc0.client_pubkey == ALICE_PUBLIC
    # No msg field: Session_Command0 is 0 and proto3 leaves it out.
    assert cmd0 == bytes.fromhex("1001 5a25 a20122 0a20") + ALICE_PUBLIC

    resp0 = session_pb2.SessionData.FromString(device.handle(3, cmd0))
    assert resp0.sec1.sr0.device_pubkey == BOB_PUBLIC
    assert resp0.sec1.sr0.device_random == DEVICE_RANDOM

    key = bytes(a ^ b for a, b in zip(SHARED, hashlib.sha256(pop).digest(), strict=True))
    stream = Cipher(algorithms.AES(key), modes.CTR(DEVICE_RANDOM)).encryptor()
    expected_verify = stream.update(BOB_PUBLIC)

    cmd1 = client.step(resp0.SerializeToString())
    assert cmd1 is not None
    assert session_pb2.SessionData.FromString(cmd1).sec1.sc1.client_verify_data == expected_verify

    resp1 = session_pb2.SessionData.FromString(device.handle(3, cmd1))
    assert resp1.sec1.msg == 3
    assert resp1.sec1.sr1.device_verify_data == stream.update(ALICE_PUBLIC)
    assert client.step(resp1.SerializeToString()) is None

    # Data continues the one stream in processing order, across partial blocks.
    request = client.encrypt(b"\x08\x04")
    assert request == stream.update(b"\x08\x04")
    assert device.decrypt(3, request) == b"\x08\x04"
    response = device.encrypt(3, b"\x08\x05\x72\x00")
    assert response == stream.update(b"\x08\x05\x72\x00")
    assert client.decrypt(response) == b"\x08\x05\x72\x00"


def test_security1_without_pop_uses_the_bare_secret() -> None:
    device = Security1(b"", random=fixed(BOB_PRIVATE, DEVICE_RANDOM))
    client = Security1Client(b"", random=fixed(ALICE_PRIVATE))
    handshake(device, client)
    stream = Cipher(algorithms.AES(SHARED), modes.CTR(DEVICE_RANDOM)).encryptor()
    stream.update(bytes(64))
    assert client.encrypt(b"hello") == stream.update(b"hello")
    assert device.capabilities() == ["no_pop"]


def test_security1_wrong_pop_is_refused_and_nothing_decrypts() -> None:
    events: list[SecurityEvent] = []
    device = Security1(b"right-pop")
    device.on_event = lambda event, _sid: events.append(event)
    client = Security1Client(b"wrong-pop")
    device.new_session(1)
    cmd1 = client.step(device.handle(1, client.start()))
    assert cmd1 is not None
    with pytest.raises(SessionError, match="proof of possession"):
        device.handle(1, cmd1)
    assert events == [SecurityEvent.CREDENTIALS_MISMATCH]
    with pytest.raises(SessionError, match="not established"):
        device.decrypt(1, b"\x00" * 8)
    # The same device then serves the next client.
    good = Security1Client(b"right-pop")
    handshake(device, good, session_id=2)
    assert device.decrypt(2, good.encrypt(b"ok")) == b"ok"
    assert events[-1] is SecurityEvent.SETUP_OK


def test_security1_command0_again_restarts_the_handshake() -> None:
    device = Security1(b"pop")
    first = Security1Client(b"pop")
    handshake(device, first, session_id=5)
    second = Security1Client(b"pop")
    request: bytes | None = second.start()
    while request is not None:
        request = second.step(device.handle(5, request))
    assert device.decrypt(5, second.encrypt(b"x")) == b"x"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m.sec1.sc0.__setattr__("client_pubkey", bytes(31)), "31 bytes"),
        (lambda m: m.__setattr__("sec_ver", 2), "security 2"),
        (lambda m: m.sec1.__setattr__("msg", 2), "unexpected"),
    ],
)
def test_security1_refuses_bad_command0(mutate, message) -> None:  # type: ignore[no-untyped-def]
    device = Security1()
    device.new_session(1)
    request = session_pb2.SessionData.FromString(Security1Client().start())
    mutate(request)
    with pytest.raises(SessionError, match=message):
        device.handle(1, request.SerializeToString())


def test_security1_refuses_command1_first_and_garbage() -> None:
    device = Security1()
    device.new_session(1)
    request = session_pb2.SessionData(sec_ver=1)
    request.sec1.msg = 2
    request.sec1.sc1.client_verify_data = bytes(32)
    with pytest.raises(SessionError, match="before Session_Command0"):
        device.handle(1, request.SerializeToString())
    with pytest.raises(SessionError, match="malformed"):
        device.handle(1, b"\xff\xff\xff")
    with pytest.raises(SessionError, match="no security session"):
        device.handle(2, Security1Client().start())


# -- Security 2 ------------------------------------------------------------------------
def test_example_credentials_reproduce_the_verifier() -> None:
    assert verifier(b"wifiprov", b"abcd1234", SALT) == VERIFIER
    assert N.bit_length() == GROUP_BYTES * 8


def sha512(*parts: bytes) -> bytes:
    return hashlib.sha512(b"".join(parts)).digest()


@pytest.mark.parametrize("patch", [0, 1])
def test_security2_fixed_key_transcript(patch: int) -> None:
    """Proofs, key and nonces recomputed with RFC 5054's formulas, independent of srp6a."""
    b = bytes([0x42]) * 32
    session_nonce = bytes.fromhex("0102030405060708")
    device = Security2(SALT, VERIFIER, patch, random=fixed(b, session_nonce))
    client = Security2Client(b"wifiprov", b"abcd1234", patch, private=bytes([0x81]) * 32)
    device.new_session(9)
    cmd0 = session_pb2.SessionData.FromString(client.start())
    a_bytes = cmd0.sec2.sc0.client_pubkey
    assert cmd0.sec2.sc0.client_username == b"wifiprov"

    g, n = 5, N
    a = int.from_bytes(bytes([0x81]) * 32, "big")
    assert int.from_bytes(a_bytes, "big") == pow(g, a, n)
    resp0 = session_pb2.SessionData.FromString(device.handle(9, cmd0.SerializeToString()))
    b_bytes = resp0.sec2.sr0.device_pubkey
    assert resp0.sec2.sr0.device_salt == SALT
    pad = lambda v: v.to_bytes(384, "big")  # noqa: E731
    k = int.from_bytes(sha512(pad(n), pad(g)), "big")
    v = int.from_bytes(VERIFIER, "big")
    b_int = int.from_bytes(b, "big")
    assert int.from_bytes(b_bytes, "big") == (k * v + pow(g, b_int, n)) % n
    u = int.from_bytes(
        sha512(pad(int.from_bytes(a_bytes, "big")), pad(int.from_bytes(b_bytes, "big"))), "big"
    )
    s = pow(int.from_bytes(a_bytes, "big") * pow(v, u, n), b_int, n)
    key = sha512(s.to_bytes((s.bit_length() + 7) // 8, "big"))
    hn_hg = bytes(x ^ y for x, y in zip(sha512(pad(n)), sha512(pad(g)), strict=True))
    m = sha512(hn_hg, sha512(b"wifiprov"), SALT, a_bytes, b_bytes, key)

    cmd1 = client.step(resp0.SerializeToString())
    assert cmd1 is not None
    assert session_pb2.SessionData.FromString(cmd1).sec2.sc1.client_proof == m
    resp1 = session_pb2.SessionData.FromString(device.handle(9, cmd1))
    assert resp1.sec2.sr1.device_proof == sha512(a_bytes, m, key)
    assert resp1.sec2.sr1.device_nonce == session_nonce + b"\x00\x00\x00\x01"
    assert client.step(resp1.SerializeToString()) is None

    aead = AESGCM(key[:32])
    for n_request in (1, 2, 3):
        counter_req = 2 * n_request - 1 if patch else 1
        counter_resp = 2 * n_request if patch else 1
        nonce_req = session_nonce + counter_req.to_bytes(4, "big")
        nonce_resp = session_nonce + counter_resp.to_bytes(4, "big")
        sealed = client.encrypt(b"request %d" % n_request)
        assert sealed == aead.encrypt(nonce_req, b"request %d" % n_request, None)
        assert device.decrypt(9, sealed) == b"request %d" % n_request
        answer = device.encrypt(9, b"response")
        assert answer == aead.encrypt(nonce_resp, b"response", None)
        assert client.decrypt(answer) == b"response"


def test_security2_wrong_password_is_refused() -> None:
    events: list[SecurityEvent] = []
    device = Security2(SALT, VERIFIER)
    device.on_event = lambda event, _sid: events.append(event)
    client = Security2Client(b"wifiprov", b"wrong", 1)
    device.new_session(1)
    cmd1 = client.step(device.handle(1, client.start()))
    assert cmd1 is not None
    with pytest.raises(SessionError, match="wrong username or password"):
        device.handle(1, cmd1)
    assert events == [SecurityEvent.CREDENTIALS_MISMATCH]
    with pytest.raises(SessionError, match="not established"):
        device.encrypt(1, b"x")
    good = Security2Client(b"wifiprov", b"abcd1234", 1)
    handshake(device, good, session_id=2)
    assert device.decrypt(2, good.encrypt(b"fine")) == b"fine"


def test_security2_tampered_ciphertext_is_refused_and_counter_holds() -> None:
    device = Security2(SALT, VERIFIER)
    client = Security2Client(b"wifiprov", b"abcd1234", 1)
    handshake(device, client)
    sealed = bytearray(client.encrypt(b"payload"))
    sealed[0] ^= 1
    with pytest.raises(SessionError, match="tag mismatch"):
        device.decrypt(7, bytes(sealed))


@pytest.mark.parametrize(
    ("username", "public", "message"),
    [
        (b"", bytes(383) + b"\x05", "username of 0 bytes"),
        (b"u" * 65536, bytes(383) + b"\x05", "65536 bytes"),
        (b"u", bytes(100), "100 bytes"),
        (b"u", N.to_bytes(384, "big"), "0 mod N"),
    ],
)
def test_security2_refuses_bad_command0(username: bytes, public: bytes, message: str) -> None:
    events: list[SecurityEvent] = []
    device = Security2(SALT, VERIFIER)
    device.on_event = lambda event, _sid: events.append(event)
    device.new_session(1)
    request = session_pb2.SessionData(sec_ver=2)
    request.sec2.sc0.client_username = username
    request.sec2.sc0.client_pubkey = public
    with pytest.raises(SessionError, match=message):
        device.handle(1, request.SerializeToString())
    assert events == [SecurityEvent.INVALID_SECURITY_PARAMS]


def test_security2_refuses_msg_and_payload_that_disagree() -> None:
    device = Security2(SALT, VERIFIER)
    device.new_session(1)
    request = session_pb2.SessionData(sec_ver=2)
    request.sec2.msg = 0
    request.sec2.sc1.client_proof = bytes(64)
    with pytest.raises(SessionError, match="unexpected"):
        device.handle(1, request.SerializeToString())
    mixed = session_pb2.SessionData(sec_ver=2)
    mixed.sec1.sc0.client_pubkey = bytes(32)
    with pytest.raises(SessionError, match="carries sec1"):
        device.handle(1, mixed.SerializeToString())
