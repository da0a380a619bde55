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


@dataclass
class Result:
    setup: str
    connect_s: float
    updates_per_s: float
    p50_ms: float
    p99_ms: float
    served: list[int]  # per engine instance


def _served(home: CloudHome, rest_port: int) -> int:
    from jumpstart.cloud.admin import rest_request  # noqa: PLC0415

    reply = rest_request(home, "GET", "/health", port=rest_port)
    return int(reply.document.get("served", 0))


async def _updates(
    port: int, ca: Path, creds: list[tuple[str, cloud_bench.Credentials]]
) -> tuple[float, float, list[float]]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(name: str, cred: cloud_bench.Credentials) -> cloud_bench.BenchClient:
        async with gate:
            client = cloud_bench.BenchClient()
            return await client.connect(port, cloud_bench._context(ca, cred), name)

    start = time.perf_counter()
    clients = await asyncio.gather(*(connect(name, cred) for name, cred in creds))
    connect_s = time.perf_counter() - start
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
    try:
        await asyncio.gather(*(device(c, n) for c, n in zip(clients, names, strict=True)))
        rate = len(clients) * UPDATES_PER_DEVICE / (time.perf_counter() - start)
    finally:
        for client in clients:
            await client.close()
    return connect_s, rate, latencies


def _measure(
    setup: str,
    servers: list[cloud_process.Server],
    home: CloudHome,
    creds: list[tuple[str, cloud_bench.Credentials]],
) -> Result:
    port = servers[0].mqtt_port
    connect_s, rate, latencies = asyncio.run(_updates(port, home.ca_pem, creds))
    served = [_served(home, server.rest_port) for server in servers]
    return Result(
        setup,
        connect_s,
        rate,
        cloud_bench._percentile(latencies, 50),
        cloud_bench._percentile(latencies, 99),
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
        f"cloud past one process: {DEVICES} mTLS devices x {UPDATES_PER_DEVICE} updates, PostgreSQL"
    )
    for result in results:
        print(
            f"  {labels[result.setup]:<46} connect {result.connect_s:5.1f} s"
            f"  {result.updates_per_s:7.0f} updates/s"
            f" (ratio {result.updates_per_s / base.updates_per_s:5.2f})"
            f"  update -> accepted p50 {result.p50_ms:6.1f} ms p99 {result.p99_ms:7.1f} ms"
            f"  served per instance {result.served}"
        )


def main() -> None:
    bench_cluster()


if __name__ == "__main__":
    main()
