"""``jumpstart fleet bench``: what a cloud team asks of a fleet, measured in one run.

N outlets boot against a cloud started here (the embedded gateway or mosquitto). Measured:
time until all are connected and in sync and the peak connect rate; the process's private
memory per device; REST toggles per second sustained; REST POST desired -> relay switched and
MQTT publish desired -> relay switched, each to the device's GPIO (p50/p95/p99); the raw broker
round trip of two bare paho clients on the same broker in the same run (the baseline of the
ratios); and a reconnect storm: the cloud stopped with every device online and started again,
with the peak connect rate it saw and the time until every device is back in sync.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from jumpstart.cloud.admin import operator_credentials
from jumpstart.cloud.home import CloudHome, RunningEndpoints
from jumpstart.cloud.registry import Role
from jumpstart.errors import InputError
from jumpstart.fleet.cloud_process import CloudProcess, rss_anon_kib
from jumpstart.fleet.fleet import Fleet, build_fleet, collector_for_fleets, open_files_for
from jumpstart.fleet.toggles import Percentiles, RestClient, client_context, relay_switch
from jumpstart.idf.radio import RadioWorld

__all__ = ["FleetBenchOptions", "FleetBenchReport", "Percentiles", "print_bench", "run_bench"]

SAMPLE_S = 0.25  # connect-rate sampling
RAW_SAMPLES = 300
# The phone apps' identities for the MQTT measurements: one each, as mosquitto makes a
# certificate's name its client id (two clients on one certificate would take turns).
APP_PRINCIPALS = ("fleet-bench-pub", "fleet-bench-sub")
PAHO_CONNECT_S = 60.0  # a cloud busy with thousands of devices answers late, not never
SUSTAINED_WORKERS = 4
SUSTAINED_S = 5.0
SUSTAINED_THINGS = 500
STORM_OUTAGE_S = 5.0
BACK_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class FleetBenchOptions:
    devices: int
    apps: Path
    broker: str = "embedded"  # or "mosquitto"
    toggles: int = 300
    toggle_rate: float = 100.0  # per second, REST and MQTT each
    storm: bool = True


@dataclass(frozen=True)
class StormReport:
    outage_s: float
    back_s: float  # cloud started again -> every device in sync
    peak_connects_per_s: float
    left_behind: int


@dataclass
class FleetBenchReport:
    devices: int
    broker: str
    connected: int = 0  # online to the broker when the boot ended
    in_sync: int = 0  # of those, shadow and relay agreeing
    all_in_sync_s: float = 0.0
    peak_connects_per_s: float = 0.0
    memory_per_device_kib: float = 0.0  # the fleet process's private memory, per device
    cloud_memory_per_device_kib: float = 0.0  # the cloud's (and its broker's), per device
    shared_kib: float = 0.0  # what every device shares (the flash image)
    rest_toggles_per_s: float = 0.0
    rest_to_relay_ms: Percentiles | None = None
    mqtt_to_relay_ms: Percentiles | None = None
    raw_round_trip_ms: Percentiles | None = None
    storm: StormReport | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- toggles to the GPIO ------------------------------------------------------------------


async def _paced(
    fleet: Fleet, count: int, rate: float, send: Callable[[str, bool], Awaitable[None]]
) -> list[float]:
    """``count`` toggles at ``rate`` per second, spread over the fleet."""
    members, samples = fleet.members, []
    period = 1 / rate
    for n in range(count):
        member = members[(n * 7919) % len(members)]
        began = time.perf_counter()
        thing = member.thing

        async def toggle(on: bool, thing: str = thing) -> None:
            await send(thing, on)

        samples.append(await relay_switch(member, toggle))
        await asyncio.sleep(max(0.0, period - (time.perf_counter() - began)))
    return samples


def _sustained_rest(rest: RestClient, things: list[str], seconds: float) -> int:
    """Toggles the REST API completes in ``seconds`` from a few threads posting back to back."""
    done = [0] * SUSTAINED_WORKERS
    deadline = time.perf_counter() + seconds

    def worker(index: int) -> None:
        n = index
        while time.perf_counter() < deadline:
            rest.post(things[n % len(things)], bool((n // len(things)) % 2))
            done[index] += 1
            n += SUSTAINED_WORKERS

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(SUSTAINED_WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done)


# -- bare paho clients ----------------------------------------------------------------------


class _Paho:
    """A paho-mqtt client on its own network thread (the app's or the baseline's view)."""

    def __init__(self, port: int, ca: Path, cert: Path, key: Path, client_id: str) -> None:
        try:
            import paho.mqtt.client as paho  # noqa: PLC0415  (only the benchmark needs it)
        except ImportError:
            raise InputError(
                "fleet bench measures with paho-mqtt: pip install 'jumpstart[fleet]'"
            ) from None
        self.received: dict[str, float] = {}
        self._arrived = threading.Condition()
        from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        client.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key))
        client.on_message = self._message
        connected = threading.Event()
        client.on_connect = lambda *_args: connected.set()
        client.connect("localhost", port, keepalive=60)
        client.loop_start()
        if not connected.wait(PAHO_CONNECT_S):
            client.loop_stop()
            raise RuntimeError(f"paho client {client_id} did not connect")
        self.client = client

    def _message(self, _client: Any, _userdata: Any, message: Any) -> None:
        with self._arrived:
            self.received[message.payload.decode()] = time.perf_counter()
            self._arrived.notify_all()

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_args: done.set()
        self.client.subscribe(topic, qos=1)
        if not done.wait(10):
            raise RuntimeError(f"no SUBACK for {topic}")

    def wait_for(self, payload: str, timeout: float = 10) -> float:
        with self._arrived:
            if not self._arrived.wait_for(lambda: payload in self.received, timeout):
                raise TimeoutError(f"{payload!r} never arrived")
            return self.received.pop(payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _raw_round_trips(publisher: _Paho, subscriber: _Paho, count: int) -> list[float]:
    """QoS 1 publish -> receive between two bare clients, paced every 10 ms, in ms."""
    topic = "fleet/bench/raw"
    subscriber.subscribe(topic)
    samples = []
    for n in range(count):
        payload = f"rt-{n}"
        sent = time.perf_counter()
        publisher.client.publish(topic, payload, qos=1)
        samples.append((subscriber.wait_for(payload) - sent) * 1000)
        time.sleep(0.01)
    return samples


# -- the run ------------------------------------------------------------------------------


async def _connect_rate(fleet: Fleet, until: Callable[[], bool], timeout: float) -> float:
    """Peak connects per second (over one-second windows) until ``until()`` or ``timeout``."""
    history: list[tuple[float, int]] = [(time.perf_counter(), fleet.stats().connects)]
    peak = 0.0
    deadline = history[0][0] + timeout
    while not until() and time.perf_counter() < deadline:
        await asyncio.sleep(SAMPLE_S)
        now = time.perf_counter()
        history.append((now, fleet.stats().connects))
        # Over the last whole second (at least): a quarter-second burst is not a rate.
        older = [(t, c) for t, c in history if now - t >= 1.0]
        if older:
            t0, c0 = older[-1]
            peak = max(peak, (history[-1][1] - c0) / (now - t0))
    # A fleet that came back within a second has no whole-second window: its average then.
    (t0, c0), (t1, c1) = history[0], history[-1]
    return max(peak, (c1 - c0) / max(1.0, t1 - t0))


async def run_bench(options: FleetBenchOptions, console: Console) -> FleetBenchReport:
    """Build the fleet, boot it against a cloud started here, and measure (module doc)."""
    open_files_for(options.devices, 1)
    report = FleetBenchReport(options.devices, options.broker)
    with tempfile.TemporaryDirectory(prefix="jumpstart-fleet-bench-") as work:
        workdir = Path(work)
        home = CloudHome(workdir / "cloud")
        home.ensure()
        apps: list[tuple[str, Path, Path]] = []
        with home.registry() as registry:
            for name in APP_PRINCIPALS:
                issued = registry.issue(name, Role.APP)
                cert, key = workdir / f"{name}.pem", workdir / f"{name}.key"
                cert.write_bytes(issued.cert_pem)
                key.write_bytes(issued.key_pem)
                apps.append((name, cert, key))
        cloud = CloudProcess(home, options.broker, workdir / "cloud.log")
        endpoints = await cloud.start()
        fleet: Fleet | None = None
        clients: list[_Paho] = []
        try:
            # paho waits with select(), which takes no descriptor above 1023: its clients
            # connect before the fleet's thousands of sockets are open.
            for name, cert, key in apps:
                clients.append(
                    await asyncio.to_thread(
                        _Paho, endpoints.mqtt_port, home.ca_pem, cert, key, name
                    )
                )
            console.print(f"making {options.devices} outlets with the factory tools...")
            members = await asyncio.to_thread(
                build_fleet, home, endpoints.mqtt_port, options.devices, options.apps, workdir,
                world=RadioWorld(None),
            )  # fmt: skip
            fleet = Fleet(members)
            with collector_for_fleets():
                await _boot(report, fleet, cloud, console)
                if report.in_sync == options.devices:
                    console.print(
                        f"all {options.devices} in sync in {report.all_in_sync_s} s; "
                        "measuring toggles..."
                    )
                    try:
                        await _measure_toggles(options, report, fleet, endpoints, home, *clients)
                        for client in clients:
                            client.close()
                        clients = []
                        if options.storm:
                            report.storm = await _storm(options, fleet, cloud, console)
                    except (OSError, RuntimeError, TimeoutError, InputError) as err:
                        # What was measured so far is still the report; say what stopped it.
                        report.notes.append(f"stopped: {type(err).__name__}: {err}")
        finally:
            for client in clients:
                client.close()
            if fleet is not None:
                await fleet.stop()
            await cloud.stop()
    return report


async def _boot(
    report: FleetBenchReport, fleet: Fleet, cloud: CloudProcess, console: Console
) -> None:
    n = len(fleet.members)
    before = rss_anon_kib(os.getpid())
    cloud_before = cloud.rss_anon_kib()
    console.print(f"booting {n} outlets...")
    await fleet.start()
    peak = await _connect_rate(fleet, lambda: fleet.stats().in_sync == n, BACK_TIMEOUT_S)
    report.peak_connects_per_s = round(peak, 1)
    report.all_in_sync_s = round(time.perf_counter() - fleet.started, 2)
    stats = fleet.stats()
    report.connected, report.in_sync = stats.connected, stats.in_sync
    if stats.in_sync < n:
        report.notes.append(f"only {stats.in_sync} of {n} in sync after {BACK_TIMEOUT_S:.0f} s")
    report.memory_per_device_kib = round((rss_anon_kib(os.getpid()) - before) / n, 1)
    report.cloud_memory_per_device_kib = round((cloud.rss_anon_kib() - cloud_before) / n, 1)
    report.shared_kib = round(fleet.shared_bytes / 1024, 1)


async def _measure_toggles(
    options: FleetBenchOptions,
    report: FleetBenchReport,
    fleet: Fleet,
    endpoints: RunningEndpoints,
    home: CloudHome,
    publisher: _Paho,
    subscriber: _Paho,
) -> None:
    operator_cert, operator_key = operator_credentials(home)
    context = client_context(home.ca_pem, operator_cert, operator_key)
    rest = RestClient(endpoints.rest_port, context)
    raw = await asyncio.to_thread(_raw_round_trips, publisher, subscriber, RAW_SAMPLES)
    report.raw_round_trip_ms = Percentiles.of(raw)

    async def by_rest(thing: str, on: bool) -> None:
        await asyncio.to_thread(rest.post, thing, on)

    rest_samples = await _paced(fleet, options.toggles, options.toggle_rate, by_rest)
    report.rest_to_relay_ms = Percentiles.of(rest_samples)

    async def by_mqtt(thing: str, on: bool) -> None:
        body = json.dumps({"state": {"desired": {"output": on}}})
        publisher.client.publish(f"$aws/things/{thing}/shadow/update", body, qos=1)

    mqtt_samples = await _paced(fleet, options.toggles, options.toggle_rate, by_mqtt)
    report.mqtt_to_relay_ms = Percentiles.of(mqtt_samples)
    things = [m.thing for m in fleet.members[:SUSTAINED_THINGS]]
    done = await asyncio.to_thread(_sustained_rest, rest, things, SUSTAINED_S)
    report.rest_toggles_per_s = round(done / SUSTAINED_S, 1)


async def _storm(
    options: FleetBenchOptions, fleet: Fleet, cloud: CloudProcess, console: Console
) -> StormReport:
    """Stop the cloud with every device online, start it again on the same port, and watch
    the devices come back with their own backoff."""
    assert cloud.endpoints is not None
    port = cloud.endpoints.mqtt_port
    n = options.devices
    await fleet.wait_all(lambda m: m.in_sync, BACK_TIMEOUT_S)  # the toggles' syncs done
    console.print(f"reconnect storm: the cloud stops for {STORM_OUTAGE_S:.0f} s...")
    await cloud.stop()
    await asyncio.sleep(STORM_OUTAGE_S)
    await cloud.start(mqtt_port=port)
    restarted = time.perf_counter()
    peak = await _connect_rate(fleet, lambda: fleet.stats().in_sync == n, BACK_TIMEOUT_S)
    back = time.perf_counter() - restarted
    left = n - fleet.stats().in_sync
    return StormReport(STORM_OUTAGE_S, round(back, 2), round(peak, 1), left)


def print_bench(report: FleetBenchReport, console: Console) -> None:
    """The report as a table, with the ratios the issue's targets are written in."""
    table = Table(title=f"fleet bench: {report.devices:,} outlets, broker {report.broker}")
    table.add_column("measure")
    table.add_column("value", justify="right")

    def ms(p: Percentiles | None) -> str:
        return "-" if p is None else f"p50 {p.p50:.2f}  p95 {p.p95:.2f}  p99 {p.p99:.2f} ms"

    table.add_row(
        "connected / in sync",
        f"{report.connected:,} / {report.in_sync:,} after {report.all_in_sync_s} s",
    )
    table.add_row("peak connects", f"{report.peak_connects_per_s:,.0f} /s")
    table.add_row("private memory per device (fleet)", f"{report.memory_per_device_kib} KiB")
    table.add_row("cloud memory per device", f"{report.cloud_memory_per_device_kib} KiB")
    table.add_row("shared by all (flash image)", f"{report.shared_kib:,.0f} KiB")
    table.add_row("REST toggles sustained", f"{report.rest_toggles_per_s:,.0f} /s")
    table.add_row("REST POST -> relay", ms(report.rest_to_relay_ms))
    table.add_row("MQTT publish -> relay", ms(report.mqtt_to_relay_ms))
    table.add_row("raw broker round trip (paho)", ms(report.raw_round_trip_ms))
    if report.rest_to_relay_ms and report.raw_round_trip_ms:
        ratio = report.rest_to_relay_ms.p50 / max(report.raw_round_trip_ms.p50, 1e-6)
        table.add_row("REST -> relay p50 / raw p50", f"{ratio:.2f}")
    if report.storm is not None:
        storm = report.storm
        table.add_row(
            f"after a {storm.outage_s:.0f} s cloud outage",
            f"all back in {storm.back_s} s, peak {storm.peak_connects_per_s:,.0f} /s, "
            f"{storm.left_behind} left behind",
        )
    for note in report.notes:
        table.add_row("note", note)
    console.print(table)
