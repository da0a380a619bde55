"""The dashboard in a real browser: Debian's chromium driven by Playwright for Python.

The page shows the outlet online; its toggle switches the relay, read from the device itself;
a press of the device's own button shows on the page without a reload (the event stream).
Screenshots of the views are kept in ``tests/artifacts/`` (CI keeps them)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jumpstart.host.device_control import send_command
from jumpstart.host.device_home import JumpstartHome
from jumpstart.host.device_runner import run_device
from jumpstart.host.flashing import flash_app_image
from jumpstart.idf.radio import RadioWorld
from tests.apps.test_6_ota import outlet_image
from tests.cloud_device import CloudOutlet, cloud_outlet
from tests.idf.device_helpers import app_image
from tests.idf.ota_helpers import flip_byte
from tests.system_tools import require

pytestmark = pytest.mark.interop
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[2] / "artifacts"


@contextlib.contextmanager
def outlet_in_background(tmp_path: Path) -> Iterator[tuple[CloudOutlet, asyncio.AbstractEventLoop]]:
    """The cloud and a synced outlet on their own event loop thread, for a synchronous test."""
    handed: queue.Queue[tuple[CloudOutlet, asyncio.AbstractEventLoop] | BaseException] = (
        queue.Queue()
    )
    done = threading.Event()

    async def run() -> None:
        try:
            async with cloud_outlet(tmp_path, "6_ota") as outlet:
                handed.put((outlet, asyncio.get_running_loop()))
                while not done.is_set():
                    await asyncio.sleep(0.05)
        except BaseException as err:  # handed to the test thread, which re-raises it
            handed.put(err)

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    got = handed.get(timeout=30)
    if isinstance(got, BaseException):
        raise got
    try:
        yield got
    finally:
        done.set()
        thread.join(15)


def test_dashboard_in_chromium(tmp_path: Path) -> None:
    require("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with outlet_in_background(tmp_path) as (outlet, loop), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 500})
            page.goto(outlet.cloud.dashboard.url)
            row = page.locator(f'tr[data-thing="{outlet.creds.thing}"]')
            sync_api.expect(row.locator("td.online")).to_have_text("online")
            sync_api.expect(row.locator("td.relay")).to_have_attribute("data-output", "false")
            page.screenshot(path=str(ARTIFACTS / "dashboard-outlets.png"))

            row.locator("button.toggle").click()
            deadline = loop.time() + 5
            while outlet.relay != 1:  # read from the device, not the page
                assert loop.time() < deadline, "the relay did not switch on"
                threading.Event().wait(0.05)
            sync_api.expect(row.locator("td.relay")).to_have_attribute("data-output", "true")
            page.screenshot(path=str(ARTIFACTS / "dashboard-relay-on.png"))

            # The device's own button: the page follows without a reload.
            asyncio.run_coroutine_threadsafe(outlet.press(), loop).result(10)
            sync_api.expect(row.locator("td.relay")).to_have_attribute(
                "data-output", "false", timeout=5000
            )
            assert outlet.relay == 0
        finally:
            browser.close()


def test_ota_from_the_page_reaches_the_new_version(tmp_path: Path) -> None:
    require("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with outlet_in_background(tmp_path) as (outlet, _loop), sync_api.sync_playwright() as pw:
        release = outlet_image(outlet.creds, outlet.cloud.mqtt_port, "2.0.0")
        good, corrupt = tmp_path / "release-2.bin", tmp_path / "corrupt.bin"
        good.write_bytes(release)
        corrupt.write_bytes(flip_byte(release))
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(outlet.cloud.dashboard.url)
            row = page.locator(f'tr[data-thing="{outlet.creds.thing}"]')
            sync_api.expect(row.locator("td.firmware")).to_have_text("1.0.0")

            # A corrupt image: the page shows why it is refused.
            page.set_input_files("#ota-file", str(corrupt))
            page.click("#ota-run")
            sync_api.expect(page.locator("#ota-result")).to_contain_text("refused")
            sync_api.expect(page.locator("#ota-result")).to_contain_text("mismatch")

            page.set_input_files("#ota-file", str(good))
            page.select_option("#ota-target", outlet.creds.thing)
            page.click("#ota-run")
            sync_api.expect(page.locator("#ota-result")).to_contain_text("job ota-")
            # Progress arrives on the page as the device reports it, then the new version.
            sync_api.expect(row.locator("td.firmware")).to_have_text("2.0.0", timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "dashboard-ota.png"))

            row.locator("a.name").click()
            sync_api.expect(page.locator("#detail-title")).to_have_text(outlet.creds.thing)
            sync_api.expect(page.locator("#detail-jobs")).to_contain_text("SUCCEEDED")
            sync_api.expect(page.locator("#detail-shadow")).to_contain_text('"version"')
            page.screenshot(path=str(ARTIFACTS / "dashboard-detail.png"), full_page=True)
        finally:
            browser.close()


THINGS = 1000


def test_a_thousand_things_render_fast_and_a_toggle_shows_live(tmp_path: Path) -> None:
    require("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with outlet_in_background(tmp_path) as (outlet, _loop), sync_api.sync_playwright() as pw:
        registry = outlet.cloud.registry
        for n in range(THINGS - 1):
            registry.create_thing(f"fleet-{n:04d}")
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(outlet.cloud.dashboard.url)  # warm the browser's caches once
            sync_api.expect(page.locator("#things tbody tr")).to_have_count(THINGS)
            began = time.perf_counter()
            page.reload()
            sync_api.expect(page.locator("#things tbody tr")).to_have_count(THINGS)
            first_render = time.perf_counter() - began
            assert first_render < 1.0, f"first render of {THINGS} things took {first_render:.2f} s"

            relay = page.locator(f'tr[data-thing="{outlet.creds.thing}"] td.relay')
            sync_api.expect(relay).to_have_attribute("data-output", "false")
            # The toggle, timed in the page: from the click to the relay the device reports back
            # (page -> cloud -> device -> cloud -> page), as a MutationObserver sees it.
            live_ms = page.evaluate(
                """(thing) => new Promise((resolve) => {
                    const row = document.querySelector(`tr[data-thing="${thing}"]`);
                    const began = performance.now();
                    new MutationObserver((_, observer) => {
                        const cell = document.querySelector(`tr[data-thing="${thing}"] td.relay`);
                        if (cell && cell.dataset.output === "true") {
                            observer.disconnect();
                            resolve(performance.now() - began);
                        }
                    }).observe(document.querySelector("#things tbody"),
                               {subtree: true, childList: true, attributes: true});
                    row.querySelector("button.toggle").click();
                })""",
                outlet.creds.thing,
            )
            assert outlet.relay == 1  # and the device really switched
            assert live_ms < 200, f"the toggle showed on the page after {live_ms:.0f} ms"
            render_ms = first_render * 1000
            print(f"{THINGS} things: first render {render_ms:.0f} ms, toggle {live_ms:.0f} ms")
        finally:
            browser.close()


def test_front_panel_tap_and_hold(tmp_path: Path) -> None:
    require("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with outlet_in_background(tmp_path) as (outlet, loop), sync_api.sync_playwright() as pw:
        home = JumpstartHome(outlet.cloud.home.path.parent)  # devices/ beside cloud/
        folder = home.create_device("bench")
        with folder.open_flash() as flash:
            flash_app_image(flash, app_image("4_network_config"))
        console: list[str] = []
        running = asyncio.run_coroutine_threadsafe(
            run_device(folder, console.append, world=RadioWorld(None, [])), loop
        )
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            deadline = time.monotonic() + 10
            while not any("Starting provisioning" in line for line in console):
                assert time.monotonic() < deadline, "the device did not start"
                time.sleep(0.05)
            page.goto(outlet.cloud.dashboard.url)
            panel = page.locator('div.panel[data-device="bench"]')
            sync_api.expect(panel.locator(".lamp")).not_to_have_class("lamp on")
            panel.locator("button.tap").click()
            # The panel shows the relay the device reports, without a reload.
            sync_api.expect(panel.locator(".lamp")).to_have_class("lamp on", timeout=5000)
            boots = sum("2nd stage bootloader" in line for line in console)
            panel.locator("button.hold").click()
            sync_api.expect(panel.locator("button.hold")).to_be_enabled(timeout=10_000)
            assert any("Reset to factory" in line for line in console)
            deadline = time.monotonic() + 5
            while sum("2nd stage bootloader" in line for line in console) == boots:
                assert time.monotonic() < deadline, "the hold did not reset the device"
                time.sleep(0.05)
            page.screenshot(path=str(ARTIFACTS / "dashboard-front-panel.png"), full_page=True)
        finally:
            browser.close()
            with contextlib.suppress(Exception):
                send_command(folder, {"cmd": "stop"})
            running.result(10)
