"""5_cloud: the outlet's output in the Device Shadow (guide chapter 6), end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.cloud_device import CloudOutlet, cloud_outlet, wait_until


async def reported_output(outlet: CloudOutlet, value: bool) -> bool:
    return (await outlet.reported()).get("output") is value


def test_connects_and_reports_the_guides_document(tmp_path: Path) -> None:
    async def main() -> None:
        async with cloud_outlet(tmp_path) as outlet:
            await wait_until(lambda: reported_output(outlet, False), what="first report")
            assert await outlet.reported() == {
                "output": False,
                "fw_version": "1.0.0",
                "ota_url": "",
            }

    asyncio.run(main())


def test_rest_desired_output_switches_the_relay_and_is_reported(tmp_path: Path) -> None:
    async def main() -> None:
        async with cloud_outlet(tmp_path) as outlet:
            await outlet.rest("POST", {"state": {"desired": {"output": True}}})
            await wait_until(lambda: outlet.relay == 1, what="relay on")
            await wait_until(lambda: reported_output(outlet, True), what="reported on")
            document = await outlet.rest("GET")
            assert "delta" not in document["state"]
            await outlet.rest("POST", {"state": {"desired": {"output": False}}})
            await wait_until(lambda: outlet.relay == 0, what="relay off")

    asyncio.run(main())


def test_button_press_shows_in_reported_and_desired(tmp_path: Path) -> None:
    async def main() -> None:
        async with cloud_outlet(tmp_path) as outlet:
            await outlet.press()
            assert outlet.relay == 1
            await wait_until(lambda: reported_output(outlet, True), what="reported on")
            assert (await outlet.desired())["output"] is True
            document = await outlet.rest("GET")
            assert "delta" not in document["state"]  # nothing stale to switch it back

    asyncio.run(main())


def test_press_while_the_ap_is_down_reaches_the_shadow_when_it_is_back(tmp_path: Path) -> None:
    async def main() -> None:
        async with cloud_outlet(tmp_path) as outlet:
            await wait_until(lambda: reported_output(outlet, False), what="first report")
            outlet.world.set_up("HomeNet", False)
            await wait_until(lambda: outlet.logged("Wi-Fi lost"), what="MQTT follows Wi-Fi")
            await outlet.press()
            assert outlet.relay == 1
            await asyncio.sleep(0.3)
            assert (await outlet.reported())["output"] is False  # still offline
            outlet.world.set_up("HomeNet", True)
            await wait_until(lambda: reported_output(outlet, True), 15, "offline press reported")
            assert (await outlet.desired())["output"] is True
            assert outlet.relay == 1

    asyncio.run(main())


def test_a_newer_cloud_write_wins_over_an_older_offline_press(tmp_path: Path) -> None:
    async def main() -> None:
        async with cloud_outlet(tmp_path) as outlet:
            outlet.world.set_up("HomeNet", False)
            await wait_until(lambda: outlet.logged("Wi-Fi lost"), what="MQTT follows Wi-Fi")
            await outlet.press()  # on, offline
            await asyncio.sleep(1.1)  # shadow timestamps are whole seconds
            await outlet.rest("POST", {"state": {"desired": {"output": False}}})  # later: off
            outlet.world.set_up("HomeNet", True)
            await wait_until(lambda: outlet.logged("Shadow: desired output False"), 15)
            assert outlet.relay == 0
            await wait_until(lambda: reported_output(outlet, False), what="cloud value reported")

    asyncio.run(main())
