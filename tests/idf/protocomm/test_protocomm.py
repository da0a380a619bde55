"""The endpoint registry: version, security and request endpoints over one session."""

from __future__ import annotations

import pytest

from jumpstart.errors import InputError, UsageError
from jumpstart.idf.protocomm import Protocomm, Security1, Security1Client, SessionError


def echo_upper(_session: int, data: bytes) -> bytes:
    if data == b"bad":
        raise InputError("handler refuses")
    return data.upper()


def make() -> Protocomm:
    pc = Protocomm()
    pc.set_version("proto-ver", '{"prov": {"ver": "v1.1"}}')
    pc.set_security("prov-session", Security1(b"pop"))
    pc.add_endpoint("custom", echo_upper)
    return pc


def connect(pc: Protocomm, session_id: int) -> Security1Client:
    client = Security1Client(b"pop")
    pc.open_session(session_id)
    request: bytes | None = client.start()
    while request is not None:
        request = client.step(pc.handle("prov-session", session_id, request))
    return client


def test_version_endpoint_ignores_the_body_and_is_never_encrypted() -> None:
    pc = make()
    pc.open_session(1)
    assert pc.handle("proto-ver", 1, b"anything") == b'{"prov": {"ver": "v1.1"}}'


def test_request_endpoints_are_decrypted_and_encrypted() -> None:
    pc = make()
    client = connect(pc, 1)
    answer = pc.handle("custom", 1, client.encrypt(b"hello"))
    assert answer != b"HELLO"
    assert client.decrypt(answer) == b"HELLO"


def test_refusals() -> None:
    pc = make()
    client = connect(pc, 1)
    with pytest.raises(SessionError, match="no endpoint"):
        pc.handle("missing", 1, b"x")
    with pytest.raises(SessionError, match="handler refuses"):
        pc.handle("custom", 1, client.encrypt(b"bad"))
    pc.open_session(2)  # a new transport session replaces the first
    with pytest.raises(SessionError, match="no security session 1"):
        pc.handle("custom", 1, client.encrypt(b"x"))
    with pytest.raises(SessionError, match="not established"):
        pc.handle("custom", 2, b"x")


def test_registry_misuse() -> None:
    pc = make()
    with pytest.raises(UsageError):
        pc.add_endpoint("custom", echo_upper)
    with pytest.raises(UsageError):
        pc.set_security("other", Security1())
    pc.unset_security("prov-session")
    assert pc.endpoints == ["proto-ver", "custom"]
    assert pc.handle("custom", 0, b"plain") == b"PLAIN"
