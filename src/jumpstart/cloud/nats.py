"""Debian's nats-server (2.9) as the cloud's broker: its configuration, from the registry.

NATS carries MQTT 3.1.1 on a listener of its own and maps each client certificate's subject
to a user (``verify_and_map``; ours are ``CN=<name>``); each user's subject permissions say
what the gateway's policy says (cloud/policy.py), in NATS's terms: MQTT ``/`` is ``.``, ``+``
is ``*``, ``#`` is ``>``, and a filter ``a/#`` also covers ``a`` itself (spec/wave2-facts.md
9.1). A thing publishes its own request topics and reads ``$aws/things/<thing>/...``; apps
publish any thing's requests and read everything; admins (the engines among them) may do
anything. MQTT sessions and retained messages live in JetStream, so every node has a store.
Several nodes form a cluster over routes on loopback (or a host's address).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import shutil
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jumpstart.children import die_with_parent, stop_child
from jumpstart.cloud.endpoints import free_port, port_open
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.registry import CertStatus, Registry, Role
from jumpstart.cloud.topics import REQUEST_FILTERS
from jumpstart.errors import InputError

__all__ = [
    "NatsError",
    "NatsNode",
    "NatsServer",
    "RegistryView",
    "find_nats_server",
    "haproxy_config",
    "mqtt_to_subject",
    "nats_config",
    "nats_nodes",
    "registry_view",
    "user_permissions",
]

CLUSTER_NAME = "jumpstart"
NATS_PATHS = ("/usr/sbin/nats-server", "/usr/local/bin/nats-server")  # Debian's first
START_TIMEOUT_S = 10.0
MAX_NODES = 9  # a local cluster for tests and demos; real ones run a node per host
REGISTRY_POLL_S = 1.0  # a revocation is in force within about this
# JetStream's own subjects an MQTT client uses for QoS 1 subscriptions and its session
# (nats-server 2.9: without them "Unable to create subscription for JetStream consumer").
MQTT_INTERNAL_SUBSCRIBE = "$MQTT.sub.>"
# Copies of each MQTT stream in a cluster: a quorum survives one node down.
MQTT_REPLICAS = 3


@dataclass(frozen=True)
class RegistryView:
    """What the configuration says of the registry: who may connect and as what. A name is
    a user while it has an active certificate: revoking its last one removes the user."""

    principals: dict[str, Role]  # apps and admins with an active certificate
    things: tuple[str, ...]  # things with an active certificate


def registry_view(registry: Registry) -> RegistryView:
    principals: dict[str, Role] = {}
    things: set[str] = set()
    for record in registry.certificates():
        if record.status is not CertStatus.ACTIVE:
            continue
        if record.role is Role.DEVICE:
            things.add(record.principal)
        else:
            principals[record.principal] = record.role
    return RegistryView(principals, tuple(sorted(things)))


@dataclass(frozen=True)
class NatsNode:
    """One server of the cluster: its name and its ports on ``host``."""

    name: str
    host: str
    client_port: int  # native NATS clients (the engines)
    mqtt_port: int  # devices and apps
    cluster_port: int  # routes to the other nodes
    monitor_port: int  # /healthz on 127.0.0.1 only (a front's health check)


def nats_nodes(count: int, host: str = "127.0.0.1", base_port: int = 14222) -> list[NatsNode]:
    """``count`` nodes with distinct ports from ``base_port`` (client, MQTT, cluster,
    monitoring: +0, +1000, +2000, +3000, each node +1)."""
    return [
        NatsNode(
            f"n{i + 1}",
            host,
            base_port + i,
            base_port + 1000 + i,
            base_port + 2000 + i,
            base_port + 3000 + i,
        )
        for i in range(count)
    ]


def mqtt_to_subject(topic_filter: str) -> str:
    """An MQTT topic or filter as a NATS subject."""
    levels = topic_filter.split("/")
    return ".".join({"+": "*", "#": ">"}.get(level, level) for level in levels)


def _reads(topic_filter: str) -> list[str]:
    """The subjects an MQTT subscription to ``topic_filter`` needs: ``a/#`` is ``a.>`` and
    ``a`` (MQTT's '#' matches the parent level, NATS's '>' does not)."""
    subject = mqtt_to_subject(topic_filter)
    if subject.endswith(".>"):
        return [subject[:-2], subject]
    return [subject]


# What only the services publish: their replies, deltas, documents, notifications and the
# lifecycle events. NATS cannot say "no '$' topic but the requests" (its deny wins over
# allow, and '>' matches '$' tokens), so an app's publish is allowed everywhere but these.
SERVICE_SUBJECTS = (
    "$aws.things.*.shadow.*.accepted",
    "$aws.things.*.shadow.*.rejected",
    "$aws.things.*.shadow.update.delta",
    "$aws.things.*.shadow.update.documents",
    "$aws.things.*.shadow.name.*.*.accepted",
    "$aws.things.*.shadow.name.*.*.rejected",
    "$aws.things.*.shadow.name.*.update.delta",
    "$aws.things.*.shadow.name.*.update.documents",
    "$aws.things.*.jobs.notify",
    "$aws.things.*.jobs.notify-next",
    "$aws.things.*.jobs.*.accepted",
    "$aws.things.*.jobs.*.rejected",
    "$aws.things.*.jobs.*.*.accepted",
    "$aws.things.*.jobs.*.*.rejected",
    "$aws.events.>",
)


def user_permissions(name: str, role: Role) -> dict[str, object]:
    """What the user of certificate ``name`` may publish and subscribe to, as nats-server's
    ``permissions`` block."""
    if role is Role.ADMIN:
        return {"publish": [">"], "subscribe": [">"]}
    if role is Role.APP:
        return {
            "publish": {"allow": [">"], "deny": list(SERVICE_SUBJECTS)},
            # Everything but the lifecycle events (operators only, as on the gateway).
            "subscribe": {"allow": [">"], "deny": ["$aws.events", "$aws.events.>"]},
        }
    own = [mqtt_to_subject(f.replace("/+/", f"/{name}/", 1)) for f in REQUEST_FILTERS]
    return {
        "publish": own,
        "subscribe": [*_reads(f"$aws/things/{name}/#"), MQTT_INTERNAL_SUBSCRIBE],
    }


def _user(name: str, role: Role) -> dict[str, object]:
    return {"user": f"CN={name}", "permissions": user_permissions(name, role)}


def nats_config(
    home: CloudHome, folder: Path, node: NatsNode, nodes: list[NatsNode], view: RegistryView
) -> str:
    """nats-server's configuration for ``node`` of ``nodes`` (one node: no cluster block).

    Revocation is by name: nats-server 2.9 maps a certificate to a user by its subject
    (``CN=<name>``) and cannot reload an MQTT listener's TLS settings (``pinned_certs``
    there would need a restart, dropping every connection), so a name leaves the users when
    its last active certificate is revoked."""
    users = [_user(name, role) for name, role in sorted(view.principals.items())]
    users += [_user(thing, Role.DEVICE) for thing in view.things]
    tls = [
        f"cert_file: {json.dumps(str(home.server_pem))}",
        f"key_file: {json.dumps(str(home.server_key))}",
        f"ca_file: {json.dumps(str(home.ca_pem))}",
        "verify_and_map: true",
    ]
    lines = [
        "# Written by jumpstart from the cloud's registry; edits are overwritten.",
        f"server_name: {node.name}",
        f"listen: {node.host}:{node.client_port}",
        # Health and connection lists are for this machine's eyes only.
        f"http: 127.0.0.1:{node.monitor_port}",
        f"jetstream {{ store_dir: {json.dumps(str(folder / f'jetstream-{node.name}'))} }}",
        "tls {",
        *(f"  {line}" for line in tls),
        "}",
        "mqtt {",
        f"  listen: {node.host}:{node.mqtt_port}",
        # Left to itself, nats-server sizes the sessions' streams by the nodes it sees when
        # the first client connects: two of three during a start, and then losing either
        # of those two loses the quorum and every client's session with it.
        *([f"  stream_replicas: {min(len(nodes), MQTT_REPLICAS)}"] if len(nodes) > 1 else []),
        "  tls {",
        *(f"    {line}" for line in tls),
        "  }",
        "}",
        f"authorization {{ users = {json.dumps(users, indent=1)} }}",
    ]
    if len(nodes) > 1:
        routes = [f"nats-route://{n.host}:{n.cluster_port}" for n in nodes if n != node]
        lines += [
            "cluster {",
            f"  name: {CLUSTER_NAME}",
            f"  listen: {node.host}:{node.cluster_port}",
            f"  routes: {json.dumps(routes)}",
            "}",
        ]
    return "\n".join(lines) + "\n"


HAPROXY_PATHS = ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")
# The front's view of a node: its monitoring port answers (a TCP connect every half second;
# out after two failures, so a dead node is skipped within a second). Not /healthz: it says
# 503 while JetStream's streams elect leaders, which happens on every node at once when the
# first MQTT client connects, and the front would then have no node at all.
FRONT_MAX_CONNECTIONS = 60000
FRONT_SPARE_FDS = 100
HEALTH_CHECK = "check port {port} inter 500 fall 2 rise 2"


def front_max_connections() -> int:
    """As many connections as this process's hard open-file limit lets HAProxy carry: each
    takes two descriptors (device and node), plus some for itself."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return FRONT_MAX_CONNECTIONS
    return max(1, min(FRONT_MAX_CONNECTIONS, (hard - FRONT_SPARE_FDS) // 2))


def haproxy_config(host: str, port: int, nodes: list[NatsNode]) -> str:
    """HAProxy in front of the nodes' MQTT listeners: TCP only (TLS goes through to
    nats-server, which must see the client's certificate), least connections first, and a
    connection that cannot reach its node is sent to another (``redispatch``)."""
    servers = [
        f"  server {n.name} {n.host}:{n.mqtt_port} " + HEALTH_CHECK.format(port=n.monitor_port)
        for n in nodes
    ]
    return (
        "\n".join(
            [
                "# Written by jumpstart: the front of the local NATS cluster.",
                "global",
                f"  maxconn {front_max_connections()}",
                "defaults",
                "  mode tcp",
                "  timeout connect 2s",
                # MQTT connections idle for their keep-alive (1200 s at most for a device).
                "  timeout client 30m",
                "  timeout server 30m",
                "  retries 2",
                "  option redispatch",
                "frontend mqtt",
                f"  bind {host}:{port}",
                "  default_backend nats",
                "backend nats",
                "  balance leastconn",
                *servers,
            ]
        )
        + "\n"
    )


class NatsError(InputError):
    """nats-server or HAProxy is missing or did not start."""


def _find(name: str, paths: tuple[str, ...], package: str) -> Path:
    for candidate in (shutil.which(name), *paths):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise NatsError(f"{name} is not installed: apt-get install {package} (or make test)")


def find_nats_server() -> Path:
    return _find("nats-server", NATS_PATHS, "nats-server")


class NatsServer:
    """nats-server configured from the cloud's home and registry, run as child processes
    (``cloud serve --broker nats [--nodes N]``): one node whose MQTT listener is the cloud's
    MQTT port, or a cluster of N nodes on ``host`` with HAProxy on that port in front. A
    registry change (new things and certificates, a revocation) rewrites the configurations
    and restarts the nodes one at a time (``follow``)."""

    def __init__(
        self, home: CloudHome, registry: Registry, host: str, mqtt_port: int, nodes: int = 1
    ) -> None:
        if not 1 <= nodes <= MAX_NODES:
            raise InputError(f"--nodes must be 1-{MAX_NODES}, not {nodes}")
        self.home = home
        self.registry = registry
        self.folder = home.path / "nats"
        single = nodes == 1
        self.nodes = [
            NatsNode(
                f"n{i + 1}",
                host,
                free_port(host),
                (mqtt_port or free_port(host)) if single else free_port(host),
                free_port(host),
                free_port("127.0.0.1"),
            )
            for i in range(nodes)
        ]
        self.node = self.nodes[0]
        # Where devices connect: the one node's listener, or the front.
        self.port = self.node.mqtt_port if single else (mqtt_port or free_port(host))
        self.host = host
        self.config_path = self.folder / "n1.conf"
        self.front_path = self.folder / "haproxy.cfg"
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self._view: RegistryView | None = None  # written to the configurations
        self._serving: RegistryView | None = None  # what every running node has loaded
        self._watcher: asyncio.Task[None] | None = None

    def in_step(self) -> bool:
        """Whether every node runs with the registry as it is now (a new thing is admitted,
        a revoked name refused)."""
        return self._serving is not None and self._serving == registry_view(self.registry)

    @property
    def clustered(self) -> bool:
        return len(self.nodes) > 1

    @property
    def client_ports(self) -> tuple[tuple[str, int], ...]:
        """Where the engines connect (every node: they fail over by themselves)."""
        return tuple((n.host, n.client_port) for n in self.nodes)

    def write_files(self) -> bool:
        """Write the configurations if the registry changed; True if it did."""
        view = registry_view(self.registry)
        if view == self._view:
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            text = nats_config(self.home, self.folder, node, self.nodes, view)
            (self.folder / f"{node.name}.conf").write_text(text)
        self._view = view
        return True

    async def start(self) -> None:
        self.write_files()
        try:
            await asyncio.gather(*(self._spawn(node) for node in self.nodes))
            if self.clustered:
                # The front counts a node in once it is healthy (a JetStream leader elected).
                if not all(await asyncio.gather(*(self._healthy(n) for n in self.nodes))):
                    raise NatsError(
                        f"the NATS nodes did not become healthy within {START_TIMEOUT_S:.0f} s:"
                        f" see the logs in {self.folder}"
                    )
                self.front_path.write_text(haproxy_config(self.host, self.port, self.nodes))
                await self._spawn_front()
                await self._front_ready()
        except BaseException:
            await self.close()
            raise
        self._serving = self._view
        self._watcher = asyncio.create_task(self._watch_registry())

    async def _spawn(self, node: NatsNode) -> None:
        binary = find_nats_server()
        config = self.folder / f"{node.name}.conf"
        log = self.folder / f"{node.name}.log" if self.clustered else self.folder / "nats.log"
        self.processes[node.name] = await self._child(log, str(binary), "-c", str(config))
        await self._wait_listening(node.name, log, node.host, node.mqtt_port)

    async def _spawn_front(self) -> None:
        binary = _find("haproxy", HAPROXY_PATHS, "haproxy")
        log = self.folder / "haproxy.log"
        # -db: stay in the foreground, as the cloud's child.
        self.processes["front"] = await self._child(
            log, str(binary), "-db", "-f", str(self.front_path)
        )
        await self._wait_listening("front", log, self.host, self.port)

    async def _child(self, log: Path, *argv: str) -> asyncio.subprocess.Process:
        with log.open("ab") as out:
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                preexec_fn=die_with_parent,  # ends with the cloud, freeing the ports
            )

    async def _wait_listening(self, name: str, log: Path, host: str, port: int) -> None:
        process = self.processes[name]
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.returncode is not None:
                break
            if await port_open(host, port):
                return
            await asyncio.sleep(0.05)
        await stop_child(self.processes.pop(name))
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        raise NatsError(
            f"{'haproxy' if name == 'front' else 'nats-server'} did not start on"
            f" {host}:{port}: {tail or 'no log'}"
            " (is the port free? choose another with --mqtt-port PORT)"
        )

    async def _front_ready(self) -> None:
        """Wait until the front hands a connection to a node: its health checks pass only
        once the nodes have elected a JetStream leader, and until then it has no node to
        offer and closes every connection."""
        context = ssl.create_default_context(cafile=str(self.home.ca_pem))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ssl.SSLError):
                _, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=context, server_hostname="localhost"
                )
                writer.close()
                return
            await asyncio.sleep(0.1)
        raise NatsError(
            f"the NATS nodes did not become healthy within {START_TIMEOUT_S:.0f} s:"
            f" see the logs in {self.folder}"
        )

    async def follow(self) -> None:
        """Bring the nodes in step with the registry. nats-server 2.9 can reload users and
        permissions, but after such a reload every MQTT client it mapped from a certificate
        is cut off without a word (it logs "found in connect proto, but user required from
        cert" and routes nothing to or from them again): so a change restarts the nodes,
        one at a time, and their clients reconnect with their backoff (through the front,
        to another node) to their sessions, kept in JetStream."""
        self.write_files()
        if self._view == self._serving:
            return
        # A failure part way (a port not free yet) leaves _serving behind: the next poll
        # restarts every node again.
        for node in self.nodes:
            await stop_child(self.processes.pop(node.name, None))
            await self._spawn(node)
            if self.clustered:  # the next goes down once this one is back in the cluster
                await self._routed(node)
        if self.clustered:  # in step once JetStream serves the MQTT sessions again
            await asyncio.gather(*(self._healthy(node) for node in self.nodes))
        self._serving = self._view

    async def _healthy(self, node: NatsNode) -> bool:
        """Whether ``node`` answers 200 on /healthz (JetStream current) within the start
        timeout."""
        return await self._monitor_until(node, "/healthz", lambda status, _doc: status == 200)

    async def _routed(self, node: NatsNode) -> bool:
        """Whether ``node`` has its routes to every other node within the start timeout:
        from then on it votes in the JetStream groups, so the next node may go down
        without losing their quorum (waiting for /healthz as well took a second more per
        node, and a revocation must be in force within two seconds)."""
        others = len(self.nodes) - 1

        def routed(status: int, doc: dict[str, Any]) -> bool:
            return status == 200 and int(doc.get("num_routes", 0)) >= others

        return await self._monitor_until(node, "/routez", routed)

    async def _monitor_until(
        self, node: NatsNode, path: str, done: Callable[[int, dict[str, Any]], bool]
    ) -> bool:
        """Poll ``path`` on ``node``'s monitoring port until ``done(status, document)``."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, IndexError):
                reader, writer = await asyncio.open_connection("127.0.0.1", node.monitor_port)
                writer.write(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
                answer = await reader.read()
                writer.close()
                head, _, body = answer.partition(b"\r\n\r\n")
                status = int(head.split(b" ")[1])
                if done(status, json.loads(body) if body.strip() else {}):
                    return True
            await asyncio.sleep(0.05)
        return False

    async def stop_node(self, name: str) -> None:
        """Stop one node as a crash would (SIGKILL): its clients must fail over."""
        process = self.processes.pop(name, None)
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    async def restart_node(self, name: str) -> None:
        """Start a stopped node again and wait until it serves (JetStream current)."""
        node = next(n for n in self.nodes if n.name == name)
        await stop_child(self.processes.pop(name, None))
        await self._spawn(node)
        await self._healthy(node)

    async def _watch_registry(self) -> None:
        while True:
            await asyncio.sleep(REGISTRY_POLL_S)
            with contextlib.suppress(NatsError):  # tried again at the next change
                await self.follow()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        processes, self.processes = self.processes, {}
        await asyncio.gather(*(stop_child(p) for p in processes.values()))
