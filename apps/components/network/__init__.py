"""network: Wi-Fi station with unified provisioning (the guide's chapter 5), for every app
from 4_network_config on.

Unprovisioned, the device starts a SoftAP (or BLE) provisioning service named PROV_ + the last
three bytes of its MAC, with Security 1 and the proof of possession from its factory partition,
and prints the QR code the phone apps scan. Provisioned, it goes straight to station mode.
``reset_to_factory`` erases the Wi-Fi credentials and reboots (the button's long press).
"""

import io
import json
from enum import Enum
from typing import Any

import segno

from jumpstart.idf.app_context import AppContext
from jumpstart.idf.esp_err import EspError
from jumpstart.idf.nvs import NvsError, OpenMode
from jumpstart.idf.protocomm import Security0, Security1, Security2, SecurityScheme
from jumpstart.idf.wifi import GotIp, IpEvent, WifiEvent, WifiMode
from jumpstart.idf.wifi_prov import (
    ProvConfig,
    SchemeBle,
    SchemeSoftAP,
    WifiProvEvent,
    WifiProvManager,
)

TAG = "app_main"  # the guide logs these lines from app_main
FACTORY_PARTITION = "fctry"
FACTORY_NAMESPACE = "fctry"
QR_VERSION = "v1"
QRCODE_BASE_URL = "https://espressif.github.io/esp-jumpstart/qrcode.html"
# ESP-IDF's wifi_prov_mgr example credentials (wifiprov / abcd1234), for development only.
EXAMPLE_SEC2_VERIFIER_HEX_PATH = "sec2_example_verifier.hex"


def init_factory(ctx: AppContext) -> None:
    """Open the factory partition read-only. With NVS encryption on, the factory may have
    encrypted it with the keys it put in nvs_keys: tried first, then plain."""
    keys = ctx.nvs.security_cfg() if ctx.nvs.encryption else None
    if keys is not None:
        ctx.nvs.init(FACTORY_PARTITION, keys=keys, read_only=True)
        try:
            with ctx.nvs.open(FACTORY_NAMESPACE, OpenMode.READONLY, FACTORY_PARTITION):
                return
        except NvsError:
            ctx.nvs.deinit(FACTORY_PARTITION)  # not encrypted with these keys
    ctx.nvs.init(FACTORY_PARTITION, read_only=True)


def factory_string(ctx: AppContext, key: str) -> str | None:
    """A value from the read-only factory partition, or None when it is not there."""
    try:
        init_factory(ctx)
        with ctx.nvs.open(FACTORY_NAMESPACE, OpenMode.READONLY, FACTORY_PARTITION) as handle:
            return handle.get_str(key)
    except NvsError:
        return None


def service_name(ctx: AppContext) -> str:
    mac = ctx.mac
    return f"PROV_{mac[3]:02X}{mac[4]:02X}{mac[5]:02X}"


def security_scheme(ctx: AppContext) -> tuple[SecurityScheme, str | None]:
    level = int(ctx.config["prov_security"])
    if level == 0:
        return Security0(), None
    if level == 1:
        pop = factory_string(ctx, "pop") or str(ctx.config["prov_pop"])
        return Security1(pop.encode()), pop
    salt = bytes.fromhex(factory_string(ctx, "sec2_salt") or str(ctx.config["prov_sec2_salt"]))
    verifier_hex = (
        factory_string(ctx, "sec2_verifier")
        or ctx.embedded(EXAMPLE_SEC2_VERIFIER_HEX_PATH).decode().strip()
    )
    patch = int(ctx.config["prov_sec2_patch"])
    return Security2(salt, bytes.fromhex(verifier_hex), patch), None


def print_qr(ctx: AppContext, name: str, pop: str | None, transport: str) -> None:
    payload: dict[str, Any] = {"ver": QR_VERSION, "name": name}
    if pop is not None:
        payload["pop"] = pop
    if int(ctx.config["prov_security"]) == 2:
        # The user the factory's salt and verifier were made for, when it wrote them.
        payload["username"] = factory_string(ctx, "sec2_username") or str(
            ctx.config["prov_sec2_username"]
        )
    payload["transport"] = transport
    text = json.dumps(payload, separators=(",", ":"))
    ctx.log.i(TAG, "Scan this QR code from the provisioning application for Provisioning.")
    art = io.StringIO()
    segno.make(text, error="l").terminal(out=art, compact=True, border=2)
    ctx.log.print(art.getvalue().rstrip("\n"))
    ctx.log.i(
        TAG,
        f"If QR code is not visible, copy paste the below URL in a browser.\n"
        f"{QRCODE_BASE_URL}?data={text}",
    )
    ctx.log.i(TAG, f"QR payload: {text}")


class Network:
    """The station, and provisioning when it has no credentials yet."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        wifi = ctx.wifi
        assert wifi is not None
        self.wifi = wifi

    def reset_to_factory(self) -> None:
        self.ctx.log.i(TAG, "Reset to factory: erasing Wi-Fi credentials and rebooting")
        self.wifi.restore()
        self.ctx.restart()

    def _event_handler(self, event: Enum, data: Any) -> None:
        ctx, wifi = self.ctx, self.wifi
        if event is WifiEvent.STA_START and wifi.get_config() is not None:
            wifi.connect()
        elif event is IpEvent.STA_GOT_IP:
            assert isinstance(data, GotIp)
            ctx.log.i(TAG, f"Connected with IP Address:{data.ip}")
        elif event is WifiEvent.STA_DISCONNECTED:
            ctx.log.i(TAG, "Disconnected. Connecting to the AP again...")
            try:
                wifi.connect()
            except EspError as err:  # credentials were just reset: wait for new ones
                ctx.log.w(TAG, f"not reconnecting: {err}")
        elif event is WifiProvEvent.END:
            ctx.log.i(TAG, "Provisioning ended")

    async def start(self) -> None:
        """Join the stored network, or start provisioning and return once it is running."""
        ctx, wifi = self.ctx, self.wifi
        ctx.events.register(WifiEvent, self._event_handler)
        ctx.events.register(IpEvent, self._event_handler)
        ctx.events.register(WifiProvEvent, self._event_handler)
        transport = str(ctx.config["prov_transport"])
        if transport == "ble" and not ctx.chip.has_bluetooth:
            # Guide 5.2.1: ESP8266 provisions over SoftAP only.
            ctx.log.e(TAG, f"{ctx.chip.no_bluetooth_reason}; provisioning over SoftAP")
            transport = "softap"
        scheme = SchemeBle() if transport == "ble" else SchemeSoftAP()
        manager = WifiProvManager(
            ProvConfig(scheme), wifi, ctx.events, ctx.timers, ctx.log, ctx.create_task
        )
        ctx.on_teardown(manager.stop_provisioning)
        if manager.is_provisioned():
            ctx.log.i(TAG, "Already provisioned, starting Wi-Fi STA")
            wifi.set_mode(WifiMode.STA)
            wifi.start()
            return
        ctx.log.i(TAG, "Starting provisioning")
        name = service_name(ctx)
        security, pop = security_scheme(ctx)
        key = str(ctx.config["prov_service_key"]) or None
        # An optional endpoint for application data sent during provisioning (any format).
        manager.endpoint_create("custom-data")
        await manager.start_provisioning(security, name, key)

        def custom_data(_session: int, data: bytes) -> bytes:
            ctx.log.i(TAG, f"Received data: {data.decode(errors='replace')}")
            return b"SUCCESS\0"

        manager.endpoint_register("custom-data", custom_data)
        print_qr(ctx, name, pop, transport)
