"""Cloud benchmarks: 1,000 mTLS device connections to the gateway, next to mosquitto.

The cloud runs as ``jumpstart cloud serve`` in its own process (its memory is measured from
/proc), mosquitto 2 with the same CA and certificates as the baseline, both with
TCP_NODELAY. The clients are one asyncio process using jumpstart's MQTT codec. Figures:
connect rate, memory per idle connection, raw publish -> receive round trip (idle and with
1,000 online), shadow updates per second, REST POST desired -> device delta, and awscrt's
update -> accepted round trip. Targets (the cloud issue): REST -> delta p99 <= 10 ms with
1,000 online, <= 60 KiB per idle connection, awscrt round trip < 2 ms.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import getpass
import json
import re
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from awscrt import mqtt, mqtt5, mqtt_request_response
from awsiot import iotshadow, mqtt5_client_builder, mqtt_connection_builder

from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.registry import Role
from jumpstart.formats.mqtt import (
    ConnAck,
    Connect,
    PacketReader,
    ProtocolVersion,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    Subscription,
    encode_packet,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.cloud import cloud_process

DEVICES = 1000
CONNECT_CONCURRENCY = 50
ROUND_TRIPS = 300  # paced, one every 2 ms
UPDATES_PER_DEVICE = 5
REST_SAMPLES = 300
AWSCRT_SAMPLES = 50
V311 = ProtocolVersion.MQTT311
# CPython's asyncio TLS keeps a 256 KiB read buffer per connection (sslproto.py); 1,000
# client connections in this process would otherwise cost 256 MiB (spec/cloud.md 6).
asyncio.sslproto.SSLProtocol.max_size = 16 * 1024


def _percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Credentials:
    cert: Path
    key: Path


class BenchClient:
    """A minimal MQTT 3.1.1 client over asyncio TLS on jumpstart's codec."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[str, bytes, float]] = asyncio.Queue()
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._next_id = 0
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, port: int, context: ssl.SSLContext, client_id: str) -> BenchClient:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writer = writer
        parser = PacketReader(V311)
        writer.write(encode_packet(Connect(client_id=client_id, keep_alive=600), V311))
        while True:
            data = await reader.read(4096)
            if not data:
                raise ConnectionError(f"{client_id}: closed before CONNACK")
            packets = list(parser.feed(data))
            if packets:
                break
        ack = packets[0]
        if not isinstance(ack, ConnAck) or ack.reason_code != 0:
            raise ConnectionError(f"{client_id}: refused ({ack})")
        self._task = asyncio.create_task(self._read(reader, parser))
        return self

    async def _read(self, reader: asyncio.StreamReader, parser: PacketReader) -> None:
        while data := await reader.read(65536):
            now = time.perf_counter()
            for packet in parser.feed(data):
                if isinstance(packet, Publish):
                    if packet.qos and packet.packet_id is not None and self._writer:
                        self._writer.write(encode_packet(PubAck(packet.packet_id), V311))
                    self.messages.put_nowait((packet.topic, packet.payload, now))
                elif isinstance(packet, (PubAck, SubAck)):
                    future = self._acks.pop(packet.packet_id, None)
                    if future is not None and not future.done():
                        future.set_result(None)

    def _packet_id(self) -> tuple[int, asyncio.Future[None]]:
        self._next_id = self._next_id % 0xFFFF + 1
        future = asyncio.get_running_loop().create_future()
        self._acks[self._next_id] = future
        return self._next_id, future

    async def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        assert self._writer is not None
        packet_id, acked = self._packet_id()
        subscription = (Subscription(topic_filter, qos=qos),)
        self._writer.write(encode_packet(Subscribe(packet_id, subscription), V311))
        await acked

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> asyncio.Future[None] | None:
        assert self._writer is not None
        if qos == 0:
            self._writer.write(encode_packet(Publish(topic, payload), V311))
            return None
        packet_id, acked = self._packet_id()
        self._writer.write(encode_packet(Publish(topic, payload, 1, packet_id=packet_id), V311))
        return acked

    async def expect(self, prefix: str, timeout: float = 10) -> tuple[str, bytes, float]:
        while True:
            topic, payload, at = await asyncio.wait_for(self.messages.get(), timeout)
            if topic.startswith(prefix):
                return topic, payload, at

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()


def _context(ca: Path, creds: Credentials) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(creds.cert), str(creds.key))
    return context


# --- the servers -----------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[str] | subprocess.Popen[bytes]
    mqtt_port: int
    rest_port: int = 0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_cloud(root: Path, broker: str = "embedded") -> Server:
    """``jumpstart cloud serve`` on free ports, as the tests start it."""
    started = cloud_process.serve(root, broker=broker)
    name = "jumpstart" if broker == "embedded" else f"jumpstart-{broker}"
    return Server(name, started.process, started.mqtt_port, started.rest_port)


def _start_mosquitto(home: CloudHome, folder: Path) -> Server | None:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        return None
    port = _free_port()
    config = folder / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        f"cafile {home.ca_pem}\ncertfile {home.server_pem}\nkeyfile {home.server_key}\n"
        "require_certificate true\nuse_identity_as_username true\n"
        "set_tcp_nodelay true\npersistence false\nlog_dest none\nmax_connections -1\n"
        # mosquitto run by root drops to a 'mosquitto' user that cannot read our files.
        f"user {getpass.getuser()}\n"
    )
    # stderr: mosquitto warns that it runs as root, which it must to read our files here.
    process = subprocess.Popen([binary, "-c", str(config)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return Server("mosquitto", process, port)
        time.sleep(0.05)
    process.kill()
    return None


# --- measurements ------------------------------------------------------------------------


async def _round_trips(port: int, context: ssl.SSLContext, tag: str) -> list[float]:
    """Paced QoS 1 publish -> receive by a second client, in ms."""
    subscriber = await BenchClient().connect(port, context, f"rt-sub-{tag}")
    publisher = await BenchClient().connect(port, context, f"rt-pub-{tag}")
    topic = f"bench/rt/{tag}"
    await subscriber.subscribe(topic)
    samples = []
    try:
        for n in range(ROUND_TRIPS):
            sent = time.perf_counter()
            publisher.publish(topic, str(n).encode(), qos=1)
            _, _, received = await subscriber.expect(topic)
            samples.append((received - sent) * 1000)
            await asyncio.sleep(0.002)
    finally:
        await subscriber.close()
        await publisher.close()
    return samples


async def _shadow_round_trips(port: int, context: ssl.SSLContext, thing: str) -> list[float]:
    """Paced update -> accepted round trips of one device, in ms."""
    device = await BenchClient().connect(port, context, f"{thing}-rt")
    topic = f"$aws/things/{thing}/shadow/name/rt/update"
    await device.subscribe(f"{topic}/accepted")
    samples = []
    try:
        for n in range(ROUND_TRIPS):
            body = json.dumps({"state": {"reported": {"n": n}}}).encode()
            sent = time.perf_counter()
            device.publish(topic, body, qos=1)
            _, _, received = await device.expect(f"{topic}/accepted")
            samples.append((received - sent) * 1000)
            await asyncio.sleep(0.002)
    finally:
        await device.close()
    return samples


async def _connect_all(
    port: int, ca: Path, creds: list[tuple[str, Credentials]]
) -> tuple[list[BenchClient], float]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(name: str, cred: Credentials) -> BenchClient:
        async with gate:
            return await BenchClient().connect(port, _context(ca, cred), name)

    start = time.perf_counter()
    clients = await asyncio.gather(*(one(name, cred) for name, cred in creds))
    return list(clients), time.perf_counter() - start


async def _update_rate(clients: list[BenchClient], names: list[str]) -> float:
    """Every device reports UPDATES_PER_DEVICE times, each awaiting its accepted reply."""
    for client, name in zip(clients, names, strict=True):
        await client.subscribe(f"$aws/things/{name}/shadow/update/accepted")

    async def device(client: BenchClient, name: str) -> None:
        for n in range(UPDATES_PER_DEVICE):
            body = json.dumps({"state": {"reported": {"output": n % 2 == 0, "n": n}}})
            client.publish(f"$aws/things/{name}/shadow/update", body.encode())
            await client.expect(f"$aws/things/{name}/shadow/update/accepted")

    start = time.perf_counter()
    await asyncio.gather(*(device(c, n) for c, n in zip(clients, names, strict=True)))
    return len(clients) * UPDATES_PER_DEVICE / (time.perf_counter() - start)


async def _rest_to_delta(
    server: Server, ca: Path, admin: Credentials, client: BenchClient, thing: str
) -> list[float]:
    """POST desired over one keep-alive HTTPS connection; ms until the device has the delta."""
    await client.subscribe(f"$aws/things/{thing}/shadow/update/delta")
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.rest_port, ssl=_context(ca, admin), server_hostname="localhost"
    )
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples = []
    try:
        for n in range(REST_SAMPLES):
            # "seq" is never reported, so every POST leaves a delta for the device.
            body = json.dumps({"state": {"desired": {"output": n % 2 == 0, "seq": n}}}).encode()
            request = (
                f"POST /things/{thing}/shadow HTTP/1.1\r\nHost: localhost\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            sent = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"content-length: (\d+)", head, re.I)
            reply = await reader.readexactly(int(length[1]) if length else 0)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"REST update failed: {head!r} {reply!r}")
            # The arrival time is taken by the reader task, so waiting here adds nothing.
            _, _, received = await client.expect(f"$aws/things/{thing}/shadow/update/delta")
            samples.append((received - sent) * 1000)
            await asyncio.sleep(0.002)
    finally:
        writer.close()
    return samples


def _awscrt_round_trip(server: Server, ca: Path, creds: Credentials, thing: str) -> list[float]:
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",
        port=server.mqtt_port,
        cert_filepath=str(creds.cert),
        pri_key_filepath=str(creds.key),
        ca_filepath=str(ca),
        client_id=f"{thing}-crt",
        clean_session=True,
        keep_alive_secs=60,
    )
    connection.connect().result(10)
    accepted = threading.Event()
    topic = f"$aws/things/{thing}/shadow/update"
    subscribed, _ = connection.subscribe(
        f"{topic}/accepted", mqtt.QoS.AT_LEAST_ONCE, lambda **_kwargs: accepted.set()
    )
    subscribed.result(5)
    samples = []
    try:
        for n in range(AWSCRT_SAMPLES + 5):
            accepted.clear()
            body = json.dumps({"state": {"reported": {"crt": n}}})
            sent = time.perf_counter()
            connection.publish(topic, body, mqtt.QoS.AT_LEAST_ONCE)
            assert accepted.wait(5)
            if n >= 5:  # the first few warm the connection up
                samples.append((time.perf_counter() - sent) * 1000)
    finally:
        connection.disconnect().result(5)
    return samples


def _shadow_v2_round_trips(
    server: Server, ca: Path, creds: Credentials, thing: str, mode: str
) -> list[float]:
    """awsiotsdk's request-response shadow client (IotShadowClientV2): update_shadow ->
    accepted, over MQTT 3.1.1 ("311"), MQTT 5 as built by default ("5"), or MQTT 5 without
    awscrt's IoT Core flow control ("5-no-flow-control")."""
    common = {
        "endpoint": "localhost",
        "port": server.mqtt_port,
        "cert_filepath": str(creds.cert),
        "pri_key_filepath": str(creds.key),
        "ca_filepath": str(ca),
        "client_id": f"{thing}-v2",  # beside the fleet's own connection of this thing
    }
    options = mqtt_request_response.ClientOptions(
        max_request_response_subscriptions=4,
        max_streaming_subscriptions=4,
        operation_timeout_in_seconds=5,
    )
    stop: Callable[[], None]
    if mode == "311":
        connection = mqtt_connection_builder.mtls_from_path(
            clean_session=True, keep_alive_secs=60, **common
        )
        connection.connect().result(10)
        client = iotshadow.IotShadowClientV2(connection, options)

        def stop() -> None:
            connection.disconnect().result(5)

    else:
        connected: Future[None] = Future()
        stopped: Future[None] = Future()
        extra = {}
        if mode == "5-no-flow-control":
            extra["extended_validation_and_flow_control_options"] = (
                mqtt5.ExtendedValidationAndFlowControlOptions.NONE
            )
        mqtt5_client = mqtt5_client_builder.mtls_from_path(
            on_lifecycle_connection_success=lambda _data: connected.set_result(None),
            on_lifecycle_stopped=lambda _data: stopped.set_result(None),
            **common,
            **extra,
        )
        mqtt5_client.start()
        connected.result(10)
        client = iotshadow.IotShadowClientV2(mqtt5_client, options)

        def stop() -> None:
            mqtt5_client.stop()
            stopped.result(10)

    samples = []
    try:
        for n in range(AWSCRT_SAMPLES + 5):
            request = iotshadow.UpdateShadowRequest(
                thing_name=thing, state=iotshadow.ShadowState(reported={"v2": n})
            )
            sent = time.perf_counter()
            client.update_shadow(request).result(5)
            if n >= 5:
                samples.append((time.perf_counter() - sent) * 1000)
    finally:
        del client
        stop()
    return samples


def _row(name: str, ours: float, base: float | None, unit: str, target: str = "") -> None:
    base_text = f"mosquitto {base:9.2f} {unit:<5}" if base is not None else " " * 25
    ratio = f"ratio {ours / base:6.2f}" if base else " " * 12
    print(f"{name:<44} ours {ours:9.2f} {unit:<5} {base_text} {ratio}  {target}")


def _target(ok: bool, text: str) -> str:
    return f"target {text}: {'met' if ok else 'MISSED'}"


async def _fleet(
    server: Server, ca: Path, creds: list[tuple[str, Credentials]]
) -> tuple[list[BenchClient], float, float]:
    before = _rss_kib(server.process.pid)
    clients, elapsed = await _connect_all(server.mqtt_port, ca, creds)
    await asyncio.sleep(1.0)  # let the server settle before reading its memory
    per_connection = (_rss_kib(server.process.pid) - before) / len(clients)
    return clients, len(clients) / elapsed, per_connection


def bench_cloud() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        home = CloudHome(folder / "cloud")
        home.ensure()
        ca = home.ca_pem
        start = time.perf_counter()
        creds: list[tuple[str, Credentials]] = []
        with home.registry() as registry:
            for n in range(DEVICES):
                name = f"bench{n:04d}"
                registry.create_thing(name)
                creds.append((name, _write(folder, name, registry.issue(name, Role.DEVICE))))
            app = _write(folder, "bench-app", registry.issue("bench-app", Role.APP))
            admin = _write(folder, "bench-admin", registry.issue("bench-admin", Role.ADMIN))
        print(f"issued {DEVICES} device certificates in {time.perf_counter() - start:.1f} s")
        cloud = _start_cloud(folder)
        mosquitto = _start_mosquitto(home, folder)
        if mosquitto is None:
            print("mosquitto not found (apt-get install mosquitto): no baseline column")
        try:
            embedded = asyncio.run(_measure(cloud, mosquitto, ca, creds, app, admin))
        finally:
            cloud.stop()
            if mosquitto is not None:
                mosquitto.stop()
        if mosquitto is not None:
            external = _start_cloud(folder, "mosquitto")
            try:
                asyncio.run(_measure_external(external, ca, creds, embedded))
            finally:
                external.stop()


def _write(folder: Path, name: str, issued: object) -> Credentials:
    cert, key = folder / f"{name}.cert", folder / f"{name}.key"
    cert.write_bytes(issued.cert_pem)  # type: ignore[attr-defined]
    key.write_bytes(issued.key_pem)  # type: ignore[attr-defined]
    return Credentials(cert, key)


async def _measure(
    cloud: Server,
    mosquitto: Server | None,
    ca: Path,
    creds: list[tuple[str, Credentials]],
    app: Credentials,
    admin: Credentials,
) -> dict[str, float]:
    app_context = _context(ca, app)
    idle: dict[str, list[float]] = {}
    loaded: dict[str, list[float]] = {}
    fleet: dict[str, tuple[float, float]] = {}
    results: dict[str, float] = {}
    for server in (s for s in (cloud, mosquitto) if s is not None):
        idle[server.name] = await _round_trips(server.mqtt_port, app_context, "idle")
        clients, rate, memory = await _fleet(server, ca, creds)
        fleet[server.name] = (rate, memory)
        print(f"{server.name}: {len(clients)} connections at {rate:.0f}/s, {memory:.1f} KiB each")
        loaded[server.name] = await _round_trips(server.mqtt_port, app_context, "loaded")
        if server is cloud:
            names = [name for name, _ in creds]
            results["updates"] = await _update_rate(clients, names)
            rest = await _rest_to_delta(server, ca, admin, clients[0], names[0])
            results["rest50"] = statistics.median(rest)
            results["rest99"] = _percentile(rest, 99)
            crt = await asyncio.to_thread(_awscrt_round_trip, server, ca, creds[1][1], names[1])
            results["crt50"] = statistics.median(crt)
            results["crt99"] = _percentile(crt, 99)
            for mode in ("311", "5", "5-no-flow-control"):
                v2 = await asyncio.to_thread(
                    _shadow_v2_round_trips, server, ca, creds[3][1], names[3], mode
                )
                results[f"v2-{mode}"] = statistics.median(v2)
            shadow = await _shadow_round_trips(
                server.mqtt_port, _context(ca, creds[2][1]), names[2]
            )
            results["shadow50"] = statistics.median(shadow)
            results["shadow99"] = _percentile(shadow, 99)
        for client in clients:
            await client.close()
        await asyncio.sleep(0.5)

    def base(table: dict[str, list[float]], p: float) -> float | None:
        return _percentile(table["mosquitto"], p) if "mosquitto" in table else None

    print()
    print(f"{DEVICES} mTLS devices; mosquitto measured in the same run with the same clients")
    _row("connect rate", fleet["jumpstart"][0], _get(fleet, 0), "/s")
    memory = fleet["jumpstart"][1]
    _row(
        "memory per idle connection", memory, _get(fleet, 1), "KiB", _target(memory <= 60, "<= 60")
    )
    for label, table in (("idle", idle), (f"{DEVICES} online", loaded)):
        for p in (50, 99):
            ours = _percentile(table["jumpstart"], p)
            _row(f"raw publish -> receive p{p}, {label}", ours, base(table, p), "ms")
    mosquitto_p99 = base(loaded, 99)
    _row("shadow updates (device -> accepted)", results["updates"], None, "/s")
    _row("REST POST desired -> device delta p50", results["rest50"], base(loaded, 50), "ms")
    rest99 = results["rest99"]
    _row(
        "REST POST desired -> device delta p99",
        rest99,
        mosquitto_p99,
        "ms",
        _target(rest99 <= 10, "<= 10"),
    )
    crt50 = results["crt50"]
    _row("awscrt update -> accepted p50", crt50, None, "ms", _target(crt50 < 2, "< 2"))
    _row("awscrt update -> accepted p99", results["crt99"], None, "ms")
    for mode, label in (
        ("311", "MQTT 3.1.1"),
        ("5", "MQTT 5"),
        ("5-no-flow-control", "MQTT 5, flow control off"),
    ):
        v2 = results[f"v2-{mode}"]
        print(
            f"{'awsiotsdk ShadowClientV2 ' + label + ' p50':<44} {v2:9.2f} ms   "
            f"V1 MQTT 3.1.1 {crt50:7.2f} ms   ratio {v2 / crt50:6.2f}"
        )
    _row("update -> accepted p50 (NODELAY client)", results["shadow50"], None, "ms")
    _row("update -> accepted p99 (NODELAY client)", results["shadow99"], None, "ms")
    return results


async def _measure_external(
    server: Server, ca: Path, creds: list[tuple[str, Credentials]], embedded: dict[str, float]
) -> None:
    """The same shadow figures with mosquitto as the endpoint and the engines as its client;
    the ratio column is against the embedded gateway of the first part."""
    clients, rate, _memory = await _fleet(server, ca, creds)
    names = [name for name, _ in creds]
    updates = await _update_rate(clients, names)
    for client in clients:
        await client.close()
    shadow = await _shadow_round_trips(server.mqtt_port, _context(ca, creds[2][1]), names[2])
    crt = await asyncio.to_thread(_awscrt_round_trip, server, ca, creds[1][1], names[1])
    print()
    print(f"serve --broker mosquitto, {DEVICES} devices ({rate:.0f} connects/s);")
    print("columns: external mode | embedded gateway of the run above")

    def row(name: str, ours: float, base: float, unit: str) -> None:
        print(
            f"{name:<44} mosq {ours:9.2f} {unit:<5} embedded {base:9.2f} {unit:<5} "
            f"ratio {ours / base:6.2f}"
        )

    row("shadow updates (device -> accepted)", updates, embedded["updates"], "/s")
    row(
        "update -> accepted p50 (NODELAY client)",
        statistics.median(shadow),
        embedded["shadow50"],
        "ms",
    )
    row(
        "update -> accepted p99 (NODELAY client)",
        _percentile(shadow, 99),
        embedded["shadow99"],
        "ms",
    )
    row("awscrt update -> accepted p50", statistics.median(crt), embedded["crt50"], "ms")


def _get(fleet: dict[str, tuple[float, float]], index: int) -> float | None:
    return fleet["mosquitto"][index] if "mosquitto" in fleet else None


def main() -> None:
    bench_cloud()


if __name__ == "__main__":
    main()
