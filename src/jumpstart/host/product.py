"""``make run``: the local cloud and one virtual outlet in one process, and what to do next.

The first run sets everything up the way a factory and an operator would: the access point
the user's home Wi-Fi stands for, the device (flash with the outlet app), its thing in the
cloud with certificate and key, and its factory partition (serial number, PoP, endpoint,
credentials). Later runs keep all of it: a provisioned outlet stays provisioned, an upgraded
one keeps its firmware. The hello-world image is hosted for the guide's OTA demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jumpstart.cloud.admin import GUIDE_FILES, thing_create
from jumpstart.cloud.endpoints import DASHBOARD_PORT, FIRMWARE_PORT, MQTT_PORT, REST_PORT
from jumpstart.cloud.firmware import FirmwareStore, firmware_url
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.service import CloudConfig, CloudService
from jumpstart.errors import InputError
from jumpstart.formats.nvs import FormatVersion
from jumpstart.formats.partition_table import PartitionType
from jumpstart.host.app_build import build_app_image
from jumpstart.host.device_home import DeviceFolder, JumpstartHome
from jumpstart.host.device_runner import run_device
from jumpstart.host.flashing import ensure_bootloader, flash_app_image
from jumpstart.host.nvs_gen import NvsImageBuilder, parse_nvs_size
from jumpstart.idf.efuse import format_mac
from jumpstart.idf.nvs import NvsError, NvsFlash, OpenMode
from jumpstart.idf.partition import PartitionMap
from jumpstart.idf.radio import AccessPoint, AuthMode, RadioWorld
from jumpstart.idf.wifi import NVS_NAMESPACE as WIFI_NVS_NAMESPACE
from jumpstart.idf.wifi import NVS_SSID_KEY as WIFI_NVS_SSID_KEY

__all__ = ["ProductConfig", "ProductSetup", "prepare", "run_product"]

FACTORY_PARTITION = "fctry"
FACTORY_NAMESPACE = "fctry"
ENDPOINT = "localhost"
HELLO_WORLD = "hello_world-1.0.0.bin"


@dataclass(frozen=True)
class ProductConfig:
    apps: Path
    """The repository's apps/ folder (the outlet and hello-world sources)."""
    device: str = "outlet"
    ssid: str = "myssid"
    password: str = "mypassword"
    mqtt_port: int = MQTT_PORT
    rest_port: int = REST_PORT
    firmware_port: int = FIRMWARE_PORT
    dashboard_port: int = DASHBOARD_PORT


@dataclass(frozen=True)
class ProductSetup:
    folder: DeviceFolder
    pop: str
    serial: str

    @property
    def cloud_cfg(self) -> Path:
        return self.folder.path / "cloud_cfg"

    @property
    def service_name(self) -> str:
        mac = self.folder.efuse().mac
        return f"PROV_{mac[3]:02X}{mac[4]:02X}{mac[5]:02X}"


def _ensure_ap(world: RadioWorld, config: ProductConfig) -> None:
    if world.find(config.ssid) is None:
        try:
            world.add(AccessPoint(config.ssid, config.password, AuthMode.WPA2_PSK))
        except InputError:
            if world.find(config.ssid) is None:
                raise  # not another process that added it first


def _secret_file(path: Path, make: Callable[[], str]) -> str:
    if not path.exists():
        path.write_text(make())
    return path.read_text().strip()


def factory_image(setup: ProductSetup, port: int, size: int) -> bytes:
    """The fctry partition: what the factory writes into each outlet (guide chapter 8)."""
    files = {name: (setup.cloud_cfg / name).read_text() for name in GUIDE_FILES}
    builder = NvsImageBuilder(parse_nvs_size(size), FormatVersion.V2)
    ns = builder.namespace(FACTORY_NAMESPACE)
    builder.string(ns, "serial_no", setup.serial)
    builder.string(ns, "pop", setup.pop)
    builder.string(ns, "device_id", files["deviceid.txt"].strip())
    builder.string(ns, "endpoint", files["endpoint.txt"].strip())
    builder.string(ns, "mqtt_port", str(port))
    builder.string(ns, "server_cert", files["server.cert"])
    builder.string(ns, "device_cert", files["device.cert"])
    builder.string(ns, "device_key", files["device.key"])
    return builder.to_bytes()


def _write_factory(setup: ProductSetup, mqtt_port: int) -> None:
    """Write the factory data as a factory would, naming this run's MQTT port."""
    with setup.folder.open_flash() as flash:
        parts = PartitionMap.load(flash)
        found = parts.find(PartitionType.DATA, label=FACTORY_PARTITION)
        if not found:
            raise InputError(f"device {setup.folder.name!r} has no {FACTORY_PARTITION!r} partition")
        found[0].erase()
        found[0].write(0, factory_image(setup, mqtt_port, found[0].size))


def prepare(
    home: JumpstartHome, cloud: CloudHome, config: ProductConfig, mqtt_port: int
) -> ProductSetup:
    """Create what is missing (AP, device, thing, credentials, firmware); keep what exists."""
    _ensure_ap(RadioWorld(home.world_path), config)
    if config.device in home.device_names():
        folder = home.device(config.device)
        with folder.open_flash() as flash:
            ensure_bootloader(flash, folder.chip())  # made before devices had one
    else:
        folder = home.create_device(config.device)
        with folder.open_flash() as flash:
            flash_app_image(flash, build_app_image(config.apps / "outlet"))
    cloud.ensure()
    cloud_cfg = folder.path / "cloud_cfg"
    if not (cloud_cfg / "device.cert").exists():
        with cloud.registry() as registry:
            known = registry.thing(config.device) is not None
        if known:
            raise InputError(
                f"thing {config.device!r} exists in the cloud but its credentials are not in "
                f"{cloud_cfg}; remove {home.path} to start over"
            )
        thing_create(cloud, config.device, cloud_cfg)
    pop = _secret_file(folder.path / "pop.txt", lambda: secrets.token_hex(4))
    serial = _secret_file(
        folder.path / "serial.txt", lambda: "OUTLET-" + format_mac(folder.efuse().mac)[-8:]
    )
    setup = ProductSetup(folder, pop, serial.replace(":", ""))
    _write_factory(setup, mqtt_port)
    store = FirmwareStore(cloud)
    if store.open(HELLO_WORLD) is None:
        store.upload(build_app_image(config.apps / "1_hello_world"), HELLO_WORLD)
    return setup


def provisioned_ssid(folder: DeviceFolder) -> str | None:
    """The Wi-Fi network the outlet was provisioned onto (the station config ESP-IDF keeps in
    NVS), or None while it is unprovisioned."""
    with folder.open_flash() as flash:
        nvs = NvsFlash(PartitionMap.load(flash))
        try:
            nvs.init()
            with nvs.open(WIFI_NVS_NAMESPACE, OpenMode.READONLY) as handle:
                return handle.get_str(WIFI_NVS_SSID_KEY) or None
        except NvsError:
            return None


def next_steps(
    setup: ProductSetup,
    config: ProductConfig,
    cloud: CloudService,
    jumpstart: str = "jumpstart",
    provisioned_on: str | None = None,
) -> list[str]:
    """The commands a new user runs next, ready to copy (``jumpstart`` is how to call the
    command from a new terminal)."""
    cfg = setup.cloud_cfg
    shadow = f"https://{ENDPOINT}:{cloud.rest_port}/things/{config.device}/shadow"
    tls = (
        f"--tlsv1.2 --cacert {shlex.quote(str(cfg / 'server.cert'))} "
        f"--cert {shlex.quote(str(cfg / 'device.cert'))} "
        f"--key {shlex.quote(str(cfg / 'device.key'))}"
    )
    ota_url = firmware_url(ENDPOINT, cloud.firmware_port, HELLO_WORLD)

    def update(state: dict[str, object]) -> str:
        body = json.dumps({"state": {"desired": state}}, separators=(",", ":"))
        return f"curl {tls} -d '{body}' {shadow}"

    prov = (
        f"{jumpstart} prov --transport softap --service_name {setup.service_name} "
        f"--sec_ver 1 --pop {setup.pop} --ssid {config.ssid} --passphrase {config.password}"
    )
    if provisioned_on is None:
        step_one = [
            "1. Provision the outlet onto the Wi-Fi (what the phone app does):",
            f"   {prov}",
        ]
    else:
        step_one = [
            f"1. The outlet is provisioned already (Wi-Fi {provisioned_on!r}). To provision it"
            " again, hold its button 3 s (a factory reset erases its Wi-Fi credentials):",
            f"   {jumpstart} device press {config.device} --hold 3",
            "   and once it offers provisioning again:",
            f"   {prov}",
        ]
    return [
        "Next, in another terminal:",
        *step_one,
        "2. Switch it on from the cloud (the guide's curl):",
        "   " + update({"output": True}),
        "   Read its shadow:",
        f"   curl {tls} {shadow}",
        "   Press its button:",
        f"   {jumpstart} device press {config.device}",
        "3. Upgrade it over the air to the hello-world firmware:",
        "   " + update({"ota_url": ota_url}),
        "Ctrl-C stops the cloud and the outlet; their state is kept for the next run.",
    ]


async def run_product(
    config: ProductConfig,
    print_line: Callable[[str], None],
    console: Callable[[str], None],
    home: JumpstartHome | None = None,
) -> None:
    """Run the cloud and the outlet until SIGINT/SIGTERM."""
    home = home or JumpstartHome()
    cloud_home = CloudHome(home.path / "cloud")
    cloud_home.ensure()
    service = CloudService(
        cloud_home,
        CloudConfig(
            mqtt_port=config.mqtt_port,
            rest_port=config.rest_port,
            firmware_port=config.firmware_port,
            dashboard_port=config.dashboard_port,
        ),
    )
    await service.start()
    try:
        setup = prepare(home, cloud_home, config, service.mqtt_port)
        print_line(f"Dashboard (open in a browser): {service.dashboard.url}")
        print_line(f"jumpstart: local cloud and outlet {config.device!r} in {home.path}")
        print_line(f"  MQTT (mutual TLS)  mqtts://{ENDPOINT}:{service.mqtt_port}")
        print_line(f"  REST (mutual TLS)  https://{ENDPOINT}:{service.rest_port}")
        print_line(f"  Firmware (HTTPS)   https://{ENDPOINT}:{service.firmware_port}/firmware/")
        print_line(f"  Wi-Fi network      {config.ssid} (password {config.password})")
        steps = next_steps(
            setup, config, service, home.command_prefix(), provisioned_ssid(setup.folder)
        )
        for line in steps:
            print_line(line)
        print_line(f"--- outlet {config.device} console ---")
        world = RadioWorld(home.world_path)
        # The console goes to this terminal and to console.log (the dashboard's front panel).
        with setup.folder.console_path.open("w", buffering=1, encoding="utf-8") as log:

            def both(line: str) -> None:
                console(line)
                log.write(line + "\n")

            await run_device(setup.folder, both, world=world)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(service.close(), 10)
