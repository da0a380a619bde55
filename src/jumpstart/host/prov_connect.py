"""Find a provisionable device in the radio world and open a transport to it."""

from __future__ import annotations

from jumpstart.errors import InputError
from jumpstart.host.prov_ble import open_ble
from jumpstart.host.prov_transport import HttpTransport, ProvTransport
from jumpstart.idf.efuse import format_mac, random_mac
from jumpstart.idf.radio import RadioWorld

__all__ = ["TRANSPORTS", "open_device"]

TRANSPORTS = ("softap", "httpd", "ble")


def _softap_candidates(world: RadioWorld) -> list[str]:
    return [ap.ssid for ap in world.access_points() if ap.device and ap.endpoint]


class _JoinedSoftAP(ProvTransport):
    """Join the device's SoftAP as a station, talk HTTP to its endpoint, leave when done."""

    def __init__(self, world: RadioWorld, ssid: str, password: str) -> None:
        self.world = world
        self.ssid = ssid
        self.mac = format_mac(random_mac())
        ap = world.join(ssid, self.mac, password)
        if ap.endpoint is None:
            world.leave(ssid, self.mac)
            raise InputError(f"{ssid!r} has no provisioning service running")
        self.http = HttpTransport(ap.endpoint)

    def send(self, endpoint: str, data: bytes) -> bytes:
        return self.http.send(endpoint, data)

    def close(self) -> None:
        self.http.close()
        self.world.leave(self.ssid, self.mac)


def open_device(
    world: RadioWorld, transport: str, service_name: str | None, ap_password: str = ""
) -> ProvTransport:
    """A transport to the device named ``service_name`` in ``world``.

    ``service_name`` is a SoftAP SSID (the client joins that AP) or a BLE device name; over
    SoftAP a ``host:port`` is used directly; None picks the only device offering provisioning.
    """
    if transport not in TRANSPORTS:
        raise InputError(f"transport {transport!r} is not one of {', '.join(TRANSPORTS)}")
    if transport == "ble":
        return open_ble(world, service_name)
    if service_name and ":" in service_name:
        return HttpTransport(service_name)
    if service_name is None:
        candidates = _softap_candidates(world)
        if len(candidates) != 1:
            found = ", ".join(candidates) or "none"
            raise InputError(f"pass --service_name: devices offering SoftAP provisioning: {found}")
        service_name = candidates[0]
    return _JoinedSoftAP(world, service_name, ap_password)
