"""``esp_wifi`` station mode over the radio world, with ``esp_netif`` style IP events.

``start()`` posts STA_START; ``connect()`` associates with the configured AP: a missing or
down AP ends in STA_DISCONNECTED(NO_AP_FOUND), a wrong password in STA_DISCONNECTED(AUTH_FAIL),
success in STA_CONNECTED then IP_EVENT STA_GOT_IP. While connected, the AP going down or away
gives STA_DISCONNECTED(BEACON_TIMEOUT). Like an app calling ``esp_wifi_connect()`` from its
disconnect handler, repeated attempts are spaced by a backoff that doubles up to a cap and
resets once an address is obtained.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum, IntEnum, auto

from jumpstart.errors import InputError
from jumpstart.idf.esp_err import EspErr, EspError
from jumpstart.idf.event import EventLoop
from jumpstart.idf.log import EspLog
from jumpstart.idf.radio import AuthMode, RadioWorld

__all__ = [
    "GotIp",
    "IpEvent",
    "StaConfig",
    "StaConnected",
    "StaDisconnected",
    "Wifi",
    "WifiEvent",
    "WifiMode",
    "WifiReason",
]

TAG = "wifi"
# How long association and DHCP take on the simulated air (order of a real AP's).
ASSOCIATE_S = 0.05
DHCP_S = 0.05
WORLD_POLL_S = 0.25
BACKOFF_FIRST_S = 0.25
BACKOFF_CAP_S = 4.0


class WifiEvent(Enum):
    STA_START = auto()
    STA_STOP = auto()
    STA_CONNECTED = auto()
    STA_DISCONNECTED = auto()
    SCAN_DONE = auto()


class IpEvent(Enum):
    STA_GOT_IP = auto()
    STA_LOST_IP = auto()


class WifiReason(IntEnum):
    """``wifi_err_reason_t`` values this simulation produces."""

    ASSOC_LEAVE = 8
    BEACON_TIMEOUT = 200
    NO_AP_FOUND = 201
    AUTH_FAIL = 202


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

    def __init__(self, world: RadioWorld, events: EventLoop, log: EspLog, mac: bytes) -> None:
        self.world = world
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

    def set_mode(self, mode: WifiMode) -> None:
        self.mode = mode

    def set_config(self, sta: StaConfig) -> None:
        if not sta.ssid:
            raise EspError(EspErr.ESP_ERR_INVALID_ARG, "empty SSID")
        self.sta_config = sta

    def start(self) -> None:
        if self.mode not in (WifiMode.STA, WifiMode.APSTA):
            raise EspError(EspErr.ESP_ERR_INVALID_STATE, "set_mode(STA) before start()")
        self.started = True
        self._watch = asyncio.get_running_loop().create_task(self._watch_world())
        self.events.post(WifiEvent.STA_START)

    def connect(self) -> None:
        """``esp_wifi_connect``: start an association attempt (after the backoff, if any)."""
        if not self.started:
            raise EspError(EspErr.ESP_ERR_INVALID_STATE, "Wi-Fi is not started")
        if self.sta_config is None:
            raise EspError(EspErr.ESP_ERR_INVALID_STATE, "no station configuration")
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
        if self.started:
            self.connected_to = self.ip = None
            self.started = False
            self.events.post(WifiEvent.STA_STOP)

    def scan(self) -> list[dict[str, object]]:
        """``esp_wifi_scan_start`` + ``get_ap_records``: the APs that are up, strongest first."""
        self._reload_world()
        return [
            {
                "ssid": ap.ssid,
                "bssid": ap.bssid,
                "rssi": ap.rssi,
                "channel": ap.channel,
                "authmode": ap.auth.value,
            }
            for ap in self.world.access_points()
            if ap.up
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
        if self.ip is not None:
            self.ip = None
            self.events.post(IpEvent.STA_LOST_IP)
        self.log.i(TAG, f"state: run -> init (reason {reason.value} {reason.name})")
        self.events.post(WifiEvent.STA_DISCONNECTED, StaDisconnected(ssid, reason))

    async def _watch_world(self) -> None:
        while True:
            await asyncio.sleep(WORLD_POLL_S)
            if self.connected_to is None:
                continue
            self._reload_world()
            ap = self.world.find(self.connected_to)
            if ap is None or not ap.up:
                self._lost(WifiReason.BEACON_TIMEOUT)
