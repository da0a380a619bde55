"""Provisioning schemes: how the manager's protocomm reaches a phone.

``SchemeSoftAP`` brings up a SoftAP named after the service and serves protocomm over HTTP on a
loopback port that it publishes with the AP in the radio world. ``SchemeBle`` serves the GATT
model over a loopback socket and advertises the service name in the radio world.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod

from jumpstart.idf.log import EspLog
from jumpstart.idf.protocomm.ble import (
    DEFAULT_SERVICE_UUID,
    NAME_MAX,
    ProtocommBle,
    advertising_data,
    scan_response,
)
from jumpstart.idf.protocomm.httpd import ProtocommHttpd
from jumpstart.idf.protocomm.protocomm import Protocomm
from jumpstart.idf.radio import BleAdvert
from jumpstart.idf.wifi import ApConfig, Wifi, WifiMode

__all__ = ["ProvScheme", "SchemeBle", "SchemeSoftAP"]

# The first endpoint's 16-bit id; the rest follow in registration order (manager.c).
FIRST_ENDPOINT_ID = 0xFF4F

# scheme_softap: at most 5 stations on the provisioning AP.
SOFTAP_MAX_STATIONS = 5
SERVICE_KEY_LENGTH = (8, 63)


class ProvScheme(ABC):
    """One transport for the provisioning service."""

    name: str
    wifi_mode: WifiMode
    """The Wi-Fi mode while provisioning (and when credentials are applied)."""

    @abstractmethod
    async def start(
        self,
        protocomm: Protocomm,
        wifi: Wifi,
        log: EspLog,
        service_name: str,
        key: str | None,
        endpoints: list[str],
    ) -> None:
        """``endpoints``: every endpoint name, custom ones included, in creation order."""

    @abstractmethod
    async def stop(self, wifi: Wifi) -> None: ...


class SchemeSoftAP(ProvScheme):
    """``wifi_prov_scheme_softap``: SSID = service name, WPA2 with the service key if given."""

    name = "softap"
    wifi_mode = WifiMode.APSTA

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.httpd: ProtocommHttpd | None = None

    async def start(
        self,
        protocomm: Protocomm,
        wifi: Wifi,
        log: EspLog,
        service_name: str,
        key: str | None,
        endpoints: list[str],
    ) -> None:
        if key is not None and not SERVICE_KEY_LENGTH[0] <= len(key) <= SERVICE_KEY_LENGTH[1]:
            raise ValueError("a SoftAP service key has 8..63 characters (or None: open AP)")
        wifi.set_config(ap=ApConfig(service_name, key or "", max_connection=SOFTAP_MAX_STATIONS))
        wifi.set_mode(WifiMode.APSTA)
        if wifi.started:
            wifi.start_ap()
        else:
            wifi.start()
        self.httpd = ProtocommHttpd(protocomm, log, self.host, self.port)
        await self.httpd.start()
        wifi.set_ap_endpoint(self.httpd.endpoint)

    async def stop(self, wifi: Wifi) -> None:
        if self.httpd is not None:
            await self.httpd.stop()
            self.httpd = None
        wifi.stop_ap()


class SchemeBle(ProvScheme):
    """``wifi_prov_scheme_ble``: GATT service, device name = service name; Wi-Fi stays STA."""

    name = "ble"
    wifi_mode = WifiMode.STA

    def __init__(self, service_uuid: uuid.UUID = DEFAULT_SERVICE_UUID) -> None:
        self.service_uuid = service_uuid
        self.server: ProtocommBle | None = None
        self._advert: BleAdvert | None = None

    async def start(
        self,
        protocomm: Protocomm,
        wifi: Wifi,
        log: EspLog,
        service_name: str,
        key: str | None,
        endpoints: list[str],
    ) -> None:
        if len(service_name.encode()) > NAME_MAX:
            raise ValueError(f"a BLE device name has at most {NAME_MAX} bytes")
        wifi.set_mode(WifiMode.STA)
        if not wifi.started:
            wifi.start()
        ids = {name: FIRST_ENDPOINT_ID + n for n, name in enumerate(endpoints)}
        self.server = ProtocommBle(protocomm, log, self.service_uuid, ids)
        await self.server.start()
        self._advert = BleAdvert(
            service_name,
            wifi.device,
            str(self.service_uuid),
            self.server.endpoint,
            advertising_data(self.service_uuid).hex(),
            scan_response(service_name).hex(),
        )
        wifi.world.advertise(self._advert)

    async def stop(self, wifi: Wifi) -> None:
        if self._advert is not None:
            wifi.world.withdraw(self._advert.name, self._advert.device)
            self._advert = None
        if self.server is not None:
            await self.server.stop()
            self.server = None
