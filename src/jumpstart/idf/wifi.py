"""``esp_wifi`` station and SoftAP modes over the radio world, with ``esp_netif`` IP events.

``start()`` posts STA_START; ``connect()`` associates with the configured AP: a missing or
down AP ends in STA_DISCONNECTED(NO_AP_FOUND), a wrong password in STA_DISCONNECTED(AUTH_FAIL),
success in STA_CONNECTED then IP_EVENT STA_GOT_IP. While connected, the AP going down or away
gives STA_DISCONNECTED(BEACON_TIMEOUT). Like an app calling ``esp_wifi_connect()`` from its
disconnect handler, repeated attempts are spaced by a backoff that doubles up to a cap and
resets once an address is obtained.

In AP (or APSTA) mode ``start()`` publishes the device's SoftAP in the world (AP_START); other
parties join it there and the device sees AP_STACONNECTED / AP_STADISCONNECTED. ``stop()``
withdraws it (AP_STOP).

Station credentials set while the storage is FLASH (the default) persist in NVS namespace
``nvs.net80211`` and are what ``get_config()`` returns after a reboot, as the Wi-Fi driver does;
``restore()`` (``esp_wifi_restore``) forgets them.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from enum import Enum, IntEnum, auto

from jumpstart.errors import InputError
from jumpstart.idf.esp_err import EspErr, EspError
from jumpstart.idf.event import EventLoop
from jumpstart.idf.log import EspLog
from jumpstart.idf.nvs import NvsError, NvsFlash
from jumpstart.idf.radio import AccessPoint, AuthMode, RadioWorld

__all__ = [
    "ApConfig",
    "ApRecord",
    "ApStation",
    "GotIp",
    "IpEvent",
    "StaConfig",
    "StaConnected",
    "StaDisconnected",
    "Wifi",
    "WifiEvent",
    "WifiMode",
    "WifiReason",
    "WifiStorage",
]

TAG = "wifi"
# How long association and DHCP take on the simulated air (order of a real AP's).
ASSOCIATE_S = 0.05
DHCP_S = 0.05
WORLD_POLL_S = 0.25
BACKOFF_FIRST_S = 0.25
BACKOFF_CAP_S = 4.0
# Where the driver keeps station credentials (its debug log names these keys).
NVS_NAMESPACE = "nvs.net80211"
NVS_SSID_KEY = "sta.ssid"
NVS_PASSWORD_KEY = "sta.pswd"


class WifiEvent(Enum):
    STA_START = auto()
    STA_STOP = auto()
    STA_CONNECTED = auto()
    STA_DISCONNECTED = auto()
    SCAN_DONE = auto()
    AP_START = auto()
    AP_STOP = auto()
    AP_STACONNECTED = auto()
    AP_STADISCONNECTED = auto()


class IpEvent(Enum):
    STA_GOT_IP = auto()
    STA_LOST_IP = auto()


class WifiReason(IntEnum):
    """``wifi_err_reason_t`` values this simulation produces."""

    ASSOC_LEAVE = 8
    BEACON_TIMEOUT = 200
    NO_AP_FOUND = 201
    AUTH_FAIL = 202


class WifiStorage(Enum):
    """``wifi_storage_t``."""

    FLASH = "flash"
    RAM = "ram"


class WifiMode(Enum):
    NULL = "null"
    STA = "sta"
    AP = "ap"
    APSTA = "apsta"


@dataclass(frozen=True)
class StaConfig:
    ssid: str
    password: str = ""


@dataclass(frozen=True)
class ApConfig:
    """``wifi_ap_config_t``: an empty password means an open network."""

    ssid: str
    password: str = ""
    channel: int = 1
    max_connection: int = 4

    @property
    def auth(self) -> AuthMode:
        return AuthMode.WPA2_PSK if self.password else AuthMode.OPEN


@dataclass(frozen=True, slots=True)
class ApRecord:
    """``wifi_ap_record_t``: one scan result."""

    ssid: str
    bssid: str
    channel: int
    rssi: int
    authmode: AuthMode


@dataclass(frozen=True)
class ApStation:
    """Data of AP_STACONNECTED / AP_STADISCONNECTED."""

    mac: str
    aid: int


@dataclass(frozen=True)
class StaConnected:
    ssid: str
    bssid: str
    channel: int
    authmode: AuthMode


@dataclass(frozen=True)
class StaDisconnected:
    ssid: str
    reason: WifiReason


@dataclass(frozen=True)
class GotIp:
    ip: str
    netmask: str
    gw: str


class Wifi:
    """One device's Wi-Fi driver."""

    def __init__(
        self,
        world: RadioWorld,
        events: EventLoop,
        log: EspLog,
        mac: bytes,
        device: str = "device",
        nvs: NvsFlash | None = None,
    ) -> None:
        self.world = world
        self.nvs = nvs
        self.storage = WifiStorage.FLASH
        self._loaded = False
        self.device = device
        self.ap_config: ApConfig | None = None
        self.ap_running = False
        self._ap_stations: tuple[str, ...] = ()
        self.events = events
        self.log = log
        self.mac = mac
        self.mode = WifiMode.NULL
        self.sta_config: StaConfig | None = None
        self.started = False
        self.connected_to: str | None = None
        self.ip: str | None = None
        self._attempt: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._backoff = 0.0
        self._world_changed: asyncio.Event | None = None
        self._followed: set[str] = set()  # APs whose changes wake the watcher (in memory)
        self._loop: asyncio.AbstractEventLoop | None = None

    def set_mode(self, mode: WifiMode) -> None:
        self.mode = mode

    @property
    def ap_mac(self) -> bytes:
        """The SoftAP's MAC: the base MAC + 1 (``esp_read_mac(..., ESP_MAC_WIFI_SOFTAP)``)."""
        return ((int.from_bytes(self.mac, "big") + 1) % (1 << 48)).to_bytes(6, "big")

    def set_storage(self, storage: WifiStorage) -> None:
        """``esp_wifi_set_storage``: whether later station configs persist."""
        self.storage = storage

    def set_config(self, sta: StaConfig | None = None, *, ap: ApConfig | None = None) -> None:
        if sta is not None:
            if not sta.ssid:
                raise EspError(EspErr.ESP_ERR_INVALID_ARG, "empty SSID")
            self.sta_config = sta
            self._loaded = True
            if self.storage is WifiStorage.FLASH:
                self._persist(sta)
        if ap is not None:
            self.ap_config = ap

    def clear_sta_config(self) -> None:
        """Forget the station config in RAM (the NVS copy stays, unless storage is FLASH)."""
        self.sta_config = None
        self._loaded = True
        if self.storage is WifiStorage.FLASH:
            self._persist(None)

    def get_config(self) -> StaConfig | None:
        """``esp_wifi_get_config(WIFI_IF_STA)``: RAM config, else the one stored in NVS."""
        if not self._loaded:
            self._loaded = True
            self.sta_config = self._load()
        return self.sta_config

    def restore(self) -> None:
        """``esp_wifi_restore``: erase the stored Wi-Fi settings."""
        self.sta_config = None
        self._loaded = True
        self._persist(None)

    def _persist(self, sta: StaConfig | None) -> None:
        if self.nvs is None:
            return
        try:
            with self.nvs.open(NVS_NAMESPACE) as handle:
                if sta is None:
                    handle.erase_all()
                else:
                    handle.set_str(NVS_SSID_KEY, sta.ssid)
                    handle.set_str(NVS_PASSWORD_KEY, sta.password)
                handle.commit()
        except NvsError as err:
            if err.code is EspErr.ESP_ERR_NVS_NOT_INITIALIZED:
                self.log.w(TAG, "NVS is not initialised: the Wi-Fi config stays in RAM only")
                return
            raise EspError(err.code, f"cannot store Wi-Fi config: {err}") from None

    def _load(self) -> StaConfig | None:
        if self.nvs is None:
            return None
        try:
            with self.nvs.open(NVS_NAMESPACE) as handle:
                return StaConfig(handle.get_str(NVS_SSID_KEY), handle.get_str(NVS_PASSWORD_KEY))
        except NvsError:
            return None

    def start(self) -> None:
        if self.mode is WifiMode.NULL:
            raise EspError(EspErr.ESP_ERR_INVALID_STATE, "set_mode() before start()")
        self.get_config()
        if self.mode in (WifiMode.AP, WifiMode.APSTA):
            self.start_ap()
        self.started = True
        self._loop = asyncio.get_running_loop()
        self._world_changed = asyncio.Event()
        self._watch = self._loop.create_task(self._watch_world())
        if self.mode in (WifiMode.STA, WifiMode.APSTA):
            self.events.post(WifiEvent.STA_START)

    def start_ap(self) -> None:
        """Bring the SoftAP up (``esp_wifi_set_mode(APSTA)`` on a running driver)."""
        config = self.ap_config
        if config is None:
            raise EspError(EspErr.ESP_ERR_INVALID_STATE, "set_config(ap=...) before start()")
        try:
            self.world.host(
                AccessPoint(
                    config.ssid,
                    config.password,
                    config.auth,
                    config.channel,
                    rssi=-30,
                    device=self.device,
                    max_connection=config.max_connection,
                )
            )
        except InputError as err:
            raise EspError(EspErr.ESP_ERR_INVALID_ARG, str(err)) from None
        self.ap_running = True
        self._ap_stations = ()
        self._follow(config.ssid)
        self.log.i(TAG, f"SoftAP {config.ssid!r} started on channel {config.channel}")
        self.events.post(WifiEvent.AP_START)

    def set_ap_endpoint(self, endpoint: str | None) -> None:
        """Publish where this device serves on loopback (found by clients joining the AP)."""
        if self.ap_config is None or not self.ap_running:
            raise EspError(EspErr.ESP_ERR_INVALID_STATE, "the SoftAP is not running")
        self.world.set_endpoint(self.ap_config.ssid, endpoint)

    def connect(self) -> None:
        """``esp_wifi_connect``: start an association attempt (after the backoff, if any)."""
        if not self.started:
            raise EspError(EspErr.ESP_ERR_INVALID_STATE, "Wi-Fi is not started")
        if self.get_config() is None:
            raise EspError(EspErr.ESP_ERR_WIFI_SSID, "no station configuration")
        if self._attempt is not None and not self._attempt.done():
            return
        self._attempt = asyncio.get_running_loop().create_task(self._associate(self._backoff))

    def disconnect(self) -> None:
        self._cancel_attempt()
        if self.connected_to is not None:
            self._lost(WifiReason.ASSOC_LEAVE)

    async def stop(self) -> None:
        self._cancel_attempt()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        for ssid in list(self._followed):
            self._unfollow(ssid)
        self.stop_ap()
        if self.started:
            self.connected_to = self.ip = None
            self.started = False
            if self.mode in (WifiMode.STA, WifiMode.APSTA):
                self.events.post(WifiEvent.STA_STOP)

    def stop_ap(self) -> None:
        """Take the SoftAP down (mode back to STA on a running driver)."""
        if self.ap_running and self.ap_config is not None:
            self.ap_running = False
            self._unfollow(self.ap_config.ssid)
            try:
                self.world.unhost(self.ap_config.ssid, self.device)
            except InputError as err:
                self.log.w(TAG, f"could not withdraw the SoftAP: {err}")
            self.log.i(TAG, f"SoftAP {self.ap_config.ssid!r} stopped")
            self.events.post(WifiEvent.AP_STOP)
        if self.mode is WifiMode.APSTA:
            self.mode = WifiMode.STA
        elif self.mode is WifiMode.AP:
            self.mode = WifiMode.NULL

    def scan(self) -> list[ApRecord]:
        """``esp_wifi_scan_start`` + ``get_ap_records``: the APs that are up, strongest first."""
        self._reload_world()
        return [
            ApRecord(ap.ssid, ap.bssid, ap.channel, ap.rssi, ap.auth)
            for ap in self.world.access_points()
            if ap.up and ap.device != self.device
        ]

    # -- internals ---------------------------------------------------------------------
    def _cancel_attempt(self) -> None:
        if self._attempt is not None:
            self._attempt.cancel()
            self._attempt = None

    def _reload_world(self) -> None:
        try:
            self.world.reload()
        except InputError as err:
            self.log.w(TAG, f"radio world unreadable, keeping the last one: {err}")

    async def _associate(self, delay: float) -> None:
        assert self.sta_config is not None
        if delay:
            await asyncio.sleep(delay)
        await asyncio.sleep(ASSOCIATE_S)
        self._reload_world()
        config = self.sta_config
        ap = self.world.find(config.ssid)
        if ap is None or not ap.up:
            self._failed(config.ssid, WifiReason.NO_AP_FOUND)
            return
        if ap.auth is not AuthMode.OPEN and config.password != ap.password:
            self.log.w(TAG, f"auth failure connecting to {config.ssid!r}: wrong password")
            self._failed(config.ssid, WifiReason.AUTH_FAIL)
            return
        self.connected_to = ap.ssid
        self._follow(ap.ssid)
        self.log.i(
            TAG,
            f"connected with {ap.ssid}, aid = 1, channel {ap.channel}, BW20, bssid = {ap.bssid}",
        )
        self.events.post(
            WifiEvent.STA_CONNECTED, StaConnected(ap.ssid, ap.bssid, ap.channel, ap.auth)
        )
        await asyncio.sleep(DHCP_S)
        self.ip = ap.address_for(self.mac)
        self._backoff = 0.0
        self.log.i(
            "esp_netif_handlers", f"sta ip: {self.ip}, mask: 255.255.255.0, gw: {ap.subnet}.1"
        )
        self.events.post(IpEvent.STA_GOT_IP, GotIp(self.ip, "255.255.255.0", f"{ap.subnet}.1"))

    def _failed(self, ssid: str, reason: WifiReason) -> None:
        self._backoff = min(BACKOFF_CAP_S, max(BACKOFF_FIRST_S, self._backoff * 2))
        self.events.post(WifiEvent.STA_DISCONNECTED, StaDisconnected(ssid, reason))

    def _lost(self, reason: WifiReason) -> None:
        ssid = self.connected_to or ""
        self.connected_to = None
        if not (self.ap_running and self.ap_config is not None and self.ap_config.ssid == ssid):
            self._unfollow(ssid)
        if self.ip is not None:
            self.ip = None
            self.events.post(IpEvent.STA_LOST_IP)
        self.log.i(TAG, f"state: run -> init (reason {reason.value} {reason.name})")
        self.events.post(WifiEvent.STA_DISCONNECTED, StaDisconnected(ssid, reason))

    # -- the world's changes: pushed for an in-memory world, else polled -------------------
    def _follow(self, ssid: str) -> None:
        if self.world.pushes_changes and ssid not in self._followed:
            self._followed.add(ssid)
            self.world.listen(ssid, self._poke)

    def _unfollow(self, ssid: str) -> None:
        if ssid in self._followed:
            self._followed.discard(ssid)
            self.world.unlisten(ssid, self._poke)

    def _poke(self) -> None:
        # Changes may come from another thread (a provisioning client joining the SoftAP).
        if self._loop is not None and self._world_changed is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self._world_changed.set)

    async def _watch_world(self) -> None:
        changed = self._world_changed
        while True:
            if self.world.pushes_changes and changed is not None:
                # Thousands of devices in one process: wake on a change, never poll.
                await changed.wait()
                changed.clear()
            else:
                await asyncio.sleep(WORLD_POLL_S)
            if self.connected_to is None and not self.ap_running:
                continue
            self._reload_world()
            if self.connected_to is not None:
                ap = self.world.find(self.connected_to)
                if ap is None or not ap.up:
                    self._lost(WifiReason.BEACON_TIMEOUT)
            if self.ap_running and self.ap_config is not None:
                self._check_stations()

    def _check_stations(self) -> None:
        assert self.ap_config is not None
        own = self.world.find(self.ap_config.ssid)
        now = own.stations if own is not None and own.device == self.device else ()
        for mac in now:
            if mac not in self._ap_stations:
                self.log.i(TAG, f"station {mac} join, AID={now.index(mac) + 1}")
                self.events.post(WifiEvent.AP_STACONNECTED, ApStation(mac, now.index(mac) + 1))
        for aid, mac in enumerate(self._ap_stations, 1):
            if mac not in now:
                self.log.i(TAG, f"station {mac} leave, AID={aid}")
                self.events.post(WifiEvent.AP_STADISCONNECTED, ApStation(mac, aid))
        self._ap_stations = now
