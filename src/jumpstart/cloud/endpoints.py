"""The cloud's default ports and the broker modes of ``jumpstart cloud serve``."""

from __future__ import annotations

import asyncio
import errno
import random
import socket
import zlib
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from jumpstart.errors import InputError

__all__ = [
    "DASHBOARD_PORT",
    "FIRMWARE_PORT",
    "MQTT_PORT",
    "REST_PORT",
    "BrokerMode",
    "NatsAddress",
    "PortError",
    "Shard",
    "check_port",
    "parse_broker",
    "parse_nats_servers",
    "parse_shard",
]

# AWS IoT's ports: MQTT over TLS on 8883, the REST data endpoint on 8443.
MQTT_PORT = 8883
REST_PORT = 8443
# Firmware images over HTTPS: the port of ESP-IDF's OTA examples (simple_ota_example).
FIRMWARE_PORT = 8070
# The operators' dashboard (plain HTTP on 127.0.0.1, behind a token).
DASHBOARD_PORT = 8088

MAX_PORT = 65535
MAX_BROKER_TEXT = 4096  # a --broker value: a few dozen servers at most


class PortError(InputError):
    """A port that cannot be listened on; names the option that changes it."""

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option


# Linux's default range of ports it gives outgoing connections (ip_local_port_range).
EPHEMERAL_PORTS = (32768, 60999)
PORT_PICKS = 64


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return EPHEMERAL_PORTS


def free_port(host: str) -> int:
    """A port nobody listens on now (for a child server that must be told its port), below
    the range the kernel gives outgoing connections: a port picked from that range can be
    taken by some client's connection before the child binds it ("address in use")."""
    low, _ = _ephemeral_range()
    for _ in range(PORT_PICKS):
        port = random.randrange(1024, low) if low > 2048 else 0
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


async def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port`` (a child server is up)."""
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    return True


def check_port(value: int, option: str) -> int:
    """``value`` if it is a TCP port (0 asks for a free one), else PortError."""
    if not 0 <= value <= MAX_PORT:
        raise PortError(
            f"{option} {value} is not a port: use 1-{MAX_PORT}, or 0 for any free one", option
        )
    return value


async def listen_on(port: int, option: str, start: Awaitable[int]) -> int:
    """Await a server's ``start``; a port that is taken (or not ours) becomes PortError."""
    try:
        return await start
    except OSError as err:
        reason = err.strerror or str(err)
        if err.errno == errno.EADDRINUSE:
            reason = "it is in use by another program"
        raise PortError(
            f"cannot listen on port {port} ({option}): {reason}; choose another with"
            f" {option} PORT (0 picks a free one)",
            option,
        ) from None


NATS_CLIENT_PORT = 4222  # nats-server's default client port


@dataclass(frozen=True, slots=True)
class NatsAddress:
    """The client ports of a NATS cluster's nodes (any one will do; the rest are for
    failover)."""

    servers: tuple[tuple[str, int], ...]

    def urls(self) -> list[str]:
        return [f"tls://{host}:{port}" for host, port in self.servers]

    def __str__(self) -> str:
        return "nats://" + ",".join(f"{host}:{port}" for host, port in self.servers)


def parse_nats_servers(text: str) -> NatsAddress:
    """``nats://HOST:PORT[,HOST:PORT...]`` (a port left out is 4222)."""
    servers = []
    for part in text.removeprefix("nats://").split(","):
        host, colon, port = part.rpartition(":")
        if not colon:
            host, port = part, str(NATS_CLIENT_PORT)
        host = host.removeprefix("[").removesuffix("]")
        if not host or "/" in host or not port.isdigit() or not 0 < int(port) <= MAX_PORT:
            raise InputError(
                f"{part[:80]!r} is not HOST:PORT: use nats://HOST:PORT[,HOST:PORT...],"
                " e.g. nats://127.0.0.1:14222,127.0.0.1:14223"
            )
        servers.append((host, int(port)))
    return NatsAddress(tuple(servers))


EMBEDDED = "embedded"
MOSQUITTO = "mosquitto"
NATS = "nats"


@dataclass(frozen=True, slots=True)
class BrokerMode:
    """``embedded`` (the gateway), ``mosquitto`` or ``nats`` (started by the cloud), an
    external MQTT broker at ``host:port``, or a NATS cluster that runs already (``nats``
    with ``servers``)."""

    kind: str
    host: str = ""
    port: int = 0
    servers: NatsAddress | None = None

    @property
    def external(self) -> bool:
        return self.kind != EMBEDDED

    def __str__(self) -> str:
        if self.servers is not None:
            return str(self.servers)
        return f"mqtts://{self.host}:{self.port}" if self.kind == "mqtts" else self.kind


def parse_broker(text: str) -> BrokerMode:
    if text in (EMBEDDED, MOSQUITTO, NATS):
        return BrokerMode(text)
    if text.startswith("nats://") and len(text) <= MAX_BROKER_TEXT:
        return BrokerMode(NATS, servers=parse_nats_servers(text))
    url = urlsplit(text)
    if url.scheme == "mqtts" and url.hostname and not url.path.strip("/"):
        try:
            port = url.port or MQTT_PORT
        except ValueError:
            port = 0
        if port:
            return BrokerMode("mqtts", url.hostname, port)
    raise InputError(
        f"unknown broker {text[:80]!r}: use 'embedded', 'mosquitto', 'nats',"
        " mqtts://HOST:PORT or nats://HOST:PORT[,HOST:PORT...]"
    )


@dataclass(frozen=True, slots=True)
class Shard:
    """Which things' requests one engine instance serves on a shared external broker.

    Every instance receives every request (no tested broker delivers ``$share``
    subscriptions on ``$aws`` topics, spec/cloud.md 7), so each serves only the things whose
    name hashes to its index: a request is served exactly once.
    """

    index: int = 0
    count: int = 1

    def owns(self, thing: str) -> bool:
        return self.count == 1 or zlib.crc32(thing.encode()) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``I/N``: instance I (from 0) of N."""
    index, _, count = text.partition("/")
    if index.isdigit() and count.isdigit() and 0 <= int(index) < int(count):
        return Shard(int(index), int(count))
    raise InputError(f"--shard must be I/N with 0 <= I < N, e.g. 0/2, not {text!r}")
