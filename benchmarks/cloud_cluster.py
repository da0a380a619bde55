"""The cloud past one process: shadow updates through a three-node NATS cluster with two
engine instances, against one mosquitto with one engine instance and against the embedded
gateway, 1,000 mTLS devices, in one run, all three on one PostgreSQL store.

Each setup is ``jumpstart cloud serve`` as users start it (the NATS one twice: the second
instance joins the first's cluster with ``--broker nats://...``). The devices are one
asyncio process on jumpstart's MQTT codec, connected through the setup's MQTT port (for
NATS, HAProxy in front of the nodes). Figures: shadow updates per second (every device
sends UPDATES_PER_DEVICE updates, each awaiting its accepted reply) and the update ->
accepted round trip under that load (p50/p99); the ratios are against the embedded gateway.
NATS_BENCH_DEVICES changes the count.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cloud as cloud_bench  # benchmarks/cloud.py: the MQTT bench client
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.registry import Role

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.cloud import cloud_process
from tests.postgres_cluster import fresh_schema, postgres_cluster

DEVICES = int(os.environ.get("NATS_BENCH_DEVICES", "1000"))
UPDATES_PER_DEVICE = 10
CONNECT_CONCURRENCY = 50
CONNECT_ATTEMPTS = 10
PACED_SAMPLES = 300
PACE_S = 0.005


@dataclass
class Result:
    setup: str
    connect_s: float
    updates_per_s: float
    p50_ms: float  # under the full load: mostly queueing behind the other devices
    p99_ms: float
    paced_p50_ms: float  # one device, paced, every other one connected
    paced_p99_ms: float
    # CPU seconds per second under load: the setup's processes, the devices' process, the
    # whole machine (PostgreSQL and the rest included).
    cores: tuple[float, float, float]
    served: list[int]  # per engine instance


def _served(home: CloudHome, rest_port: int) -> int:
    from jumpstart.cloud.admin import rest_request  # noqa: PLC0415

    reply = rest_request(home, "GET", "/health", port=rest_port)
    return int(reply.document.get("served", 0))


async def _updates(
    port: int, ca: Path, creds: list[tuple[str, cloud_bench.Credentials]], pids: list[int]
) -> tuple[float, float, list[float], list[float], tuple[float, float, float]]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    retries = 0

    async def connect(name: str, cred: cloud_bench.Credentials) -> cloud_bench.BenchClient:
        # As a device does: a refused or dropped connect is tried again after a pause.
        nonlocal retries
        for attempt in range(CONNECT_ATTEMPTS):
            async with gate:
                try:
                    client = cloud_bench.BenchClient()
                    return await client.connect(port, cloud_bench._context(ca, cred), name)
                except (ConnectionError, OSError):
                    if attempt == CONNECT_ATTEMPTS - 1:
                        raise
                    retries += 1
            await asyncio.sleep(1.0)
        raise AssertionError("unreachable")

    start = time.perf_counter()
    clients = await asyncio.gather(*(connect(name, cred) for name, cred in creds))
    connect_s = time.perf_counter() - start
    if retries:
        print(f"    {retries} connects were tried again")
    names = [name for name, _ in creds]
    for client, name in zip(clients, names, strict=True):
        await client.subscribe(f"$aws/things/{name}/shadow/update/accepted")
    latencies: list[float] = []

    async def device(client: cloud_bench.BenchClient, name: str) -> None:
        for n in range(UPDATES_PER_DEVICE):
            body = json.dumps({"state": {"reported": {"n": n}}, "clientToken": str(n)})
            sent = time.perf_counter()
            client.publish(f"$aws/things/{name}/shadow/update", body.encode(), qos=1)
            while True:
                _, payload, at = await client.expect(
                    f"$aws/things/{name}/shadow/update/accepted", timeout=30
                )
                if json.loads(payload).get("clientToken") == str(n):
                    break
            latencies.append((at - sent) * 1000)

    start = time.perf_counter()
    cpu, machine, own = _cpu_seconds(pids), _machine_seconds(), time.process_time()
    try:
        await asyncio.gather(*(device(c, n) for c, n in zip(clients, names, strict=True)))
        elapsed = time.perf_counter() - start
        rate = len(clients) * UPDATES_PER_DEVICE / elapsed
        load = (
            (_cpu_seconds(pids) - cpu) / elapsed,
            (time.process_time() - own) / elapsed,
            (_machine_seconds() - machine) / elapsed,
        )
        paced = await _paced(clients[0], names[0])
    finally:
        for client in clients:
            await client.close()
    return connect_s, rate, latencies, paced, load


async def _paced(client: cloud_bench.BenchClient, name: str) -> list[float]:
    """One device's paced update -> accepted round trips (ms), the others connected."""
    samples = []
    for n in range(PACED_SAMPLES):
        body = json.dumps({"state": {"reported": {"p": n}}, "clientToken": f"p{n}"})
        sent = time.perf_counter()
        client.publish(f"$aws/things/{name}/shadow/update", body.encode(), qos=1)
        while True:
            _, payload, at = await client.expect(
                f"$aws/things/{name}/shadow/update/accepted", timeout=30
            )
            if json.loads(payload).get("clientToken") == f"p{n}":
                break
        samples.append((at - sent) * 1000)
        await asyncio.sleep(PACE_S)
    return samples


def _machine_seconds() -> float:
    """CPU time every core of this machine spent busy (/proc/stat: all but idle, iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(roots: list[int]) -> float:
    """CPU time (user + system) of ``roots`` and all their descendants (the setup's
    servers: cloud processes, brokers, HAProxy)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    total = 0.0
    for pid, spent in times.items():
        walk = pid
        while walk > 1 and walk not in roots:
            walk = parents.get(walk, 0)
        if walk in roots:
            total += spent
    return total


def _measure(
    setup: str,
    servers: list[cloud_process.Server],
    home: CloudHome,
    creds: list[tuple[str, cloud_bench.Credentials]],
) -> Result:
    port = servers[0].mqtt_port
    pids = [server.process.pid for server in servers]
    connect_s, rate, latencies, paced, load = asyncio.run(_updates(port, home.ca_pem, creds, pids))
    served = [_served(home, server.rest_port) for server in servers]
    return Result(
        setup,
        connect_s,
        rate,
        cloud_bench._percentile(latencies, 50),
        cloud_bench._percentile(latencies, 99),
        cloud_bench._percentile(paced, 50),
        cloud_bench._percentile(paced, 99),
        load,
        served,
    )


def _stop(servers: list[cloud_process.Server]) -> None:
    for server in reversed(servers):
        server.process.terminate()
        server.process.wait(30)


def bench_cluster() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    with tempfile.TemporaryDirectory() as tmp, postgres_cluster() as database:
        root = Path(tmp)
        home = CloudHome(root / "cloud")
        home.ensure()
        creds: list[tuple[str, cloud_bench.Credentials]] = []
        with home.registry() as registry:
            for n in range(DEVICES):
                name = f"node{n:04d}"
                registry.create_thing(name)
                creds.append(
                    (name, cloud_bench._write(root, name, registry.issue(name, Role.DEVICE)))
                )
        results = []
        for setup in ("embedded", "mosquitto", "nats"):
            # A store of its own per setup: each starts at version 0.
            url = fresh_schema(database)
            print(f"  {setup}: starting", flush=True)
            first = cloud_process.serve(
                root, url, setup, *(["--nodes", "3"] if setup == "nats" else [])
            )
            servers = [first]
            try:
                if setup == "nats":
                    line = next(text for text in first.banner if "queue group on" in text)
                    servers.append(
                        cloud_process.serve(
                            root,
                            url,
                            line.split("queue group on ")[1].strip(),
                            "--mqtt-port",
                            str(first.mqtt_port),
                        )
                    )
                results.append(_measure(setup, servers, home, creds))
            finally:
                _stop(servers)
        _report(results)


def _report(results: list[Result]) -> None:
    base = results[0]
    labels = {
        "embedded": "embedded gateway, 1 process",
        "mosquitto": "mosquitto + 1 engine instance",
        "nats": "NATS 3 nodes (HAProxy) + 2 engine instances",
    }
    print(
        f"cloud past one process: {DEVICES} mTLS devices x {UPDATES_PER_DEVICE} shadow updates"
        " (each awaiting its accepted), PostgreSQL store, ratios against the gateway"
    )
    for result in results:
        served = "" if result.setup == "embedded" else f", served per instance {result.served}"
        print(
            f"  {labels[result.setup]:<44} connect {result.connect_s:4.1f} s,"
            f" {result.updates_per_s:5.0f} updates/s"
            f" (ratio {result.updates_per_s / base.updates_per_s:4.2f})"
            f" (cores busy: setup {result.cores[0]:3.1f}, devices {result.cores[1]:3.1f},"
            f" machine {result.cores[2]:3.1f}); under load p50 {result.p50_ms:4.0f}"
            f" p99 {result.p99_ms:5.0f} ms; paced update -> accepted p50"
            f" {result.paced_p50_ms:5.2f} ms (ratio {result.paced_p50_ms / base.paced_p50_ms:4.2f})"
            f" p99 {result.paced_p99_ms:6.2f} ms{served}"
        )


def main() -> None:
    bench_cluster()


if __name__ == "__main__":
    main()
