"""4_network_config beyond the happy path: factory PoP, custom data, reset to factory."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from jumpstart.formats.nvs import FormatVersion
from jumpstart.host.nvs_gen import NvsImageBuilder, parse_nvs_size
from jumpstart.host.prov_client import ProvError, ProvOptions
from jumpstart.idf.protocomm.srp6a import random_salt, verifier
from tests.idf.wifi_prov.prov_helpers import run_client, running_outlet, wait_until
from tests.idf.wifi_prov.test_softap_provisioning import POLL


def factory_image(pop: str) -> bytes:
    builder = NvsImageBuilder(parse_nvs_size("0x6000"), FormatVersion.V2)
    ns = builder.namespace("fctry")
    builder.string(ns, "serial_no", "OUTLET-0001")
    builder.string(ns, "pop", pop)
    return builder.to_bytes()


def test_pop_comes_from_the_factory_partition() -> None:
    async def main() -> None:
        async with running_outlet(factory=factory_image("f4c7-0ry!"), prov_security=1) as outlet:
            assert outlet.qr_payload()["pop"] == "f4c7-0ry!"
            with pytest.raises(ProvError, match="Failed to establish session"):
                await run_client(outlet, ProvOptions(pop="abcd1234", ssid="x"))
            ok, said = await run_client(
                outlet,
                ProvOptions(
                    pop="f4c7-0ry!",
                    ssid="HomeNet",
                    passphrase="correct-horse",
                    custom_data="hello device",
                    poll_interval_s=POLL,
                ),
            )
            assert ok
            assert "==== Custom data sent, device answered b'SUCCESS\\x00' ====" in said
            assert outlet.logged("Received data: hello device")

    asyncio.run(main())


def test_long_press_resets_to_factory_and_provisioning_starts_again() -> None:
    async def main() -> None:
        async with running_outlet(prov_security=0) as outlet:
            ok, _ = await run_client(
                outlet,
                ProvOptions(ssid="HomeNet", passphrase="correct-horse", poll_interval_s=POLL),
            )
            assert ok
            await wait_until(lambda: outlet.softap() is None)
            outlet.lines.clear()
            gpio = outlet.device.gpio
            gpio.drive(0, 0)
            await asyncio.sleep(3.2)
            gpio.drive(0, None)
            await wait_until(lambda: outlet.logged("Reset to factory"))
            await wait_until(lambda: outlet.logged("Starting provisioning"))
            await wait_until(lambda: outlet.softap() is not None)

    asyncio.run(main())


def test_sec2_qr_names_the_factorys_username() -> None:
    """Security 2 credentials written by the factory: the QR code carries their user."""
    builder = NvsImageBuilder(parse_nvs_size("0x6000"), FormatVersion.V2)
    ns = builder.namespace("fctry")
    salt = random_salt()
    builder.string(ns, "sec2_username", "outlet-owner")  # not the build config's "wifiprov"
    builder.string(ns, "sec2_salt", salt.hex())
    builder.string(ns, "sec2_verifier", verifier(b"outlet-owner", b"s3cret-pw", salt).hex())

    async def main() -> None:
        async with running_outlet(factory=builder.to_bytes(), prov_security=2) as outlet:
            assert outlet.qr_payload()["username"] == "outlet-owner"
            ok, _ = await run_client(
                outlet,
                ProvOptions(
                    sec_ver=2,
                    sec2_username="outlet-owner",
                    sec2_password="s3cret-pw",
                    ssid="HomeNet",
                    passphrase="correct-horse",
                    poll_interval_s=POLL,
                ),
            )
            assert ok

    asyncio.run(main())


@pytest.mark.parametrize(
    ("options", "logged"),
    [
        ({"reset": True}, "Trying reset when not in failure state. Current state: 2"),
        ({"reprov": True}, "Execute wifi_prov_mgr_disable_auto_stop() before calling this API"),
    ],
)
def test_refused_reset_and_reprovision_are_logged_as_errors(
    options: dict[str, bool], logged: str
) -> None:
    async def main() -> None:
        async with running_outlet(prov_security=1) as outlet:
            with contextlib.suppress(ProvError):
                ok, _ = await run_client(
                    outlet, ProvOptions(pop="abcd1234", poll_interval_s=POLL, **options)
                )
                assert not ok
            await wait_until(lambda: outlet.logged(logged))
            line = next(line for line in outlet.lines if logged in line)
            assert line.startswith("E (")

    asyncio.run(main())
