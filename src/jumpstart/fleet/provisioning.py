"""Provision a fleet as its owners would: a phone joins each outlet's SoftAP and runs
Espressif's unified provisioning (Security 1 with the PoP on that outlet's box label), giving
it the owner's home network."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from jumpstart.errors import InputError
from jumpstart.fleet.fleet import FleetDevice
from jumpstart.host.prov_client import ProvOptions, provision
from jumpstart.host.prov_connect import open_device
from jumpstart.idf.radio import RadioWorld

__all__ = ["provision_all", "softap_name"]

CONCURRENCY = 8  # phones at work at once (each a blocking esp_prov-style client in a thread)
TIMEOUT_S = 180.0  # for one device, retries included (a power cut may interrupt it)
RETRY_S = 1.0
POLL_S = 0.2  # how often the phone asks the device for its Wi-Fi state


def softap_name(member: FleetDevice) -> str:
    """The outlet's provisioning SoftAP: PROV_ and the last three bytes of its MAC."""
    mac = member.device.efuse.mac
    return f"PROV_{mac[3]:02X}{mac[4]:02X}{mac[5]:02X}"


def _provision_one(member: FleetDevice, world: RadioWorld) -> bool:
    ssid = softap_name(member)
    ap = world.find(ssid)
    if ap is None or ap.endpoint is None:
        return False  # not advertising (yet, or any more)
    options = ProvOptions(
        sec_ver=1,
        pop=member.pop,
        ssid=member.home.ssid,
        passphrase=member.home.password,
        poll_interval_s=POLL_S,
    )
    try:
        transport = open_device(world, "softap", ssid)
    except InputError:
        return False
    try:
        return provision(transport, options, say=lambda _line: None)
    except (InputError, OSError, ValueError):
        return False  # the device rebooted under us, or is not ready: try again
    finally:
        transport.close()


async def provision_all(
    members: list[FleetDevice], world: RadioWorld, done: Callable[[], None]
) -> int:
    """Provision every member (``done()`` after each); returns how many are provisioned.
    A member that reaches the cloud without us (its network was already saved) counts."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(member: FleetDevice) -> bool:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if member.connected:
                done()
                return True
            async with gate:
                ok = await asyncio.to_thread(_provision_one, member, world)
            if ok:
                done()
                return True
            await asyncio.sleep(RETRY_S)
        return False

    results = await asyncio.gather(*(one(member) for member in members))
    return sum(results)
