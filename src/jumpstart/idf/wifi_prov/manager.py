"""``wifi_provisioning`` manager: from an unprovisioned device to one on the user's Wi-Fi.

States and what moves them (``prov_state``)::

    IDLE --start_provisioning--> STARTED          SoftAP/BLE up, endpoints registered
    STARTED --ApplyConfig--> CRED_RECV            creds stored, connect in 1 s
    CRED_RECV --got IP--> SUCCESS                 auto-stop armed (30 s, or first Connected report)
    CRED_RECV --auth fail / no AP--> FAIL         (after N attempts when N > 0)
    FAIL --CtrlReset--> STARTED                   creds cleared, new ones accepted
    SUCCESS|FAIL|STARTED --CtrlReprov--> STARTED  only with auto-stop disabled
    any --stop--> STOPPING --cleanup delay--> IDLE   endpoints removed, transport down, END

The station state reported to clients (``sta_state``) is CONNECTING from the start until the
outcome is known; CONN_ATTEMPT_FAILED counts retries when attempts are limited.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import Enum, IntEnum, auto
from typing import Any

from jumpstart.errors import UsageError
from jumpstart.idf.event import EventLoop, RegisteredHandler
from jumpstart.idf.log import EspLog
from jumpstart.idf.protocomm.protocomm import Protocomm, RequestHandler
from jumpstart.idf.protocomm.security import SecurityScheme
from jumpstart.idf.radio import AuthMode
from jumpstart.idf.timer import EspTimer, TimerService
from jumpstart.idf.wifi import (
    ApRecord,
    GotIp,
    IpEvent,
    StaConfig,
    StaConnected,
    StaDisconnected,
    Wifi,
    WifiEvent,
    WifiReason,
    WifiStorage,
)
from jumpstart.idf.wifi_prov.scheme import ProvScheme

__all__ = [
    "ConnectedInfo",
    "FailReason",
    "ProvConfig",
    "ProvState",
    "StaState",
    "WifiProvEvent",
    "WifiProvManager",
]

TAG = "wifi_prov_mgr"
VERSION = "v1.1"  # WIFI_PROV_MGR_VERSION
ENDPOINT_SESSION = "prov-session"
ENDPOINT_VERSION = "proto-ver"
ENDPOINT_CONFIG = "prov-config"
ENDPOINT_SCAN = "prov-scan"
ENDPOINT_CTRL = "prov-ctrl"
# ApplyConfig answers first; the connection starts after this delay (wifi_connect_timer).
CONNECT_DELAY_S = 1.0
# Driver reasons the manager reports as a wrong password.
AUTH_REASONS = frozenset({WifiReason.AUTH_FAIL})
SSID_MAX = 32
PASSPHRASE_MAX = 63


class ProvState(Enum):
    """``wifi_prov_mgr_state_t``, with its C values (the logs print them)."""

    IDLE = 0
    STARTING = 1
    STARTED = 2
    CRED_RECV = 3
    FAIL = 4
    SUCCESS = 5
    STOPPING = 6


class StaState(Enum):
    """``wifi_prov_sta_state_t``."""

    CONNECTING = auto()
    CONNECTED = auto()
    DISCONNECTED = auto()
    CONN_ATTEMPT_FAILED = auto()


class FailReason(IntEnum):
    """``wifi_prov_sta_fail_reason_t`` (= the wire's ``WifiConnectFailedReason``)."""

    AUTH_ERROR = 0
    NETWORK_NOT_FOUND = 1


class WifiProvEvent(Enum):
    INIT = auto()
    START = auto()
    SET_STA_CONFIG = auto()
    CRED_RECV = auto()
    CRED_FAIL = auto()
    CRED_SUCCESS = auto()
    END = auto()
    DEINIT = auto()


@dataclass(frozen=True, slots=True)
class ConnectedInfo:
    ip4_addr: str
    auth_mode: AuthMode
    ssid: str
    bssid: str
    channel: int


@dataclass
class ProvConfig:
    """``wifi_prov_mgr_config_t`` and the Kconfig options of the component."""

    scheme: ProvScheme
    autostop: bool = True
    autostop_timeout_s: float = 30.0  # CONFIG_WIFI_PROV_AUTOSTOP_TIMEOUT
    cleanup_delay_ms: int = 1000
    wifi_conn_attempts: int = 0  # 0: retry for ever
    scan_max_entries: int = 16  # CONFIG_WIFI_PROV_SCAN_MAX_ENTRIES
    app_info: dict[str, dict[str, Any]] = field(default_factory=dict)


class WifiProvManager:
    """One device's provisioning manager (``wifi_prov_mgr_*``)."""

    def __init__(
        self,
        config: ProvConfig,
        wifi: Wifi,
        events: EventLoop,
        timers: TimerService,
        log: EspLog,
        spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]] | None = None,
    ) -> None:
        if not 5 <= config.autostop_timeout_s <= 600:
            raise UsageError("the auto-stop timeout is 5..600 s")
        if config.cleanup_delay_ms < 100:
            raise UsageError("the cleanup delay is at least 100 ms")
        if not 1 <= config.scan_max_entries <= 255:
            raise UsageError("scan_max_entries is 1..255")
        self.config = config
        self.wifi = wifi
        self.events = events
        self.timers = timers
        self.log = log
        self._spawn = spawn or (lambda coro, name: asyncio.get_running_loop().create_task(coro))
        self.state = ProvState.IDLE
        self.sta_state = StaState.CONNECTING
        self.fail_reason = FailReason.AUTH_ERROR
        self.attempts = 0
        self.connected: ConnectedInfo | None = None
        self.protocomm: Protocomm | None = None
        self.security: SecurityScheme | None = None
        self.pending: StaConfig | None = None
        self.scan_results: list[ApRecord] = []
        self.scan_finished = False
        self._custom: dict[str, RequestHandler | None] = {}
        self._handlers: list[RegisteredHandler] = []
        self._connect_timer: EspTimer | None = None
        self._autostop_timer: EspTimer | None = None
        self._ended = asyncio.Event()
        self._last_station: StaConnected | None = None
        self.events.post(WifiProvEvent.INIT)

    # -- application API ---------------------------------------------------------------
    def is_provisioned(self) -> bool:
        """``wifi_prov_mgr_is_provisioned``: a station SSID is stored."""
        config = self.wifi.get_config()
        return config is not None and bool(config.ssid)

    def reset_provisioning(self) -> None:
        """``wifi_prov_mgr_reset_provisioning``: forget the stored Wi-Fi credentials."""
        self.wifi.restore()

    def disable_auto_stop(self, cleanup_delay_ms: int = 1000) -> None:
        if self.state is not ProvState.IDLE:
            raise UsageError("disable auto-stop before starting provisioning")
        self.config.autostop = False
        self.config.cleanup_delay_ms = max(100, cleanup_delay_ms)

    def endpoint_create(self, name: str) -> None:
        """Reserve a custom endpoint (before ``start_provisioning``)."""
        if self.state is not ProvState.IDLE:
            raise UsageError("create endpoints before starting provisioning")
        self._custom.setdefault(name, None)

    def endpoint_register(self, name: str, handler: RequestHandler) -> None:
        """Attach the handler of a created endpoint (after ``start_provisioning``)."""
        if name not in self._custom:
            raise UsageError(f"endpoint {name!r} was not created")
        if self.protocomm is None:
            raise UsageError("register endpoint handlers after starting provisioning")
        self._custom[name] = handler
        self.protocomm.add_endpoint(name, handler)

    def version_json(self) -> str:
        """What ``proto-ver`` answers."""
        assert self.security is not None
        cap = [*self.security.capabilities(), "wifi_scan"]
        info: dict[str, Any] = dict(self.config.app_info)
        info["prov"] = {
            "ver": VERSION,
            "sec_ver": self.security.version,
            "sec_patch_ver": self.security.patch_version,
            "cap": cap,
        }
        return json.dumps(info, indent="\t")

    async def start_provisioning(
        self, security: SecurityScheme, service_name: str, service_key: str | None = None
    ) -> None:
        """Bring up the scheme and register the endpoints; the device is then discoverable."""
        # Imported here: the handlers module builds on this one.
        from jumpstart.idf.wifi_prov import handlers  # noqa: PLC0415

        if self.state is not ProvState.IDLE:
            raise UsageError(f"provisioning is already {self.state.name}")
        self.state = ProvState.STARTING
        self._ended.clear()
        wifi = self.wifi
        wifi.set_storage(WifiStorage.RAM)
        wifi.clear_sta_config()
        wifi.disconnect()
        self.security = security
        security.on_event = lambda event, sid: self.log.i(TAG, f"session {sid}: {event.name}")
        pc = Protocomm()
        pc.set_security(ENDPOINT_SESSION, security)
        pc.set_version(ENDPOINT_VERSION, self.version_json())
        pc.add_endpoint(ENDPOINT_CONFIG, handlers.config_handler(self))
        pc.add_endpoint(ENDPOINT_SCAN, handlers.scan_handler(self))
        pc.add_endpoint(ENDPOINT_CTRL, handlers.ctrl_handler(self))
        self.protocomm = pc
        self._handlers = [
            self.events.register(WifiEvent.STA_CONNECTED, self._on_wifi),
            self.events.register(WifiEvent.STA_DISCONNECTED, self._on_wifi),
            self.events.register(IpEvent.STA_GOT_IP, self._on_wifi),
        ]
        try:
            names = [
                ENDPOINT_CTRL,
                ENDPOINT_SCAN,
                ENDPOINT_SESSION,
                ENDPOINT_CONFIG,
                ENDPOINT_VERSION,
                *self._custom,
            ]
            await self.config.scheme.start(pc, wifi, self.log, service_name, service_key, names)
        except BaseException:
            await self._teardown()
            raise
        self._reset_status()
        self.state = ProvState.STARTED
        self.log.i(TAG, f"Provisioning started with service name : {service_name}")
        self.events.post(WifiProvEvent.START)

    async def stop_provisioning(self) -> None:
        """``wifi_prov_mgr_stop_provisioning``: stop after the cleanup delay."""
        if self.state in (ProvState.IDLE, ProvState.STOPPING):
            return
        self.state = ProvState.STOPPING
        await asyncio.sleep(self.config.cleanup_delay_ms / 1000)
        await self._teardown()
        self.state = ProvState.IDLE
        self.log.i(TAG, "Provisioning stopped")
        self.events.post(WifiProvEvent.END)
        self._ended.set()

    async def wait(self) -> None:
        """``wifi_prov_mgr_wait``: until provisioning has ended."""
        await self._ended.wait()

    def deinit(self) -> None:
        if self.state is not ProvState.IDLE:
            self._spawn(self.stop_provisioning(), "wifi_prov.stop")
        self.events.post(WifiProvEvent.DEINIT)

    # -- what the endpoint handlers call ----------------------------------------------
    def set_pending(self, ssid: bytes, passphrase: bytes, bssid: bytes) -> bool:
        """SetConfig: validate and keep as pending; False means InvalidArgument."""
        if len(bssid) not in (0, 6) or len(ssid) > SSID_MAX or len(passphrase) > PASSPHRASE_MAX:
            return False
        try:
            self.pending = StaConfig(ssid.decode(), passphrase.decode())
        except (UnicodeDecodeError, ValueError):
            return False
        return bool(ssid)

    def apply_config(self) -> bool:
        """ApplyConfig: store the pending credentials and connect in 1 s. False: refused."""
        if self.pending is None:
            self.log.e(TAG, "no pending Wi-Fi configuration to apply")
            return False
        if self.state is not ProvState.STARTED:
            self.log.e(TAG, "Wi-Fi credentials already received, further credentials rejected")
            return False
        self.events.post(WifiProvEvent.SET_STA_CONFIG, self.pending)
        self.wifi.set_mode(self.config.scheme.wifi_mode)
        self.wifi.set_storage(WifiStorage.FLASH)
        self.wifi.set_config(self.pending)
        self._reset_status()
        self.state = ProvState.CRED_RECV
        self.log.i(TAG, f"Wi-Fi credentials received for SSID {self.pending.ssid!r}")
        self.events.post(WifiProvEvent.CRED_RECV, self.pending)
        self._connect_timer = self.timers.create(self._connect, "wifi_connect")
        self._connect_timer.start_once(int(CONNECT_DELAY_S * 1_000_000))
        return True

    def status_reported(self) -> None:
        """A client was told Connected: ``wifi_prov_mgr_done`` (auto-stop stops now)."""
        if self.config.autostop and self.state is ProvState.SUCCESS:
            self._stop_soon()

    def reset_on_failure(self) -> bool:
        """CtrlReset / ``wifi_prov_mgr_reset_sm_state_on_failure``."""
        if self.state is not ProvState.FAIL:
            self.log.e(
                TAG,
                f"Trying reset when not in failure state. Current state: {self.state.value}",
            )
            return False
        self._cancel_connect()
        self.wifi.disconnect()
        self.wifi.clear_sta_config()
        self._reset_status()
        self.state = ProvState.STARTED
        self.log.i(TAG, "Provisioning state reset after failure: send new credentials")
        return True

    def reset_for_reprovision(self) -> bool:
        """CtrlReprov / ``wifi_prov_mgr_reset_sm_state_for_reprovision``."""
        if self.config.autostop:
            self.log.e(TAG, "Execute wifi_prov_mgr_disable_auto_stop() before calling this API")
            return False
        if self.state in (ProvState.IDLE, ProvState.STOPPING):
            self.log.e(TAG, f"Trying re-provision while provisioning is {self.state.name.lower()}")
            return False
        self._cancel_connect()
        self.wifi.set_storage(WifiStorage.RAM)
        self.wifi.clear_sta_config()
        self.wifi.disconnect()
        self.wifi.set_storage(WifiStorage.FLASH)
        self._reset_status()
        self.state = ProvState.STARTED
        self.events.post(WifiProvEvent.START)
        return True

    def scan(self) -> None:
        """Scan now; keep the strongest ``scan_max_entries`` APs, strongest first."""
        records = sorted(self.wifi.scan(), key=lambda ap: -ap.rssi)
        self.scan_results = records[: self.config.scan_max_entries]
        self.scan_finished = True

    # -- internals -------------------------------------------------------------------
    def _reset_status(self) -> None:
        self.sta_state = StaState.CONNECTING
        self.fail_reason = FailReason.AUTH_ERROR
        self.attempts = 0
        self.connected = None

    def _connect(self) -> None:
        if self.wifi.started and self.wifi.get_config() is not None:
            self.wifi.connect()

    def _cancel_connect(self) -> None:
        if self._connect_timer is not None:
            self._connect_timer.delete()
            self._connect_timer = None

    def _on_wifi(self, event: Enum, data: Any) -> None:
        if self.state not in (ProvState.CRED_RECV, ProvState.FAIL, ProvState.SUCCESS):
            return
        if event is WifiEvent.STA_CONNECTED and isinstance(data, StaConnected):
            self._last_station = data
        elif event is IpEvent.STA_GOT_IP and isinstance(data, GotIp):
            station = self._last_station
            self.sta_state = StaState.CONNECTED
            self.connected = ConnectedInfo(
                data.ip,
                station.authmode if station else AuthMode.OPEN,
                station.ssid if station else "",
                station.bssid if station else "00:00:00:00:00:00",
                station.channel if station else 0,
            )
            if self.state is not ProvState.SUCCESS:
                self.state = ProvState.SUCCESS
                self.log.i(TAG, "Provisioning successful")
                self.events.post(WifiProvEvent.CRED_SUCCESS)
                if self.config.autostop:
                    self._autostop_timer = self.timers.create(self._stop_soon, "autostop")
                    self._autostop_timer.start_once(int(self.config.autostop_timeout_s * 1e6))
        elif event is WifiEvent.STA_DISCONNECTED and isinstance(data, StaDisconnected):
            self._disconnected(data.reason)

    def _disconnected(self, reason: WifiReason) -> None:
        if self.state is ProvState.SUCCESS:
            return
        mapped = (
            FailReason.AUTH_ERROR
            if reason in AUTH_REASONS
            else FailReason.NETWORK_NOT_FOUND
            if reason is WifiReason.NO_AP_FOUND
            else None
        )
        limit = self.config.wifi_conn_attempts
        if limit:
            self.attempts += 1
            if mapped is not None:
                self.fail_reason = mapped
            if self.attempts < limit:
                self.sta_state = StaState.CONN_ATTEMPT_FAILED
                self.wifi.connect()
                return
        elif mapped is None:
            self.sta_state = StaState.CONNECTING
            self.wifi.connect()
            return
        else:
            self.fail_reason = mapped
        self.sta_state = StaState.DISCONNECTED
        if self.state is not ProvState.FAIL:
            self.state = ProvState.FAIL
            self.log.e(TAG, f"Provisioning failed: {self.fail_reason.name} (reason {reason.name})")
            self.events.post(WifiProvEvent.CRED_FAIL, self.fail_reason)

    def _stop_soon(self) -> None:
        if self.state not in (ProvState.IDLE, ProvState.STOPPING):
            self._spawn(self.stop_provisioning(), "wifi_prov.stop")

    async def _teardown(self) -> None:
        self._cancel_connect()
        if self._autostop_timer is not None:
            self._autostop_timer.delete()
            self._autostop_timer = None
        for entry in self._handlers:
            self.events.unregister(entry)
        self._handlers = []
        if self.protocomm is not None:
            await self.config.scheme.stop(self.wifi)
            self.protocomm = None
        self.wifi.set_storage(WifiStorage.FLASH)
