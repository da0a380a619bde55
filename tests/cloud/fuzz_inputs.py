"""Mutated and random MQTT inputs for the gateway fuzz tests, from a fixed seed.

Each input is what one client sends on a fresh connection: either raw bytes before any
CONNECT, or a valid CONNECT followed by the fuzzed bytes (so the connected state's packet
handling is reached too). Mutations start from valid packets of both protocol versions.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

from jumpstart.formats.mqtt import (
    Auth,
    Connect,
    Disconnect,
    MqttError,
    Packet,
    PacketReader,
    PingReq,
    PropertyId,
    ProtocolVersion,
    PubAck,
    Publish,
    PubRel,
    Subscribe,
    Subscription,
    Unsubscribe,
    Will,
    encode_packet,
)

V3, V5 = ProtocolVersion.MQTT311, ProtocolVersion.MQTT5
# CI runs the fuzz tests at their bounded size; `make fuzz` runs them 20 times larger.
FUZZ_SCALE = int(os.environ.get("JUMPSTART_FUZZ_SCALE", "1"))


def seed_packets(thing: str, version: ProtocolVersion) -> list[Packet]:
    shadow = f"$aws/things/{thing}/shadow"
    jobs = f"$aws/things/{thing}/jobs"
    return [
        Connect(client_id=thing, protocol_version=version, keep_alive=30),
        Connect(
            client_id=f"{thing}-w",
            protocol_version=version,
            clean_start=False,
            will=Will(f"{shadow}/update", b'{"state":{}}', qos=1),
            username="?SDK=Python",
            properties={PropertyId.SESSION_EXPIRY_INTERVAL: 60},
        ),
        Publish(f"{shadow}/update", b'{"state":{"reported":{"output":true}}}', qos=1, packet_id=7),
        Publish(f"{shadow}/get", b"{}", qos=0),
        Publish(f"{shadow}/name/n1/update", b'{"state":{"desired":{"a":[1,{"b":null}]}}}'),
        Publish(f"{jobs}/start-next", b'{"clientToken":"x","stepTimeoutInMinutes":5}', qos=0),
        Publish(f"{jobs}/j1/update", b'{"status":"SUCCEEDED","expectedVersion":2}', qos=0),
        Publish("plain/topic", b"x" * 40, qos=1, packet_id=9, retain=True),
        Subscribe(3, (Subscription(f"{shadow}/#", qos=1), Subscription(f"{jobs}/+", qos=0))),
        Unsubscribe(4, (f"{shadow}/#",)),
        PubAck(5),
        PubRel(6),
        PingReq(),
        Disconnect(),
        Auth(),
    ]


def _encodings(thing: str) -> list[tuple[ProtocolVersion, bytes]]:
    found = []
    for version in (V3, V5):
        for packet in seed_packets(thing, version):
            if isinstance(packet, Auth) and version is V3:
                continue
            found.append((version, encode_packet(packet, version)))
    return found


def _mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(7)
        if choice == 0 and buf:  # flip bits
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif choice == 1 and buf:  # a random byte
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif choice == 2:  # truncate
            del buf[rng.randrange(len(buf) + 1) :]
        elif choice == 3:  # insert random bytes
            i = rng.randrange(len(buf) + 1)
            buf[i:i] = rng.randbytes(rng.randint(1, 8))
        elif choice == 4 and len(buf) > 1:  # a hostile remaining length
            buf[1:2] = rng.choice([b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f", b"\x80\x00", b"\x00"])
        elif choice == 5:  # splice another packet in
            i = rng.randrange(len(buf) + 1)
            buf[i:i] = rng.choice(pool)
        elif choice == 6 and buf:  # another packet type in the first byte
            buf[0] = (rng.randrange(16) << 4) | rng.randrange(16)
    return bytes(buf)


@dataclass(frozen=True)
class FuzzInput:
    version: ProtocolVersion
    connect: bytes  # a valid CONNECT sent first, or b""
    data: bytes

    def malformed(self) -> bool:
        """Does the codec itself reject these bytes (so the gateway must close)?"""
        reader = PacketReader(self.version if self.connect else None)
        try:
            for _ in reader.feed(self.data):
                pass
        except MqttError:
            return True
        return False


def fuzz_inputs(count: int, thing: str, seed: int = 20261124) -> Iterator[FuzzInput]:
    rng = random.Random(seed)
    encodings = _encodings(thing)
    pool = [data for _, data in encodings]
    for n in range(count):
        version = rng.choice((V3, V5))
        connected = n % 2 == 1
        hello = Connect(client_id=f"{thing}-{n}", protocol_version=version, keep_alive=30)
        connect = encode_packet(hello, version)
        if rng.random() < 0.15:
            data = rng.randbytes(rng.randint(1, 64))
        else:
            same_version = [d for v, d in encodings if v is version]
            data = _mutate(rng, rng.choice(same_version), pool)
            if rng.random() < 0.3:  # a valid packet before the bad one
                data = rng.choice(same_version) + data
        yield FuzzInput(version, connect if connected else b"", data)
