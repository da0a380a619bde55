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

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.registry import CertStatus, Registry, Role
from jumpstart.cloud.topics import REQUEST_FILTERS

__all__ = [
    "NatsNode",
    "RegistryView",
    "certificate_pin",
    "mqtt_to_subject",
    "nats_config",
    "nats_nodes",
    "registry_view",
    "user_permissions",
]

CLUSTER_NAME = "jumpstart"
# JetStream's own subjects an MQTT client uses for QoS 1 subscriptions and its session
# (nats-server 2.9: without them "Unable to create subscription for JetStream consumer").
MQTT_INTERNAL_SUBSCRIBE = "$MQTT.sub.>"


@dataclass(frozen=True)
class RegistryView:
    """What the configuration says of the registry: who may connect and as what."""

    principals: dict[str, Role]  # apps and admins with an active certificate
    things: tuple[str, ...]
    active: tuple[str, ...]  # nats-server's pins of the active certificates


def certificate_pin(pem: bytes) -> str:
    """nats-server's ``pinned_certs`` entry: SHA-256 of the certificate's public key info
    (DER), hex. Every certificate the registry issues has a key of its own, so the pin
    names one certificate."""
    cert = x509.load_pem_x509_certificate(pem)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def registry_view(registry: Registry) -> RegistryView:
    principals: dict[str, Role] = {}
    active = []
    for record in registry.certificates():
        if record.status is not CertStatus.ACTIVE:
            continue
        active.append(certificate_pin(record.pem))
        if record.role is not Role.DEVICE:
            principals[record.principal] = record.role
    things = tuple(thing.name for thing in registry.things())
    return RegistryView(principals, things, tuple(sorted(active)))


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
    Only the registry's active certificates are accepted (``pinned_certs``): a revoked one
    fails the TLS handshake, even where its name has another certificate still active."""
    users = [_user(name, role) for name, role in sorted(view.principals.items())]
    users += [_user(thing, Role.DEVICE) for thing in view.things]
    tls = [
        f"cert_file: {json.dumps(str(home.server_pem))}",
        f"key_file: {json.dumps(str(home.server_key))}",
        f"ca_file: {json.dumps(str(home.ca_pem))}",
        "verify_and_map: true",
        f"pinned_certs: {json.dumps(list(view.active))}",
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
