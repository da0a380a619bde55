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
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

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
    "mqtt_to_subject",
    "nats_config",
    "nats_nodes",
    "registry_view",
    "user_permissions",
]

CLUSTER_NAME = "jumpstart"
NATS_PATHS = ("/usr/sbin/nats-server", "/usr/local/bin/nats-server")  # Debian's first
START_TIMEOUT_S = 10.0
REGISTRY_POLL_S = 1.0  # a revocation is in force within about this
# JetStream's own subjects an MQTT client uses for QoS 1 subscriptions and its session
# (nats-server 2.9: without them "Unable to create subscription for JetStream consumer").
MQTT_INTERNAL_SUBSCRIBE = "$MQTT.sub.>"


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


def nats_nodes(count: int, host: str = "127.0.0.1", base_port: int = 14222) -> list[NatsNode]:
    """``count`` nodes with distinct ports from ``base_port`` (client, MQTT, cluster: +0,
    +1000, +2000, each node +1)."""
    return [
        NatsNode(f"n{i + 1}", host, base_port + i, base_port + 1000 + i, base_port + 2000 + i)
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
        f"jetstream {{ store_dir: {json.dumps(str(folder / f'jetstream-{node.name}'))} }}",
        "tls {",
        *(f"  {line}" for line in tls),
        "}",
        "mqtt {",
        f"  listen: {node.host}:{node.mqtt_port}",
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


class NatsError(InputError):
    """nats-server is missing or did not start."""


def find_nats_server() -> Path:
    for candidate in (shutil.which("nats-server"), *NATS_PATHS):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise NatsError("nats-server is not installed: apt-get install nats-server (or make test)")


class NatsServer:
    """One nats-server configured from the cloud's home and registry, run as a child process
    (``cloud serve --broker nats``). A registry change (new things and certificates, a
    revocation) rewrites the configuration and restarts the server (``follow``)."""

    def __init__(self, home: CloudHome, registry: Registry, host: str, mqtt_port: int) -> None:
        self.home = home
        self.registry = registry
        self.folder = home.path / "nats"
        self.node = NatsNode(
            "n1", host, free_port(host), mqtt_port or free_port(host), free_port(host)
        )
        self.port = self.node.mqtt_port
        self.config_path = self.folder / "n1.conf"
        self.process: asyncio.subprocess.Process | None = None
        self._view: RegistryView | None = None
        self._watcher: asyncio.Task[None] | None = None

    def write_files(self) -> bool:
        """Write the configuration if the registry changed; True if it did."""
        view = registry_view(self.registry)
        if view == self._view:
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        text = nats_config(self.home, self.folder, self.node, [self.node], view)
        self.config_path.write_text(text)
        self._view = view
        return True

    async def start(self) -> None:
        self.write_files()
        await self._spawn()
        self._watcher = asyncio.create_task(self._watch_registry())

    async def _spawn(self) -> None:
        binary = find_nats_server()
        log = self.folder / "nats.log"
        with log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                str(binary),
                "-c",
                str(self.config_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                preexec_fn=die_with_parent,  # ends with the cloud, freeing the ports
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                break
            if await port_open(self.node.host, self.port):
                return
            await asyncio.sleep(0.05)
        await self._stop_process()
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        raise NatsError(
            f"nats-server did not start on {self.node.host}:{self.port}: {tail or 'no log'}"
            " (is the port free? choose another with --mqtt-port PORT)"
        )

    async def follow(self) -> None:
        """Bring the server in step with the registry. nats-server 2.9 can reload users and
        permissions, but after such a reload every MQTT client it mapped from a certificate
        is cut off without a word (it logs "found in connect proto, but user required from
        cert" and routes nothing to or from them again): so a change restarts the server,
        and clients reconnect with their backoff to their sessions, kept in JetStream."""
        if self.write_files():
            await self._stop_process()
            await self._spawn()

    async def _watch_registry(self) -> None:
        while True:
            await asyncio.sleep(REGISTRY_POLL_S)
            with contextlib.suppress(NatsError):  # tried again at the next change
                await self.follow()

    async def _stop_process(self) -> None:
        process, self.process = self.process, None
        await stop_child(process)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        await self._stop_process()
