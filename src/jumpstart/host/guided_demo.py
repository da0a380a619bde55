"""``jumpstart demo``: the guide's whole story, run, narrated and checked step by step.

A fresh home (a temporary one unless told): the local cloud; a device with factory data from
the manufacturing tools; its boot; provisioning over SoftAP with Security 1; the relay by the
button and by the guide's curl line; an OTA to a new version; a corrupt image (refused) and a
crashing one (rolled back); reset to factory. Each step shows the command a person would type
and says what it checked; the demo exits 0 only when every check held.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import datetime as dt
import io
import json
import shlex
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jumpstart.cloud.admin import operator_credentials, shadow_request
from jumpstart.cloud.firmware import FirmwareStore, firmware_url
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.service import CloudConfig, CloudService
from jumpstart.formats.app_package import AppPackage
from jumpstart.host.app_build import load_app_package
from jumpstart.host.device_control import send_command
from jumpstart.host.device_home import JumpstartHome
from jumpstart.host.device_runner import run_device
from jumpstart.host.flashing import flash_app_image
from jumpstart.host.image_tools import image_build
from jumpstart.host.mfg.credentials import CredentialsJob, run_credentials
from jumpstart.host.mfg.generate import MfgJob, run_mfg
from jumpstart.host.mfg.tables import read_config, read_values
from jumpstart.host.prov_client import ProvOptions, provision
from jumpstart.host.prov_connect import open_device
from jumpstart.idf.radio import AccessPoint, RadioWorld

__all__ = ["DemoOptions", "StepFailedError", "run_demo"]

FCTRY = 0x340000
HOME_AP = AccessPoint("HomeNet", "home-password-1")
DEVICE = "outlet-1"  # the thing name the factory gives the first outlet
STEP_TIMEOUT_S = 60.0
WHEN = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
CRASHER = "def app_main(ctx):\n    raise RuntimeError('a release that crashes at start')\n"


class StepFailedError(Exception):
    """A check of the story did not hold."""


@dataclass
class DemoOptions:
    apps: Path
    """The repository's apps/ folder."""
    home: Path
    """An empty folder for this run's JUMPSTART_HOME."""
    pause: bool = False
    """--step: wait for Enter between steps."""
    browser: bool = False
    """--browser: open the dashboard beside the story."""


@dataclass
class _Run:
    options: DemoOptions
    say: Callable[[str], None]
    cloud: CloudService | None = None
    console: list[str] = field(default_factory=list)
    pop: str = ""
    device_task: asyncio.Task[None] | None = None
    world: RadioWorld = field(default_factory=lambda: RadioWorld(None, [HOME_AP]))
    """The air the outlet and the phone share."""

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def home(self) -> JumpstartHome:
        return JumpstartHome(self.options.home)

    @property
    def service(self) -> CloudService:
        assert self.cloud is not None
        return self.cloud

    def logged(self, text: str, since: int = 0) -> bool:
        return any(text in line for line in self.console[since:])

    async def wait(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise StepFailedError(f"{what}: not seen within {timeout:g} s")
            await asyncio.sleep(0.05)

    async def shadow(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = json.dumps(body).encode() if body is not None else b""
        response = await asyncio.to_thread(
            shadow_request, self.service.home, method, DEVICE, "", payload, self.service.rest_port
        )
        if response.status != 200:
            raise StepFailedError(f"the REST API answered {response.status}: {response.document}")
        return dict(response.document)

    async def reported(self) -> dict[str, Any]:
        return dict((await self.shadow("GET"))["state"].get("reported", {}))

    def show(self, command: str) -> None:
        self.say(f"  $ {command}")

    def checked(self, what: str) -> None:
        self.say(f"  ✓ {what}")

    def host(self, image: bytes, name: str, *, check: bool = True) -> str:
        hosted = FirmwareStore(self.service.home).upload(image, name, check=check)
        return firmware_url("localhost", self.service.firmware_port, hosted.name)

    def release(self, version: str) -> bytes:
        package = dataclasses.replace(
            load_app_package(self.options.apps / "outlet"), version=version
        )
        return image_build(package.name, version, package.to_bytes(), when=WHEN)

    # -- the story ----------------------------------------------------------------------------
    async def start_cloud(self) -> None:
        self.show("jumpstart cloud serve")
        config = CloudConfig(mqtt_port=0, rest_port=0, firmware_port=0, dashboard_port=0)
        self.cloud = CloudService(CloudHome(self.options.home / "cloud"), config)
        await self.cloud.start()
        operator_credentials(self.cloud.home)
        self.say(f"  dashboard: {self.cloud.dashboard.url}")
        if self.options.browser:
            import webbrowser  # noqa: PLC0415 - only when asked for

            webbrowser.open(self.cloud.dashboard.url)
        self.checked(f"MQTT on port {self.cloud.mqtt_port}, REST on {self.cloud.rest_port}")

    async def factory(self) -> None:
        out = self.options.home / "factory"
        port = self.service.mqtt_port
        self.show(f"jumpstart mfg credentials --count 1 --mqtt-port {port} --outdir factory")
        job = CredentialsJob(self.service.home, 1, out, mqtt_port=port, workers=1)
        await asyncio.to_thread(run_credentials, job)
        self.show("jumpstart mfg generate factory/config.csv factory/values.csv outlet 0x6000")
        config = read_config(out / "config.csv")
        values = read_values(out / "values.csv", config)
        await asyncio.to_thread(run_mfg, MfgJob(config, values, "outlet", "0x6000", out))
        row = next(csv.DictReader(io.StringIO((out / "values.csv").read_text())))
        self.pop = row["pop"]
        self.show("jumpstart device create outlet-1")
        folder = self.home.create_device(DEVICE)
        self.show("jumpstart idf flash --device outlet-1 outlet.bin 0x340000 outlet-1.bin")
        with folder.open_flash() as flash:
            flash_app_image(flash, self.release("1.0.0"))
            fctry = (out / "bin" / "outlet-1.bin").read_bytes()
            flash.erase_range(FCTRY, len(fctry))
            flash.write(FCTRY, fctry)
        if self.service.registry.thing(DEVICE) is None:
            raise StepFailedError(f"the thing {DEVICE} is not in the cloud's registry")
        self.checked(f"{DEVICE} registered with its own certificate; PoP {self.pop}")

    async def boot(self) -> None:
        self.show("jumpstart device run outlet-1")
        folder = self.home.device(DEVICE)
        self.device_task = asyncio.create_task(
            run_device(folder, self.console.append, world=self.world)
        )
        await self.wait(lambda: self.logged("QR payload"), "the provisioning QR code")
        self.checked("it booted from its flash and offers provisioning (SoftAP, Security 1)")

    async def provision(self) -> None:
        name = next(
            line.split('"name":"')[1].split('"')[0]
            for line in self.console
            if "QR payload" in line and '"name":"' in line
        )
        self.show(
            f"jumpstart prov --transport softap --service_name {name} --sec_ver 1 "
            f"--pop {self.pop} --ssid {HOME_AP.ssid} --passphrase ..."
        )

        def run() -> bool:
            link = open_device(self.world, "softap", name)
            try:
                options = ProvOptions(pop=self.pop, ssid=HOME_AP.ssid, passphrase=HOME_AP.password)
                return provision(link, options, lambda _line: None)
            finally:
                link.close()

        if not await asyncio.to_thread(run):
            raise StepFailedError("provisioning did not complete")
        await self.wait(lambda: self.logged("Shadow in sync"), "the first shadow sync")
        self.checked(f"joined {HOME_AP.ssid} and reached the cloud as {DEVICE}")

    async def button_and_curl(self) -> None:
        folder = self.home.device(DEVICE)
        self.show("jumpstart device press outlet-1")
        status = await asyncio.to_thread(send_command, folder, {"cmd": "press"})
        await self.wait(lambda: self.logged("app_driver: Output on"), "the relay on")
        await self.wait_reported("output", True)
        self.checked(f"the button switched the relay on (outputs {status['outputs']}), shadow too")
        cert, key = operator_credentials(self.service.home)
        body = json.dumps({"state": {"desired": {"output": False}}})
        command = [
            "curl", "--silent", "--tlsv1.2", "--cacert", str(self.service.home.ca_pem),
            "--cert", str(cert), "--key", str(key), "-d", body,
            f"https://localhost:{self.service.rest_port}/things/{DEVICE}/shadow",
        ]  # fmt: skip
        self.show(shlex.join(command))
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=30, check=False
        )
        if done.returncode != 0:
            raise StepFailedError(f"curl failed ({done.returncode}): {done.stderr.strip()}")
        await self.wait(lambda: self.logged("app_driver: Output off"), "the relay off")
        self.checked("curl's desired state switched the relay off")

    async def wait_reported(self, key: str, value: object) -> None:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while (await self.reported()).get(key) != value:
            if time.monotonic() > deadline:
                raise StepFailedError(f"reported {key} never became {value!r}")
            await asyncio.sleep(0.1)

    async def ota(self) -> None:
        url = self.host(self.release("2.0.0"), "outlet-2.0.0.bin")
        self.show(f'curl ... -d \'{{"state":{{"desired":{{"ota_url":"{url}"}}}}}}\'')
        await self.shadow("POST", {"state": {"desired": {"ota_url": url}}})
        await self.wait(
            lambda: self.logged("Firmware 2.0.0 confirmed"), "2.0.0 confirmed", STEP_TIMEOUT_S
        )
        self.checked("downloaded, verified, rebooted into 2.0.0, which confirmed itself")

    async def refused_and_rolled_back(self) -> None:
        good = self.release("3.0.0")
        corrupt = bytearray(good)
        corrupt[0x200] ^= 0x01
        url = self.host(bytes(corrupt), "corrupt.bin", check=False)
        self.show("curl ... ota_url=https://.../corrupt.bin")
        mark = len(self.console)
        await self.shadow("POST", {"state": {"desired": {"ota_url": url}}})
        await self.wait(lambda: self.logged("OTA failed", mark), "the refusal")
        status = str((await self.reported()).get("ota_status", ""))
        if not status.startswith("failed"):
            raise StepFailedError(f"the corrupt image was not refused (ota_status {status!r})")
        self.checked(f"the corrupt image was refused before the switch: {status}")
        package = AppPackage(
            name="crasher",
            version="1.0.0",
            entry="crasher.main",
            modules={"crasher.__init__": b"", "crasher.main": CRASHER.encode()},
        )
        url = self.host(image_build("crasher", "1.0.0", package.to_bytes(), when=WHEN), "crash.bin")
        self.show("curl ... ota_url=https://.../crash.bin")
        mark = len(self.console)
        await self.shadow("POST", {"state": {"desired": {"ota_url": url}}})
        await self.wait(lambda: self.logged("RuntimeError", mark), "the crash", STEP_TIMEOUT_S)
        await self.wait(
            lambda: self.logged("App version:      2.0.0", mark), "2.0.0 again", STEP_TIMEOUT_S
        )
        await self.wait_reported("fw_version", "2.0.0")
        self.checked("the crashing release was rolled back: 2.0.0 runs again")

    async def reset(self) -> None:
        folder = self.home.device(DEVICE)
        self.show("jumpstart device press outlet-1 --hold 3.2")
        mark = len(self.console)
        await asyncio.to_thread(send_command, folder, {"cmd": "press", "hold": 3.2})
        await self.wait(lambda: self.logged("Reset to factory", mark), "the reset")
        await self.wait(lambda: self.logged("QR payload", mark), "provisioning offered again")
        if not self.logged("Serial number OUTLET-000001", mark):
            raise StepFailedError("the factory identity did not survive the reset")
        self.checked("Wi-Fi forgotten, provisioning offered again; serial and PoP kept")

    async def close(self) -> None:
        if self.device_task is not None:
            with contextlib.suppress(Exception):
                folder = self.home.device(DEVICE)
                await asyncio.to_thread(send_command, folder, {"cmd": "stop"})
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.device_task, 10)
        if self.cloud is not None:
            await self.cloud.close()


STEPS: list[tuple[str, Callable[[_Run], Awaitable[None]]]] = [
    ("Start the local cloud", _Run.start_cloud),
    ("Make an outlet at the factory: identity, factory data, firmware", _Run.factory),
    ("Boot it", _Run.boot),
    ("Provision it over SoftAP with Security 1 (the phone app's part)", _Run.provision),
    ("Switch it with its button and with the guide's curl line", _Run.button_and_curl),
    ("Update it over the air to 2.0.0", _Run.ota),
    ("A corrupt image and a crashing release", _Run.refused_and_rolled_back),
    ("Reset it to factory (hold the button 3 s)", _Run.reset),
]


async def run_demo(options: DemoOptions, say: Callable[[str], None]) -> int:
    """Run every step; 0 when all checks held, 1 at the first that did not."""
    run = _Run(options, say)
    try:
        for number, (title, step) in enumerate(STEPS, 1):
            say(f"[{number}/{len(STEPS)}] {title}")
            try:
                await asyncio.wait_for(step(run), STEP_TIMEOUT_S * 2)
            except (StepFailedError, TimeoutError) as err:
                say(f"  ✗ {err or 'timed out'}")
                tail = "\n".join(f"    {line}" for line in run.console[-12:])
                if tail:
                    say(f"  the device's last lines:\n{tail}")
                return 1
            if options.pause and number < len(STEPS):
                await asyncio.to_thread(input, "  (Enter for the next step) ")
        say(f"All {len(STEPS)} steps held.")
        return 0
    finally:
        await run.close()
