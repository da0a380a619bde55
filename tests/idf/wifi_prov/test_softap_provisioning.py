"""End to end over the SoftAP transport: our client provisions apps/4_network_config."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from jumpstart.host.prov_client import ProvError, ProvOptions
from tests.idf.wifi_prov.prov_helpers import SERVICE, run_client, running_outlet, wait_until

VECTORS = Path(__file__).parents[2] / "vectors"
EXAMPLE = json.loads((VECTORS / "sec2_example_credentials.json").read_text())
POLL = 0.05


@pytest.mark.parametrize(
    ("config", "options"),
    [
        ({"prov_security": 0}, ProvOptions()),
        ({"prov_security": 1}, ProvOptions(pop="abcd1234")),
        ({"prov_security": 1, "prov_pop": ""}, ProvOptions()),
        (
            {"prov_security": 2, "prov_sec2_patch": 1},
            ProvOptions(sec_ver=2, sec2_password="abcd1234"),
        ),
        (
            {"prov_security": 2, "prov_sec2_patch": 0},
            ProvOptions(sec_ver=2, sec2_password="abcd1234"),
        ),
    ],
    ids=["sec0", "sec1-pop", "sec1-no-pop", "sec2-patch1", "sec2-patch0"],
)
def test_provisioning_end_to_end(config: dict[str, object], options: ProvOptions) -> None:
    async def main() -> None:
        async with running_outlet(**config) as outlet:
            assert outlet.softap() is not None
            qr = outlet.qr_payload()
            assert qr["name"] == SERVICE
            assert qr["transport"] == "softap"
            options.ssid, options.passphrase = "HomeNet", "correct-horse"
            options.poll_interval_s = POLL
            ok, said = await run_client(outlet, options)
            assert ok, said
            assert "==== Provisioning was successful ====" in said
            # The service stops after the Connected report; the SoftAP leaves the world.
            await wait_until(lambda: outlet.softap() is None)
            await wait_until(lambda: outlet.logged("Provisioning stopped"))
            status = outlet.device.status()
            assert status["wifi"]["ssid"] == "HomeNet"
            # After a restart it goes straight to station mode.
            outlet.lines.clear()
            outlet.device.restart()
            await wait_until(lambda: outlet.logged("Already provisioned"))
            await wait_until(lambda: outlet.logged("Connected with IP Address"))
            assert outlet.softap() is None

    asyncio.run(main())


def test_wrong_pop_is_refused_and_the_device_keeps_serving() -> None:
    async def main() -> None:
        async with running_outlet(prov_security=1) as outlet:
            with pytest.raises(ProvError, match="Failed to establish session"):
                await run_client(outlet, ProvOptions(pop="wrong", ssid="HomeNet"))
            assert outlet.logged("CREDENTIALS_MISMATCH")
            ok, _ = await run_client(
                outlet,
                ProvOptions(
                    pop="abcd1234",
                    ssid="HomeNet",
                    passphrase="correct-horse",
                    poll_interval_s=POLL,
                ),
            )
            assert ok

    asyncio.run(main())


def test_wrong_sec2_password_is_refused() -> None:
    async def main() -> None:
        async with running_outlet(prov_security=2) as outlet:
            with pytest.raises(ProvError, match="Failed to establish session"):
                await run_client(outlet, ProvOptions(sec_ver=2, sec2_password="nope", ssid="x"))
            ok, _ = await run_client(
                outlet,
                ProvOptions(
                    sec_ver=2,
                    sec2_password=EXAMPLE["password"],
                    ssid="HomeNet",
                    passphrase="correct-horse",
                    poll_interval_s=POLL,
                ),
            )
            assert ok

    asyncio.run(main())


def test_wrong_password_fails_then_reset_and_new_credentials_succeed() -> None:
    async def main() -> None:
        async with running_outlet(prov_security=1) as outlet:
            base = {"pop": "abcd1234", "poll_interval_s": POLL}
            ok, said = await run_client(
                outlet, ProvOptions(ssid="HomeNet", passphrase="wrong-pass", **base)
            )
            assert not ok
            assert "---- WiFi state: ConnectionFailed, reason: Incorrect Password ----" in said
            assert said[-1] == "---- Provisioning failed! ----"
            assert outlet.softap() is not None  # still serving, to report the failure
            # A second ApplyConfig without a reset is refused.
            with pytest.raises(ProvError, match="--reset"):
                await run_client(outlet, ProvOptions(ssid="HomeNet", passphrase="x" * 8, **base))
            ok, said = await run_client(outlet, ProvOptions(reset=True, **base))
            assert ok
            assert "==== Reset done ====" in said
            ok, said = await run_client(
                outlet, ProvOptions(ssid="HomeNet", passphrase="correct-horse", **base)
            )
            assert ok, said

    asyncio.run(main())


def test_missing_ap_reports_network_not_found() -> None:
    async def main() -> None:
        async with running_outlet(prov_security=1) as outlet:
            ok, said = await run_client(
                outlet,
                ProvOptions(
                    pop="abcd1234", ssid="Nowhere", passphrase="whatever1", poll_interval_s=POLL
                ),
            )
            assert not ok
            assert "---- WiFi state: ConnectionFailed, reason: Incorrect SSID ----" in said

    asyncio.run(main())


@pytest.mark.parametrize(("level", "sec_ver"), [(1, None), (0, 0)])
def test_scan_lists_the_world_strongest_first_without_the_own_softap(
    level: int, sec_ver: int | None
) -> None:
    async def main() -> None:
        async with running_outlet(prov_security=level) as outlet:
            picked: list[list[str]] = []

            def pick(results):  # type: ignore[no-untyped-def]
                picked.append([r.ssid for r in results])
                return "HomeNet", "correct-horse"

            ok, _ = await run_client(
                outlet,
                ProvOptions(sec_ver=sec_ver, pop="abcd1234", pick_ap=pick, poll_interval_s=POLL),
            )
            assert ok
            assert picked == [["HomeNet", "Neighbour"]]

    asyncio.run(main())
