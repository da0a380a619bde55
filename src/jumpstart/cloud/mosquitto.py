"""Debian's mosquitto as the cloud's MQTT endpoint: its configuration and its process.

The configuration says what the gateway's policy says, in mosquitto's terms (spec/cloud.md
5.1): a client certificate from this cloud's CA is required and its common name is the
user; ``pattern`` lines give every thing its own request topics (write) and
``$aws/things/{thing}/#`` (read); apps write any thing's requests; admins (the engines
among them) everything. Revoked certificates are in a CRL. The files live in
``{cloud}/mosquitto/`` and are rewritten, and mosquitto reloaded, when the registry changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import getpass
import os
import shutil
import signal
import ssl
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from jumpstart.children import die_with_parent, stop_child
from jumpstart.cloud.endpoints import free_port, port_open
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.registry import CertStatus, Registry, Role
from jumpstart.cloud.topics import REQUEST_FILTERS
from jumpstart.errors import InputError
from jumpstart.formats.mqtt import Connect, Disconnect, ProtocolVersion, encode_packet
from jumpstart.statefiles import write_new

__all__ = ["Mosquitto", "MosquittoError", "acl_text", "config_text", "find_mosquitto"]

# Debian installs the broker outside a normal user's PATH.
MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
START_TIMEOUT_S = 10.0
# Revocation: the pause between the CRL reload and the take-over, and its bound.
TAKEOVER_DELAY_S = 0.2
TAKEOVER_TIMEOUT_S = 5.0
TAKEOVER_VALIDITY = datetime.timedelta(minutes=2)
# How often the registry is checked for new clients and revocations while mosquitto runs.
REGISTRY_POLL_S = 2.0


class MosquittoError(InputError):
    """mosquitto is missing or would not start."""


def find_mosquitto() -> Path:
    found = shutil.which("mosquitto")
    candidates = [found] if found else []
    for candidate in [*candidates, *MOSQUITTO_PATHS]:
        if Path(candidate).is_file():
            return Path(candidate)
    raise MosquittoError(
        "mosquitto is not installed: 'apt-get install mosquitto' (or use --broker mqtts://HOST:PORT"
        " for a broker that runs elsewhere)"
    )


def _device_filter(request_filter: str) -> str:
    # "$aws/things/+/..." -> "$aws/things/%u/...": the certificate's own thing only.
    levels = request_filter.split("/")
    levels[2] = "%u"
    return "/".join(levels)


def acl_text(principals: dict[str, Role]) -> str:
    """mosquitto's acl_file for the registry's principals (name -> role, devices excluded:
    the patterns cover every thing)."""
    lines = ["# Written by jumpstart from the cloud's registry; edits are overwritten.", ""]
    lines.append("# Every thing: its own requests, and anything under its own topics.")
    lines += [f"pattern write {_device_filter(f)}" for f in REQUEST_FILTERS]
    lines += ["pattern read $aws/things/%u/#", ""]
    for name, role in sorted(principals.items()):
        lines.append(f"user {name}")
        # '#' does not match topics starting with '$' (MQTT 3.1.1 4.7.2), so both are named.
        lines.append("topic readwrite #")
        if role is Role.ADMIN:
            lines.append("topic readwrite $aws/#")
        else:
            lines.append("topic read $aws/#")
            lines += [f"topic write {f}" for f in REQUEST_FILTERS]
        lines.append("")
    return "\n".join(lines)


def config_text(home: CloudHome, folder: Path, host: str, port: int) -> str:
    lines = [
        "# Written by jumpstart: mosquitto as the cloud's MQTT endpoint.",
        "per_listener_settings false",
        f"listener {port} {host}",
        f"cafile {home.ca_pem}",
        f"certfile {home.server_pem}",
        f"keyfile {home.server_key}",
        f"crlfile {folder / 'crl.pem'}",
        "tls_version tlsv1.2",
        "require_certificate true",
        "use_identity_as_username true",
        # The client id is the certificate's name, whatever the client sent: as AWS's thing
        # policy (client/${iot:Connection.Thing.ThingName}), nobody takes over or resumes
        # another identity's session (mosquitto has no per-user client id rule to match).
        "use_username_as_clientid true",
        f"acl_file {folder / 'acl'}",
        # Without it every request -> reply pays a 40 ms delayed ACK (spec/cloud.md 5.4, 6).
        "set_tcp_nodelay true",
        # AWS's message broker quota: 128 KB payloads.
        "message_size_limit 131072",
        "max_qos 1",
        "persistence true",
        f"persistence_location {folder}/",
        f"log_dest file {folder / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "max_connections -1",
        # The engines take every device's requests over one connection: with mosquitto's
        # defaults (20 in flight, 1,000 queued per client) a fleet reconnecting at once had
        # its QoS 1 shadow requests dropped. Devices' own queues stay small in practice.
        "max_inflight_messages 1000",
        "max_queued_messages 100000",
    ]
    if os.geteuid() == 0:
        # Run as root, mosquitto drops to user 'mosquitto', which cannot read our key files.
        lines.append(f"user {getpass.getuser()}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class _RegistryView:
    principals: dict[str, Role]
    revoked: frozenset[str]


def _view(registry: Registry) -> _RegistryView:
    principals: dict[str, Role] = {}
    revoked = set()
    for record in registry.certificates():
        if record.status is CertStatus.REVOKED:
            revoked.add(record.certificate_id)
        elif record.role is not Role.DEVICE:
            principals[record.principal] = record.role
    return _RegistryView(principals, frozenset(revoked))


class Mosquitto:
    """mosquitto configured from the cloud's home and registry, run as a child process."""

    def __init__(self, home: CloudHome, registry: Registry, host: str, port: int) -> None:
        self.home = home
        self.registry = registry
        self.host = host
        self.port = port or free_port(host)
        self.folder = home.path / "mosquitto"
        self.config_path = self.folder / "mosquitto.conf"
        self.process: asyncio.subprocess.Process | None = None
        self._view: _RegistryView | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._kicks: set[asyncio.Task[None]] = set()
        self._pending: dict[str, bool] = {}  # names whose take-over has not succeeded yet

    def write_files(self) -> None:
        """Write the configuration, ACL and CRL."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config_text(self.home, self.folder, self.host, self.port))
        self._view = None
        self._write_registry_files()

    def _write_registry_files(self) -> bool:
        """Rewrite the ACL and CRL when the registry changed; True if it did."""
        view = _view(self.registry)
        if view == self._view:
            return False
        (self.folder / "acl").write_text(acl_text(view.principals))
        (self.folder / "crl.pem").write_bytes(self.registry.crl_pem())
        self._view = view
        return True

    async def start(self) -> None:
        binary = find_mosquitto()
        self.write_files()
        self.process = await asyncio.create_subprocess_exec(
            str(binary),
            "-c",
            str(self.config_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # ends with the cloud, freeing the port
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                break
            if await port_open(self.host, self.port):
                self._watcher = asyncio.create_task(self._watch_registry())
                return
            await asyncio.sleep(0.05)
        await self.close()
        raise MosquittoError(
            f"mosquitto did not start on {self.host}:{self.port}: {self._log_tail()}"
            " (is the port free? choose another with --mqtt-port PORT)"
        )

    def _log_tail(self) -> str:
        log = self.folder / "mosquitto.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return " | ".join(text.strip().splitlines()[-3:]) or "no log"

    def reload(self) -> None:
        """Rewrite the ACL and CRL and make mosquitto read them again (SIGHUP)."""
        changed = self._write_registry_files()
        if changed and self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGHUP)

    def disconnect(self, names: dict[str, bool]) -> None:
        """End the live connections of ``names`` (whose certificates were just revoked;
        the value says whether the name keeps another, active, certificate).

        mosquitto keeps connections open across a CRL reload, and has no command to drop a
        client. Its client ids are the certificates' names, so a connection under the same
        name takes the session over and mosquitto closes the old one; the CRL, reloaded
        first, refuses the revoked certificate's reconnection. mosquitto cannot tell two
        certificates of one name apart: a connection on the name's other, active certificate
        is dropped too (it reconnects), but its session is kept. A take-over that fails is
        tried again at the next call."""
        self.reload()
        self._pending.update(names)
        if self._kicks or not self._pending:
            return  # one take-over at a time; the next sweep starts the next
        task = asyncio.get_running_loop().create_task(self._take_over(dict(self._pending)))
        self._kicks.add(task)
        task.add_done_callback(self._kicks.discard)

    @property
    def pending(self) -> bool:
        """Revoked names whose connections are not known to be closed yet."""
        return bool(self._pending)

    async def _take_over(self, names: dict[str, bool]) -> None:
        await asyncio.sleep(TAKEOVER_DELAY_S)  # mosquitto handles SIGHUP in its main loop
        folder = Path(tempfile.mkdtemp(dir=self.folder))
        try:
            for name, keep_session in sorted(names.items()):
                # One-off and short-lived: never registered, so it must not outlive its use.
                issued = self.registry.ca.issue_client(name, TAKEOVER_VALIDITY)
                cert, key = folder / "c.pem", folder / "k.pem"
                cert.write_bytes(issued.cert_pem)
                write_new(key, issued.key_pem, 0o600)
                context = ssl.create_default_context(cafile=str(self.home.ca_pem))
                context.load_cert_chain(str(cert), str(key))
                key.unlink()
                try:
                    await asyncio.wait_for(
                        self._connect_once(context, keep_session), TAKEOVER_TIMEOUT_S
                    )
                except (OSError, TimeoutError, EOFError, ssl.SSLError):
                    continue  # still pending: the next revocation sweep tries again
                self._pending.pop(name, None)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def _connect_once(self, context: ssl.SSLContext, keep_session: bool) -> None:
        reader, writer = await asyncio.open_connection(
            self.host, self.port, ssl=context, server_hostname="localhost"
        )
        try:
            # A clean session ends the revoked identity's persistent session too, unless
            # the name has another certificate still in use.
            v311 = ProtocolVersion.MQTT311
            hello = Connect(client_id="revoked", clean_start=not keep_session, keep_alive=0)
            writer.write(encode_packet(hello, v311))
            await reader.readexactly(4)  # CONNACK
            writer.write(encode_packet(Disconnect(), v311))
            await writer.drain()
        finally:
            writer.close()

    async def _watch_registry(self) -> None:
        while True:
            await asyncio.sleep(REGISTRY_POLL_S)
            self.reload()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        for task in list(self._kicks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await stop_child(self.process)
