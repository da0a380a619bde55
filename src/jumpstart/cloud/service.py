"""The whole local cloud in one event loop: registry, shadow and jobs services, the MQTT
endpoint, REST API.

``async with CloudService(home) as cloud:`` starts it; ``cloud.mqtt_port``,
``cloud.rest_port`` and ``cloud.firmware_port`` say where it listens (0 asks for free ports).
The MQTT endpoint is the embedded gateway, or (``CloudConfig.broker``) mosquitto started and
configured by the cloud, or a broker that runs elsewhere; then the engines are that broker's
client (``BrokerLink``). Firmware images for OTA are served over HTTPS (``FirmwareServer``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from types import TracebackType

from jumpstart.cloud.admin import engine_principal, operator_context
from jumpstart.cloud.broker_link import BrokerAddress, BrokerLink
from jumpstart.cloud.bus import MessageBus
from jumpstart.cloud.dashboard import DashboardServer
from jumpstart.cloud.endpoints import (
    FIRMWARE_PORT,
    MQTT_PORT,
    REST_PORT,
    BrokerMode,
    NatsAddress,
    Shard,
    check_port,
    listen_on,
    parse_broker,
)
from jumpstart.cloud.firmware import FirmwareServer
from jumpstart.cloud.gateway.broker import Broker, BrokerLimits, RequestHandler
from jumpstart.cloud.gateway.retained import SqliteRetainedStore
from jumpstart.cloud.gateway.server import GatewayServer
from jumpstart.cloud.home import CloudHome, RunningEndpoints
from jumpstart.cloud.jobs.mqtt import JobsRequests
from jumpstart.cloud.jobs.service import JobsService
from jumpstart.cloud.jobs.store import JobStore, SqliteJobStore
from jumpstart.cloud.mosquitto import Mosquitto
from jumpstart.cloud.nats import NatsServer
from jumpstart.cloud.nats_link import NatsLink
from jumpstart.cloud.pki import certificate_id
from jumpstart.cloud.policy import Principal
from jumpstart.cloud.registry import CertStatus
from jumpstart.cloud.rest import RestServer
from jumpstart.cloud.shadow.engine import ShadowSettings
from jumpstart.cloud.shadow.mqtt import ShadowRequests
from jumpstart.cloud.shadow.service import ShadowService
from jumpstart.cloud.shadow.store import ShadowStore, SqliteShadowStore
from jumpstart.cloud.tls import server_context
from jumpstart.errors import InputError

__all__ = ["CloudConfig", "CloudService", "open_stores"]

log = logging.getLogger(__name__)

# Step timeouts are in minutes; a sweep every few seconds is precise enough.
JOB_SWEEP_S = 5.0
# How often the registry is read for revoked certificates, whose live connections then end:
# within two seconds of `cloud cert revoke`, from any process.
REVOCATION_SWEEP_S = 0.5


@dataclass(frozen=True)
class CloudConfig:
    host: str = "127.0.0.1"
    mqtt_port: int = MQTT_PORT
    rest_port: int = REST_PORT
    firmware_port: int = FIRMWARE_PORT
    dashboard_port: int = 0  # an ephemeral port unless told (the CLI defaults to 8088)
    shadow: ShadowSettings = field(default_factory=ShadowSettings)
    limits: BrokerLimits = field(default_factory=BrokerLimits)
    broker: BrokerMode = field(default_factory=lambda: parse_broker("embedded"))
    broker_timeout_s: float = 10.0  # to attach the engines to an external broker at start
    shard: Shard = field(default_factory=Shard)  # external broker: this instance's things
    nodes: int = 1  # --broker nats: a cluster of this many nodes behind a front


def open_stores(home: CloudHome, url: str | None = None) -> tuple[ShadowStore, JobStore]:
    """The shadow and job stores: SQLite files in ``home`` (the default, ``sqlite``), or a
    PostgreSQL database shared by several engines (``postgresql://user@host/db``)."""
    if url is None or url == "sqlite":
        home.path.mkdir(parents=True, exist_ok=True)
        return SqliteShadowStore(home.shadows_path), SqliteJobStore(home.jobs_path)
    if url.startswith(("postgresql://", "postgres://")):
        from jumpstart.cloud.postgres import PostgresJobStore, PostgresShadowStore  # noqa: PLC0415

        shadows = PostgresShadowStore(url)
        return shadows, PostgresJobStore(url)
    raise InputError(f"unknown store {url!r}: use 'sqlite' or a postgresql:// URL")


class CloudService:
    def __init__(
        self,
        home: CloudHome,
        config: CloudConfig | None = None,
        store: ShadowStore | None = None,
        job_store: JobStore | None = None,
    ) -> None:
        self.home = home
        self.config = config or CloudConfig()
        for port, option in (
            (self.config.mqtt_port, "--mqtt-port"),
            (self.config.rest_port, "--rest-port"),
            (self.config.firmware_port, "--firmware-port"),
            (self.config.dashboard_port, "--dashboard-port"),
        ):
            check_port(port, option)
        if self.config.shard.count > 1 and not self.config.broker.external:
            raise InputError("shards are for several engines on one external broker (--broker)")
        if self.config.nodes != 1 and self.config.broker.kind != "nats":
            raise InputError("--nodes is for --broker nats (a local NATS cluster)")
        if self.config.shard.count > 1 and self.config.broker.kind == "nats":
            raise InputError(
                "on NATS the engines share requests as a queue group: run every instance"
                " without --shard"
            )
        self.ca = home.ensure()
        self.registry = home.registry()
        self.store = store or SqliteShadowStore(home.shadows_path)
        self.shadows = ShadowService(self.store, self.config.shadow)
        self.job_store = job_store or SqliteJobStore(home.jobs_path)
        self.jobs = JobsService(self.job_store)
        self.handlers: list[RequestHandler] = [
            ShadowRequests(self.shadows),
            JobsRequests(self.jobs),
        ]
        self.broker: Broker | None = None
        self.gateway: GatewayServer | None = None
        self.link: BrokerLink | NatsLink | None = None
        self.mosquitto: Mosquitto | None = None
        self.nats: NatsServer | None = None
        self.retained: SqliteRetainedStore | None = None
        self.bus: MessageBus
        if self.config.broker.external:
            self.bus = self.link = self._broker_link()
        else:
            self.retained = SqliteRetainedStore(home.retained_path)
            self.broker = Broker(
                self.handlers,
                self.config.limits,
                retained_store=self.retained,
                owner_of=self.registry.owner_of,
            )
            context = server_context(home.server_pem, home.server_key, home.ca_pem)
            self.gateway = GatewayServer(self.broker, context, self.authenticate)
            self.bus = self.broker
        self.mqtt_port = 0
        self.rest_port = 0
        self.rest = RestServer(self)
        self.firmware = FirmwareServer(home)
        self.firmware_port = 0
        self.dashboard = DashboardServer(self)
        self._sweeper: asyncio.Task[None] | None = None
        self._revocations: asyncio.Task[None] | None = None
        self.endpoints: RunningEndpoints | None = None

    def authenticate(self, der: bytes) -> Principal | None:
        """The principal of an active certificate issued by this cloud, else None."""
        record = self.registry.certificate(certificate_id(der))
        if record is None or record.status is not CertStatus.ACTIVE:
            return None
        return Principal(record.principal, record.role, record.certificate_id)

    def _broker_link(self) -> BrokerLink | NatsLink:
        mode, config = self.config.broker, self.config
        if mode.kind == "nats":
            return self._nats_link()
        if mode.kind == "mosquitto":
            self.mosquitto = Mosquitto(self.home, self.registry, config.host, config.mqtt_port)
            address = BrokerAddress(config.host, self.mosquitto.port)
        else:
            address = BrokerAddress(mode.host, mode.port)
        shard = self.config.shard
        return BrokerLink(
            address,
            operator_context(self.home, shard),
            self.handlers,
            shard,
            client_id=engine_principal(shard),
        )

    def _nats_link(self) -> NatsLink:
        """The engines as one member of the queue group: of the cluster the cloud starts,
        or (``nats://...``) of one that runs already, its devices on ``--mqtt-port``."""
        mode, config = self.config.broker, self.config
        context = operator_context(self.home, Shard())  # one identity for every instance
        if mode.servers is not None:
            if config.nodes != 1:
                raise InputError(
                    "--nodes starts a cluster here; nats://... attaches to one that runs"
                )
            return NatsLink(mode.servers, context, self.handlers, config.mqtt_port)
        self.nats = NatsServer(
            self.home, self.registry, config.host, config.mqtt_port, config.nodes
        )
        return NatsLink(NatsAddress(self.nats.client_ports), context, self.handlers, self.nats.port)

    async def start(self) -> None:
        try:
            await self._start_servers()
        except BaseException:
            await self._close_broker()
            await self.rest.close()
            await self.firmware.close()
            await self.dashboard.close()
            raise
        self._sweeper = asyncio.create_task(self._sweep_job_timeouts())
        self._revocations = asyncio.create_task(self._sweep_revocations())
        self.endpoints = RunningEndpoints(
            os.getpid(), self.mqtt_port, self.rest_port, self.firmware_port
        )
        self.home.record_endpoints(self.endpoints)

    async def _start_servers(self) -> None:
        config = self.config
        if self.gateway is not None:
            self.mqtt_port = await listen_on(
                config.mqtt_port, "--mqtt-port", self.gateway.start(config.host, config.mqtt_port)
            )
        else:
            assert self.link is not None
            if self.mosquitto is not None:
                await self.mosquitto.start()
            if self.nats is not None:
                await self.nats.start()
            try:
                await self.link.start(self.config.broker_timeout_s)
            except BaseException:
                await self._close_broker()
                raise
            self.mqtt_port = self.link.mqtt_port
        self.rest_port = await listen_on(
            config.rest_port, "--rest-port", self.rest.start(config.host, config.rest_port)
        )
        self.firmware_port = await listen_on(
            config.firmware_port,
            "--firmware-port",
            self.firmware.start(config.host, config.firmware_port),
        )
        await listen_on(
            config.dashboard_port,
            "--dashboard-port",
            self.dashboard.start("127.0.0.1", config.dashboard_port),
        )

    async def _sweep_job_timeouts(self) -> None:
        while True:
            await asyncio.sleep(JOB_SWEEP_S)
            for message in self.jobs.expire_timeouts():
                self.bus.publish(message.topic, message.payload)

    async def _sweep_revocations(self) -> None:
        known = self.registry.revoked_ids()  # revoked before we started: refused at connect
        while True:
            await asyncio.sleep(REVOCATION_SWEEP_S)
            try:
                revoked = self.registry.revoked_ids()
                self.drop_revoked(revoked, revoked - known)
            except Exception as err:  # a full disk, a busy database: the next sweep retries
                log.warning("revocation sweep: %s", err)
                continue
            known = revoked

    def drop_revoked(self, revoked: set[str], newly: set[str]) -> None:
        """End the live connections of revoked certificates: the gateway's and REST's are
        ours to close; mosquitto's are taken over under the certificate's name."""
        if self.broker is not None:
            self.broker.drop_revoked(revoked)
        self.rest.drop_revoked(revoked)
        if self.mosquitto is not None and (newly or self.mosquitto.pending):
            names: dict[str, bool] = {}
            for certificate_id in newly:
                record = self.registry.certificate(certificate_id)
                if record is not None:
                    others = self.registry.certificates(record.principal)
                    names[record.principal] = any(c.status is CertStatus.ACTIVE for c in others)
            self.mosquitto.disconnect(names)

    async def _close_broker(self) -> None:
        if self.gateway is not None:
            await self.gateway.close()
        if self.link is not None:
            await self.link.close()
        if self.mosquitto is not None:
            await self.mosquitto.close()
        if self.nats is not None:
            await self.nats.close()

    async def close(self) -> None:
        for task in (self._sweeper, self._revocations):
            if task is not None:
                task.cancel()
        if self.endpoints is not None:
            self.home.forget_endpoints(self.endpoints)
        await self.rest.close()
        await self.firmware.close()
        await self.dashboard.close()
        await self._close_broker()
        self.store.close()
        self.job_store.close()
        if self.retained is not None:
            self.retained.close()
        self.registry.close()

    async def __aenter__(self) -> CloudService:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
