"""outlet_cloud: the outlet's state in an AWS IoT Device Shadow (the guide's chapter 6).

The guide's document: ``reported`` {output, fw_version, ota_url}, ``desired`` {output,
ota_url}. On every connection the outlet reads the shadow, applies ``desired.output`` and
reports; a delta on ``output`` switches the relay and is reported; a button press switches,
reports, and sets ``desired.output`` too, so no stale delta switches it back. A press made
while offline is remembered with its time; on reconnect it wins over the cloud's desired
value only if it is newer than that value's metadata timestamp (the last writer wins).
"""

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from jumpstart.idf.app_context import AppContext
from jumpstart.idf.aws_shadow import ShadowClient, ShadowHandlers
from jumpstart.idf.esp_err import EspError
from jumpstart.idf.esp_secure_cert import EspSecureCert
from jumpstart.idf.mqtt import EspMqttClient, MqttConfig, MqttEvent, MqttEventData
from jumpstart.idf.nvs import NvsError, OpenMode

from ..app_driver import AppDriver
from ..network import FACTORY_NAMESPACE, FACTORY_PARTITION, init_factory

TAG = "cloud"

# The records below are plain classes with __slots__, not dataclasses: every boot runs this
# module's body afresh (devices keep no state in common), and @dataclass compiles each class's
# methods from source at that moment, which was the largest cost of a fleet outlet's boot.


class CloudCredentials:
    """Where the thing connects and who it is: the guide's five cloud_cfg files."""

    __slots__ = ("device_cert", "device_key", "endpoint", "port", "server_cert", "thing")

    def __init__(
        self,
        thing: str,
        endpoint: str,
        port: int,
        server_cert: bytes,
        device_cert: bytes,
        device_key: bytes,
    ) -> None:
        self.thing = thing
        self.endpoint = endpoint
        self.port = port
        self.server_cert = server_cert
        self.device_cert = device_cert
        self.device_key = device_key

    @classmethod
    def embedded(cls, ctx: AppContext) -> "CloudCredentials":
        """From the files embedded in the image (5_cloud/main/cloud_cfg in the guide)."""

        def text(name: str) -> str:
            return ctx.embedded(name).decode().strip()

        return cls(
            thing=text("deviceid.txt"),
            endpoint=text("endpoint.txt"),
            port=int(ctx.config["mqtt_port"]),
            server_cert=ctx.embedded("server.cert"),
            device_cert=ctx.embedded("device.cert"),
            device_key=ctx.embedded("device.key"),
        )

    @classmethod
    def factory(cls, ctx: AppContext) -> "CloudCredentials | None":
        """From the read-only factory NVS partition (the guide's chapter 8), if it has them;
        certificate, key and CA from the esp_secure_cert partition when the table has one."""
        try:
            secure = EspSecureCert.find(ctx.partitions)
            init_factory(ctx)
            with ctx.nvs.open(FACTORY_NAMESPACE, OpenMode.READONLY, FACTORY_PARTITION) as nvs:
                thing = nvs.get_str("device_id")
                endpoint = nvs.get_str("endpoint")
                port = int(nvs.get_str("mqtt_port"))
                if secure is None:
                    server = nvs.get_str("server_cert").encode()
                    cert = nvs.get_str("device_cert").encode()
                    key = nvs.get_str("device_key").encode()
            if secure is not None:
                # The component hands out PEM with its NUL (for mbedTLS); TLS here takes text.
                server = secure.ca_cert().rstrip(b"\0")
                cert = secure.device_cert().rstrip(b"\0")
                key = secure.priv_key().rstrip(b"\0")
                ctx.log.i(TAG, "Certificate and key from the esp_secure_cert partition")
            return cls(thing, endpoint, port, server, cert, key)
        except (NvsError, ValueError):
            return None
        except EspError as err:  # a partition that fails its checks
            ctx.log.e(TAG, f"esp_secure_cert: {err}")
            return None


class Update:
    """One shadow update to send: reported fields and, when the device decided, desired."""

    __slots__ = ("desired", "reported")

    def __init__(self, reported: dict[str, Any], desired: dict[str, Any] | None = None) -> None:
        self.reported = reported
        self.desired = desired


class OutletSync:
    """The reconciliation rules, fed shadow documents and button presses (no I/O)."""

    __slots__ = ("extra", "output", "pending_since")

    def __init__(self, output: bool, extra: dict[str, Any] | None = None) -> None:
        self.output = output
        self.pending_since: float | None = None
        """Wall-clock time of a press made while offline, not yet written to the shadow."""
        self.extra: dict[str, Any] = extra if extra is not None else {}
        """Further reported fields (fw_version, ota_url...)."""

    def pressed(self, output: bool, now: float, online: bool) -> Update | None:
        self.output = output
        if not online:
            self.pending_since = now
            return None
        return Update({"output": output}, {"output": output})

    def document(self, document: dict[str, Any] | None) -> tuple[bool | None, Update]:
        """After (re)connecting: the output to apply (None: keep) and the full report."""
        state = (document or {}).get("state", {})
        desired = state.get("desired", {}).get("output")
        stamp = (document or {}).get("metadata", {}).get("desired", {}).get("output", {})
        desired_at = stamp.get("timestamp", 0) if isinstance(stamp, dict) else 0
        apply: bool | None = None
        # Shadow timestamps are whole seconds: a press in the same second as the cloud's
        # write cannot be ordered, and the cloud's value wins.
        keep_local = self.pending_since is not None and (
            not isinstance(desired, bool) or int(self.pending_since) > desired_at
        )
        report = {"output": self.output, **self.extra}
        update = Update(report)
        if keep_local:
            update.desired = {"output": self.output}
        elif isinstance(desired, bool) and desired != self.output:
            apply = self.output = desired
            report["output"] = desired
        self.pending_since = None
        return apply, update

    def delta(self, state: dict[str, Any]) -> tuple[bool | None, Update | None]:
        value = state.get("output")
        if not isinstance(value, bool):
            return None, None
        self.output = value
        return value, Update({"output": value})


class OutletCloud:
    """The outlet's MQTT connection and shadow sync; ``start()`` once Wi-Fi is set up."""

    def __init__(
        self,
        ctx: AppContext,
        driver: AppDriver,
        credentials: CloudCredentials,
    ) -> None:
        self.ctx = ctx
        self.driver = driver
        self.credentials = credentials
        self.on_delta: list[Callable[[dict[str, Any]], None]] = []
        """Called with each delta's state (and the delta found at sync, output removed)."""
        self.on_synced: list[Callable[[dict[str, Any] | None], None]] = []
        """Called with the document after each (re)connection's sync."""
        self._published: dict[int, asyncio.Event] = {}
        self.sync = OutletSync(driver.state, extra={"fw_version": ctx.app.version, "ota_url": ""})
        config = dataclasses.replace(
            MqttConfig.for_aws(  # AWS IoT's rules (ALPN on 443) suit the local cloud too
                credentials.endpoint,
                credentials.thing,
                credentials.server_cert,
                credentials.device_cert,
                credentials.device_key,
                credentials.port,
            ),
            keepalive_s=int(ctx.config.get("mqtt_keepalive_s", 120)),
        )
        self.mqtt = EspMqttClient(config, ctx.events, ctx.log, wifi=ctx.wifi, spawn=ctx.spawn)
        self.shadow = ShadowClient(
            self.mqtt,
            credentials.thing,
            ctx.events,
            ctx.log,
            ShadowHandlers(self._document, self._delta, self._rejected),
        )
        driver.on_toggle = self._pressed
        ctx.events.register(MqttEvent.PUBLISHED, self._acked)
        ctx.on_teardown(self.mqtt.stop)

    def start(self) -> None:
        self.ctx.log.i(
            TAG, f"Connecting to {self.credentials.endpoint} as {self.credentials.thing}"
        )
        self.mqtt.start()

    def report(self, reported: dict[str, Any], desired: dict[str, Any] | None = None) -> int:
        """Write fields to the shadow (queued while offline, within the outbox limit)."""
        return self.shadow.update(reported, desired)

    async def wait_published(self, msg_id: int, timeout: float) -> bool:
        """Wait until the broker acknowledged QoS 1 message ``msg_id`` (False on timeout)."""
        if msg_id <= 0:
            return False
        done = self._published.setdefault(msg_id, asyncio.Event())
        try:
            async with asyncio.timeout(timeout):
                await done.wait()
        except TimeoutError:
            return False
        finally:
            self._published.pop(msg_id, None)
        return True

    def _acked(self, _event: Any, data: Any) -> None:
        if isinstance(data, MqttEventData) and data.msg_id in self._published:
            self._published[data.msg_id].set()

    def _send(self, update: Update | None) -> None:
        if update is not None:
            self.shadow.update(update.reported, update.desired)

    def _pressed(self, output: bool) -> None:
        self._send(self.sync.pressed(output, time.time(), self.shadow.synced))

    def _document(self, document: dict[str, Any] | None) -> None:
        apply, update = self.sync.document(document)
        if apply is not None:
            self.ctx.log.i(TAG, f"Shadow: desired output {apply}")
            self.driver.set_state(apply)
        self._send(update)
        self.ctx.log.i(TAG, "Shadow in sync")
        for synced in self.on_synced:
            synced(document)
        delta = ((document or {}).get("state") or {}).get("delta")
        if isinstance(delta, dict):
            for handler in self.on_delta:
                handler({k: v for k, v in delta.items() if k != "output"})

    def _delta(self, state: dict[str, Any]) -> None:
        apply, update = self.sync.delta(state)
        if apply is not None:
            self.ctx.log.i(TAG, f"Shadow delta: output {apply}")
            self.driver.set_state(apply)
        self._send(update)
        for handler in self.on_delta:
            handler(state)

    def _rejected(self, operation: str, code: int, message: str) -> None:
        self.ctx.log.w(TAG, f"shadow {operation} rejected: {code} {message}")
