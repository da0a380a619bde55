"""The radio world: the access points a virtual device can hear.

Shared by processes through ``world.toml`` (``jumpstart world ap add|remove|up|down`` edits
it; running devices notice within a poll interval) or held in memory for devices that share one
process. Each AP serves one IPv4 /24 subnet from which stations get their address.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import tomllib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from jumpstart.errors import InputError

__all__ = ["AccessPoint", "AuthMode", "BleAdvert", "RadioWorld"]

# WPA2 passphrases are 8..63 printable characters (IEEE 802.11i); SSIDs are 1..32 bytes.
PASSWORD_LENGTH = (8, 63)
SSID_MAX = 32


class AuthMode(Enum):
    """``wifi_auth_mode_t`` names."""

    OPEN = "OPEN"
    WEP = "WEP"
    WPA_PSK = "WPA_PSK"
    WPA2_PSK = "WPA2_PSK"
    WPA_WPA2_PSK = "WPA_WPA2_PSK"
    WPA3_PSK = "WPA3_PSK"
    WPA2_WPA3_PSK = "WPA2_WPA3_PSK"


@dataclass(frozen=True)
class AccessPoint:
    ssid: str
    password: str = ""
    auth: AuthMode = AuthMode.WPA2_PSK
    channel: int = 6
    rssi: int = -50
    up: bool = True
    device: str | None = None
    """The virtual device whose SoftAP this is (None: an AP of the world itself)."""
    endpoint: str | None = None
    """``host:port`` on loopback where the hosting device serves (e.g. provisioning)."""
    stations: tuple[str, ...] = ()
    """MACs of the stations joined to a device's SoftAP."""
    max_connection: int = 4

    def __post_init__(self) -> None:
        if not 1 <= len(self.ssid.encode()) <= SSID_MAX:
            raise InputError(f"SSID {self.ssid!r} must be 1 to {SSID_MAX} bytes")
        if self.auth is not AuthMode.OPEN:
            low, high = PASSWORD_LENGTH
            if not low <= len(self.password) <= high:
                raise InputError(
                    f"AP {self.ssid!r}: a {self.auth.value} password has {low} to {high} "
                    "characters (or use --auth OPEN)"
                )
        if not 1 <= self.channel <= 14:
            raise InputError(f"AP {self.ssid!r}: channel {self.channel} is not 1..14")
        if not -100 <= self.rssi <= 0:
            raise InputError(f"AP {self.ssid!r}: RSSI {self.rssi} dBm is not -100..0")

    @property
    def subnet(self) -> str:
        """``192.168.N`` for this SSID, stable across processes."""
        return f"192.168.{zlib.crc32(self.ssid.encode()) % 250 + 1}"

    @property
    def bssid(self) -> str:
        digest = zlib.crc32(b"bssid:" + self.ssid.encode()).to_bytes(4, "big")
        return ":".join(f"{b:02x}" for b in b"\x02\x00" + digest)

    def address_for(self, mac: bytes) -> str:
        """The DHCP lease a station with ``mac`` gets (.2 .. .251; .1 is the gateway)."""
        return f"{self.subnet}.{zlib.crc32(mac) % 250 + 2}"

    def to_toml(self) -> str:
        return (
            "[[ap]]\n"
            f"ssid = {json.dumps(self.ssid)}\n"
            f"password = {json.dumps(self.password)}\n"
            f'auth = "{self.auth.value}"\n'
            f"channel = {self.channel}\n"
            f"rssi = {self.rssi}\n"
            f"up = {'true' if self.up else 'false'}\n"
            + (f"device = {json.dumps(self.device)}\n" if self.device else "")
            + (f"endpoint = {json.dumps(self.endpoint)}\n" if self.endpoint else "")
            + (f"stations = {json.dumps(list(self.stations))}\n" if self.stations else "")
            + (f"max_connection = {self.max_connection}\n" if self.device else "")
        )


@dataclass(frozen=True)
class BleAdvert:
    """A device advertising a BLE GATT service (e.g. provisioning) under ``name``."""

    name: str
    device: str
    service_uuid: str
    endpoint: str
    """``host:port`` on loopback where the device accepts connections (its link layer)."""
    adv_data: str = ""
    """Advertising data (hex), as a scanner receives it."""
    scan_response: str = ""

    def to_toml(self) -> str:
        return (
            "[[ble]]\n"
            f"name = {json.dumps(self.name)}\n"
            f"device = {json.dumps(self.device)}\n"
            f"service_uuid = {json.dumps(self.service_uuid)}\n"
            f"endpoint = {json.dumps(self.endpoint)}\n"
            f"adv_data = {json.dumps(self.adv_data)}\n"
            f"scan_response = {json.dumps(self.scan_response)}\n"
        )


class RadioWorld:
    """The APs in range; file-backed (``path``) or in memory (``path=None``)."""

    def __init__(self, path: Path | None = None, aps: list[AccessPoint] | None = None) -> None:
        self.path = path
        self._aps: dict[str, AccessPoint] = {ap.ssid: ap for ap in aps or []}
        self._adverts: dict[str, BleAdvert] = {}
        self._stamp: tuple[int, int] | None = None
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        if path is not None:
            self.reload()

    # -- watching ----------------------------------------------------------------------
    @property
    def pushes_changes(self) -> bool:
        """In memory, every change is made here and ``listen`` hears it; a file-backed world
        is also changed by other processes, which only polling ``reload`` sees."""
        return self.path is None

    def listen(self, ssid: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from whichever thread made the change) when AP ``ssid``
        changes through this object."""
        self._listeners.setdefault(ssid, []).append(callback)

    def unlisten(self, ssid: str, callback: Callable[[], None]) -> None:
        callbacks = self._listeners.get(ssid, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            self._listeners.pop(ssid, None)

    def _changed(self, ssid: str) -> None:
        for callback in tuple(self._listeners.get(ssid, ())):
            callback()

    # -- reading -----------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read the file if it changed; returns whether it did. A bad file is an InputError."""
        if self.path is None:
            return False
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            changed = bool(self._aps) or self._stamp is not None
            self._aps, self._adverts, self._stamp = {}, {}, None
            return changed
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return False
        self._aps, self._adverts = self._parse(self.path.read_text())
        self._stamp = stamp
        return True

    def _parse(self, text: str) -> tuple[dict[str, AccessPoint], dict[str, BleAdvert]]:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise InputError(f"{self.path}: {err}") from None
        aps: dict[str, AccessPoint] = {}
        for entry in data.get("ap", []):
            try:
                ap = AccessPoint(
                    ssid=str(entry["ssid"]),
                    password=str(entry.get("password", "")),
                    auth=AuthMode(entry.get("auth", "WPA2_PSK")),
                    channel=int(entry.get("channel", 6)),
                    rssi=int(entry.get("rssi", -50)),
                    up=bool(entry.get("up", True)),
                    device=entry.get("device"),
                    endpoint=entry.get("endpoint"),
                    stations=tuple(str(m) for m in entry.get("stations", [])),
                    max_connection=int(entry.get("max_connection", 4)),
                )
            except (KeyError, ValueError, TypeError) as err:
                raise InputError(f"{self.path}: bad [[ap]] entry {entry!r:.80} ({err})") from None
            aps[ap.ssid] = ap
        adverts: dict[str, BleAdvert] = {}
        for entry in data.get("ble", []):
            try:
                advert = BleAdvert(**{k: str(v) for k, v in entry.items()})
            except TypeError as err:
                raise InputError(f"{self.path}: bad [[ble]] entry {entry!r:.80} ({err})") from None
            adverts[advert.name] = advert
        return aps, adverts

    def access_points(self) -> list[AccessPoint]:
        return sorted(self._aps.values(), key=lambda ap: (-ap.rssi, ap.ssid))

    def find(self, ssid: str) -> AccessPoint | None:
        return self._aps.get(ssid)

    def adverts(self) -> list[BleAdvert]:
        return sorted(self._adverts.values(), key=lambda a: a.name)

    def find_advert(self, name: str) -> BleAdvert | None:
        return self._adverts.get(name)

    def advertise(self, advert: BleAdvert) -> None:
        """Start advertising; another device's advert of the same name is refused."""
        with self._change():
            current = self._adverts.get(advert.name)
            if current is not None and current.device != advert.device:
                raise InputError(f"BLE name {advert.name!r} is advertised by {current.device!r}")
            self._adverts[advert.name] = advert

    def withdraw(self, name: str, device: str) -> None:
        with self._change():
            current = self._adverts.get(name)
            if current is not None and current.device == device:
                del self._adverts[name]

    # -- changing ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _change(self) -> Iterator[None]:
        """Read-modify-write under an exclusive lock, so processes never lose each other's
        changes to the file."""
        if self.path is None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._stamp = None
            self.reload()
            yield
            self._save()

    def add(self, ap: AccessPoint) -> None:
        with self._change():
            if ap.ssid in self._aps:
                raise InputError(f"an AP named {ap.ssid!r} already exists; remove it first")
            self._aps[ap.ssid] = ap
        self._changed(ap.ssid)

    def remove(self, ssid: str) -> None:
        with self._change():
            self._require(ssid)
            del self._aps[ssid]
        self._changed(ssid)

    def set_up(self, ssid: str, up: bool) -> None:
        with self._change():
            self._aps[ssid] = replace(self._require(ssid), up=up)
        self._changed(ssid)

    def host(self, ap: AccessPoint) -> None:
        """Publish a device's SoftAP, replacing one it left behind; another owner's SSID is
        refused."""
        with self._change():
            current = self._aps.get(ap.ssid)
            if current is not None and current.device != ap.device:
                owner = f"device {current.device!r}" if current.device else "the world"
                raise InputError(f"SSID {ap.ssid!r} is already used by {owner}")
            self._aps[ap.ssid] = ap
        self._changed(ap.ssid)

    def unhost(self, ssid: str, device: str) -> None:
        with self._change():
            current = self._aps.get(ssid)
            if current is not None and current.device == device:
                del self._aps[ssid]
        self._changed(ssid)

    def set_endpoint(self, ssid: str, endpoint: str | None) -> None:
        with self._change():
            self._aps[ssid] = replace(self._require(ssid), endpoint=endpoint)
        self._changed(ssid)

    def join(self, ssid: str, mac: str, password: str = "") -> AccessPoint:
        """A station joins a device's SoftAP (what a phone does before provisioning)."""
        with self._change():
            ap = self._require(ssid)
            if not ap.up:
                raise InputError(f"AP {ssid!r} is down")
            if ap.auth is not AuthMode.OPEN and password != ap.password:
                raise InputError(f"wrong password for {ssid!r}")
            if mac not in ap.stations:
                if len(ap.stations) >= ap.max_connection:
                    raise InputError(f"AP {ssid!r} already has {ap.max_connection} stations")
                ap = replace(ap, stations=(*ap.stations, mac))
                self._aps[ssid] = ap
        self._changed(ssid)
        return ap

    def leave(self, ssid: str, mac: str) -> None:
        with self._change():
            ap = self._aps.get(ssid)
            if ap is not None and mac in ap.stations:
                self._aps[ssid] = replace(ap, stations=tuple(m for m in ap.stations if m != mac))
        self._changed(ssid)

    def _require(self, ssid: str) -> AccessPoint:
        ap = self._aps.get(ssid)
        if ap is None:
            known = ", ".join(sorted(self._aps)) or "none"
            raise InputError(f"no AP {ssid!r} in the radio world (known: {known})")
        return ap

    def _save(self) -> None:
        if self.path is None:
            return
        text = "# The radio world: access points in range of every virtual device.\n\n"
        text += "\n".join(ap.to_toml() for ap in self._aps.values())
        if self._adverts:
            text += "\n" + "\n".join(ad.to_toml() for ad in self._adverts.values())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".world-")
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, self.path)
        stat = self.path.stat()
        self._stamp = (stat.st_mtime_ns, stat.st_size)
