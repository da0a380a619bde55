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
from dataclasses import dataclass, field
from types import TracebackType

from jumpstart.cloud.admin import operator_context
from jumpstart.cloud.broker_link import BrokerAddress, BrokerLink
from jumpstart.cloud.bus import MessageBus
from jumpstart.cloud.endpoints import (
    FIRMWARE_PORT,
    MQTT_PORT,
    REST_PORT,
    BrokerMode,
    Shard,
    parse_broker,
)
from jumpstart.cloud.firmware import FirmwareServer
from jumpstart.cloud.gateway.broker import Broker, BrokerLimits, RequestHandler
from jumpstart.cloud.gateway.retained import SqliteRetainedStore
from jumpstart.cloud.gateway.server import GatewayServer
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.jobs.mqtt import JobsRequests
from jumpstart.cloud.jobs.service import JobsService
from jumpstart.cloud.jobs.store import JobStore, SqliteJobStore
from jumpstart.cloud.mosquitto import Mosquitto
from jumpstart.cloud.pki import certificate_id
from jumpstart.cloud.policy import Principal
from jumpstart.cloud.registry import CertStatus, Registry
from jumpstart.cloud.rest import RestServer
from jumpstart.cloud.shadow.engine import ShadowSettings
from jumpstart.cloud.shadow.mqtt import ShadowRequests
from jumpstart.cloud.shadow.service import ShadowService
from jumpstart.cloud.shadow.store import ShadowStore, SqliteShadowStore
from jumpstart.cloud.tls import server_context
from jumpstart.errors import InputError

__all__ = ["CloudConfig", "CloudService", "open_stores"]

# Step timeouts are in minutes; a sweep every few seconds is precise enough.
JOB_SWEEP_S = 5.0


@dataclass(frozen=True)
class CloudConfig:
    host: str = "127.0.0.1"
    mqtt_port: int = MQTT_PORT
    rest_port: int = REST_PORT
    firmware_port: int = FIRMWARE_PORT
    shadow: ShadowSettings = field(default_factory=ShadowSettings)
    limits: BrokerLimits = field(default_factory=BrokerLimits)
    broker: BrokerMode = field(default_factory=lambda: parse_broker("embedded"))
    broker_timeout_s: float = 10.0  # to attach the engines to an external broker at start
    shard: Shard = field(default_factory=Shard)  # external broker: this instance's things


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
        if self.config.shard.count > 1 and not self.config.broker.external:
            raise InputError("shards are for several engines on one external broker (--broker)")
        self.ca = home.ensure()
        self.registry = Registry(home.registry_path, self.ca)
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
        self.link: BrokerLink | None = None
        self.mosquitto: Mosquitto | None = None
        self.retained: SqliteRetainedStore | None = None
        self.bus: MessageBus
        if self.config.broker.external:
            self.bus = self.link = self._broker_link()
        else:
            self.retained = SqliteRetainedStore(home.retained_path)
            self.broker = Broker(self.handlers, self.config.limits, retained_store=self.retained)
            context = server_context(home.server_pem, home.server_key, home.ca_pem)
            self.gateway = GatewayServer(self.broker, context, self.authenticate)
            self.bus = self.broker
        self.mqtt_port = 0
        self.rest_port = 0
        self.rest = RestServer(self)
        self.firmware = FirmwareServer(home)
        self.firmware_port = 0
        self._sweeper: asyncio.Task[None] | None = None

    def authenticate(self, der: bytes) -> Principal | None:
        """The principal of an active certificate issued by this cloud, else None."""
        record = self.registry.certificate(certificate_id(der))
        if record is None or record.status is not CertStatus.ACTIVE:
            return None
        return Principal(record.principal, record.role)

    def _broker_link(self) -> BrokerLink:
        mode, config = self.config.broker, self.config
        if mode.kind == "mosquitto":
            self.mosquitto = Mosquitto(self.home, self.registry, config.host, config.mqtt_port)
            address = BrokerAddress(config.host, self.mosquitto.port)
        else:
            address = BrokerAddress(mode.host, mode.port)
        return BrokerLink(address, operator_context(self.home), self.handlers, self.config.shard)

    async def start(self) -> None:
        if self.gateway is not None:
            self.mqtt_port = await self.gateway.start(self.config.host, self.config.mqtt_port)
        else:
            assert self.link is not None
            if self.mosquitto is not None:
                await self.mosquitto.start()
            try:
                await self.link.start(self.config.broker_timeout_s)
            except BaseException:
                await self._close_broker()
                raise
            self.mqtt_port = self.link.address.port
        self.rest_port = await self.rest.start(self.config.host, self.config.rest_port)
        self.firmware_port = await self.firmware.start(self.config.host, self.config.firmware_port)
        self._sweeper = asyncio.create_task(self._sweep_job_timeouts())

    async def _sweep_job_timeouts(self) -> None:
        while True:
            await asyncio.sleep(JOB_SWEEP_S)
            for message in self.jobs.expire_timeouts():
                self.bus.publish(message.topic, message.payload)

    async def _close_broker(self) -> None:
        if self.gateway is not None:
            await self.gateway.close()
        if self.link is not None:
            await self.link.close()
        if self.mosquitto is not None:
            await self.mosquitto.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.rest.close()
        await self.firmware.close()
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
