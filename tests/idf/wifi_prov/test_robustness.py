"""Hostile input: random and mutated bodies on every endpoint, malformed HTTP and ATT.

The sans-I/O layer (protocomm + manager handlers, the code both transports call) takes 10,000
bodies per endpoint; the socket layers take a few hundred malformed exchanges each. After all
of it the device must still provision a real client.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import AsyncIterator, Callable

import pytest

from jumpstart.host.prov_client import ProvOptions, provision
from jumpstart.host.prov_transport import HttpTransport, ProvTransport, TransportError
from jumpstart.idf.event import EventLoop
from jumpstart.idf.log import EspLog
from jumpstart.idf.protocomm import (
    Protocomm,
    Security0,
    Security0Client,
    Security1,
    Security1Client,
    Security2,
    Security2Client,
    SecurityScheme,
    SessionError,
)
from jumpstart.idf.protocomm.httpd import MAX_BODY
from jumpstart.idf.radio import RadioWorld
from jumpstart.idf.timer import TimerService
from jumpstart.idf.wifi import Wifi
from jumpstart.idf.wifi_prov import ProvConfig, ProvState, SchemeSoftAP, WifiProvManager
from tests.idf.protocomm.test_security import SALT, VERIFIER
from tests.idf.wifi_prov.prov_helpers import HOME, OTHER, running_outlet

BODIES_PER_ENDPOINT = 10_000
ENDPOINTS = ["proto-ver", "prov-session", "prov-config", "prov-scan", "prov-ctrl"]
# Valid plaintext requests to mutate (the spec's example encodings and esp_prov's bare msgs).
SEEDS = {
    "proto-ver": [b"---", b"none", b"ESP"],
    "prov-session": [bytes.fromhex("5203a20100")],
    "prov-config": [
        bytes.fromhex("5200"),
        bytes.fromhex("0802620d0a07486f6d654e657412027077"),
        bytes.fromhex("0804"),
    ],
    "prov-scan": [
        bytes.fromhex("5208080110001805207872"),
        bytes.fromhex("0802"),
        bytes.fromhex("0804720408001001"),
    ],
    "prov-ctrl": [bytes.fromhex("0801"), bytes.fromhex("0803")],
}


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    choice = rng.random()
    if choice < 0.3:
        return rng.randbytes(rng.choice([1, 2, 3, 5, 8, 16, 64, 300, 1024, MAX_BODY]))
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.4 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif op < 0.6 and data:
            del data[rng.randrange(len(data)) :]
        elif op < 0.8:
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.randbytes(rng.randint(1, 6))
        else:
            data += rng.choice([b"\x08\xff\xff\xff\xff\x0f", b"\x52\x7f", b"\xa2\x01\x80\x80\x04"])
    return bytes(data) or b"\x00"


@contextlib.asynccontextmanager
async def manager_with(security: SecurityScheme) -> AsyncIterator[WifiProvManager]:
    lines: list[str] = []
    world = RadioWorld(None, [HOME, OTHER])
    events = EventLoop()
    events.start()
    timers = TimerService(asyncio.get_running_loop())
    log = EspLog(lambda: 0, lines.append)
    wifi = Wifi(world, events, log, bytes.fromhex("240ac4000001"), "fuzzed")
    manager = WifiProvManager(ProvConfig(SchemeSoftAP()), wifi, events, timers, log)
    await manager.start_provisioning(security, "PROV_FUZZ")
    try:
        yield manager
    finally:
        await manager.stop_provisioning()
        await wifi.stop()
        await events.stop()


class Direct(ProvTransport):
    """A client talking to protocomm in-process, as a transport would on its behalf."""

    def __init__(self, pc: Protocomm, session_id: int) -> None:
        self.pc = pc
        self.session_id = session_id
        self.loop = asyncio.get_running_loop()
        pc.open_session(session_id)

    async def _handle(self, endpoint: str, data: bytes) -> bytes:
        return self.pc.handle(endpoint, self.session_id, data)

    def send(self, endpoint: str, data: bytes) -> bytes:
        # Called from the client's thread; the device handles requests on its own loop.
        future = asyncio.run_coroutine_threadsafe(self._handle(endpoint, data), self.loop)
        return future.result(10)

    def close(self) -> None:
        self.pc.close_session(self.session_id)


def fuzz(pc: Protocomm, endpoint: str, rng: random.Random, count: int, session_id: int) -> int:
    refused = 0
    for _ in range(count):
        try:
            pc.handle(endpoint, session_id, mutate(rng, SEEDS[endpoint]))
        except SessionError:
            refused += 1
    return refused


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_ten_thousand_bodies_per_endpoint_then_a_client_still_connects(endpoint: str) -> None:
    async def main() -> None:
        async with manager_with(Security0()) as manager:
            pc = manager.protocomm
            assert pc is not None
            pc.open_session(1)
            refused = fuzz(pc, endpoint, random.Random(endpoint), BODIES_PER_ENDPOINT, 1)
            if endpoint != "proto-ver":
                assert refused > 0  # the fuzzer did reach the refusal paths
            manager.reset_on_failure()  # a fuzzed ApplyConfig may have failed the run
            link = Direct(pc, 2)
            options = ProvOptions(ssid="HomeNet", passphrase="correct-horse", poll_interval_s=0.05)
            if manager.state is ProvState.CRED_RECV:
                # A fuzzed SetConfig + ApplyConfig got through: let it fail, then reset.
                for _ in range(100):
                    await asyncio.sleep(0.05)
                    if manager.state is ProvState.FAIL:
                        break
                assert manager.reset_on_failure()
            assert manager.state is ProvState.STARTED
            assert await asyncio.to_thread(provision, link, options, lambda _: None)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("scheme", "count"),
    [
        (lambda: Security1(b"pop"), BODIES_PER_ENDPOINT),
        (lambda: Security2(SALT, VERIFIER), BODIES_PER_ENDPOINT),
    ],
    ids=["sec1", "sec2"],
)
def test_session_endpoint_fuzz_under_real_security(
    scheme: Callable[[], SecurityScheme], count: int
) -> None:
    """Mutations of real Command0 messages reach the key exchange and the proof check."""

    async def main() -> None:
        async with manager_with(scheme()) as manager:
            pc = manager.protocomm
            assert pc is not None
            pc.open_session(1)
            if isinstance(pc.security, Security1):
                seeds = [Security1Client(b"pop").start()]
            else:
                seeds = [Security2Client(b"wifiprov", b"abcd1234").start()]
            rng = random.Random(7)
            for _ in range(count):
                body = mutate(rng, seeds)
                with contextlib.suppress(SessionError):
                    pc.handle("prov-session", 1, body)
                for name in ("prov-config", "prov-scan"):
                    with contextlib.suppress(SessionError):
                        pc.handle(name, 1, rng.randbytes(rng.randint(1, 64)))
            version = pc.handle("proto-ver", 1, b"x")
            assert b'"prov"' in version

    asyncio.run(main())


def raw_exchange(endpoint: str, payload: bytes) -> bytes:
    host, port = endpoint.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_http_bodies_of_0_and_4097_bytes_and_garbage_are_closed_without_answer() -> None:
    async def main() -> None:
        async with running_outlet(prov_security=1) as outlet:
            endpoint = outlet.endpoint()

            def attack() -> list[bytes]:
                answers = []
                for length in (0, MAX_BODY + 1):
                    request = (
                        f"POST /proto-ver HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
                    ).encode() + b"a" * length
                    answers.append(raw_exchange(endpoint, request))
                ok = raw_exchange(
                    endpoint, b"POST /proto-ver HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na"
                )
                answers.append(ok)
                rng = random.Random(1)
                for _ in range(300):
                    junk = rng.choice(
                        [
                            rng.randbytes(rng.randint(1, 200)),
                            b"POST /prov-session HTTP/1.1\r\nContent-Length: 8\r\n\r\n"
                            + rng.randbytes(8),
                            b"GET /prov-config HTTP/1.1\r\nHost: x\r\n\r\n",
                            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                        ]
                    )
                    raw_exchange(endpoint, junk)
                return answers

            zero, too_big, fine = await asyncio.to_thread(attack)
            assert zero == b""
            assert too_big == b""
            assert fine.startswith(b"HTTP/1.1 200")
            assert b"\r\nSet-Cookie: session=" in fine  # ESP-IDF's spelling, exactly
            options = ProvOptions(
                pop="abcd1234", ssid="HomeNet", passphrase="correct-horse", poll_interval_s=0.05
            )

            def client() -> bool:
                link = HttpTransport(endpoint)
                try:
                    return provision(link, options, lambda _: None)
                finally:
                    link.close()

            assert await asyncio.to_thread(client)

    asyncio.run(main())


def test_a_second_http_client_replaces_the_first_session() -> None:
    async def main() -> None:
        async with running_outlet(prov_security=1) as outlet:
            endpoint = outlet.endpoint()

            def two_clients() -> None:
                from jumpstart.host.prov_client import ProvClient  # noqa: PLC0415

                first = ProvClient(HttpTransport(endpoint), Security1Client(b"abcd1234"))
                first.establish_session()
                assert first.get_status().state == "Connecting"
                second = ProvClient(HttpTransport(endpoint), Security1Client(b"abcd1234"))
                second.establish_session()
                assert first.transport.cookie != second.transport.cookie  # type: ignore[attr-defined]
                with pytest.raises(TransportError, match="Connection Failure"):
                    first.get_status()
                assert second.get_status().state == "Connecting"

            await asyncio.to_thread(two_clients)

    asyncio.run(main())


def test_ble_garbage_pdus_get_att_errors_and_the_link_survives() -> None:
    async def main() -> None:
        async with running_outlet(prov_transport="ble", prov_security=0) as outlet:
            advert = outlet.advert()
            assert advert is not None
            host, port = advert.endpoint.split(":")

            def attack() -> bytes:
                rng = random.Random(3)
                with socket.create_connection((host, int(port)), timeout=5) as sock:
                    for _ in range(500):
                        pdu = rng.randbytes(rng.randint(0, 40))
                        if pdu[:1] in (b"\x12", b"\x16", b"\x18"):
                            continue  # writes reach protocomm; they are fuzzed above
                        sock.sendall(struct.pack("<H", len(pdu)) + pdu)
                        (length,) = struct.unpack("<H", sock.recv(2, socket.MSG_WAITALL))
                        sock.recv(length, socket.MSG_WAITALL)
                    # Still a working GATT server: read the proto-ver characteristic's name.
                    probe = struct.pack("<BH", 0x0A, 1)
                    sock.sendall(struct.pack("<H", len(probe)) + probe)
                    (length,) = struct.unpack("<H", sock.recv(2, socket.MSG_WAITALL))
                    return sock.recv(length, socket.MSG_WAITALL)

            answer = await asyncio.to_thread(attack)
            assert answer[0] == 0x0B  # Read Response: the service declaration

    asyncio.run(main())


def test_security0_client_smoke() -> None:
    assert Security0Client().start() == bytes.fromhex("5203a20100")
