"""End to end over the BLE-style transport, and the GATT model a phone discovers."""

from __future__ import annotations

import asyncio

import pytest

from jumpstart.host.prov_ble import BleTransport
from jumpstart.host.prov_client import ProvError, ProvOptions
from jumpstart.host.prov_transport import TransportError
from jumpstart.idf.protocomm.ble import DEFAULT_SERVICE_UUID
from tests.idf.wifi_prov.prov_helpers import SERVICE, run_client, running_outlet, wait_until

POLL = 0.05


@pytest.mark.parametrize(
    ("config", "options"),
    [
        ({"prov_security": 0}, ProvOptions(transport="ble")),
        ({"prov_security": 1}, ProvOptions(transport="ble", pop="abcd1234")),
        ({"prov_security": 1, "prov_pop": ""}, ProvOptions(transport="ble")),
        (
            {"prov_security": 2, "prov_sec2_patch": 1},
            ProvOptions(transport="ble", sec_ver=2, sec2_password="abcd1234"),
        ),
        (
            {"prov_security": 2, "prov_sec2_patch": 0},
            ProvOptions(transport="ble", sec_ver=2, sec2_password="abcd1234"),
        ),
    ],
    ids=["sec0", "sec1-pop", "sec1-no-pop", "sec2-patch1", "sec2-patch0"],
)
def test_ble_provisioning_end_to_end(config: dict[str, object], options: ProvOptions) -> None:
    async def main() -> None:
        async with running_outlet(prov_transport="ble", **config) as outlet:
            advert = outlet.advert()
            assert advert is not None
            assert outlet.softap() is None  # BLE provisioning keeps Wi-Fi in station mode
            assert outlet.qr_payload()["transport"] == "ble"
            # Flags 0x06, then the complete list of 128-bit service UUIDs, LSB first.
            assert advert.adv_data == "020106" + "1107" + DEFAULT_SERVICE_UUID.bytes[::-1].hex()
            assert bytes.fromhex(advert.scan_response)[2:] == SERVICE.encode()
            options.ssid, options.passphrase = "HomeNet", "correct-horse"
            options.poll_interval_s = POLL
            ok, said = await run_client(outlet, options)
            assert ok, said
            await wait_until(lambda: outlet.advert() is None)
            outlet.lines.clear()
            outlet.device.restart()
            await wait_until(lambda: outlet.logged("Connected with IP Address"))
            assert outlet.advert() is None

    asyncio.run(main())


def test_ble_discovery_names_endpoints_by_user_description() -> None:
    async def main() -> None:
        async with running_outlet(prov_transport="ble", prov_security=1) as outlet:
            advert = outlet.advert()
            assert advert is not None

            def discover() -> dict[str, int]:
                link = BleTransport(advert.endpoint, DEFAULT_SERVICE_UUID)
                try:
                    return dict(link.handles)
                finally:
                    link.close()

            handles = await asyncio.to_thread(discover)
            assert set(handles) == {
                "prov-ctrl",
                "prov-scan",
                "prov-session",
                "prov-config",
                "proto-ver",
                "custom-data",  # created before start: its characteristic exists from the start
            }

    asyncio.run(main())


def test_ble_wrong_pop_disconnects_and_the_next_client_succeeds() -> None:
    async def main() -> None:
        async with running_outlet(prov_transport="ble", prov_security=1) as outlet:
            with pytest.raises(ProvError, match="Failed to establish session"):
                await run_client(outlet, ProvOptions(transport="ble", pop="nope", ssid="x"))
            ok, _ = await run_client(
                outlet,
                ProvOptions(
                    transport="ble",
                    pop="abcd1234",
                    ssid="HomeNet",
                    passphrase="correct-horse",
                    poll_interval_s=POLL,
                ),
            )
            assert ok

    asyncio.run(main())


def test_ble_long_values_use_prepared_writes_and_blob_reads() -> None:
    """A 500-byte custom-data request exceeds a 23-byte MTU many times over."""

    async def main() -> None:
        async with running_outlet(prov_transport="ble", prov_security=0) as outlet:
            advert = outlet.advert()
            assert advert is not None

            def exchange() -> bytes:
                link = BleTransport(advert.endpoint, DEFAULT_SERVICE_UUID)
                link.mtu = 23
                try:
                    link.send("prov-session", bytes.fromhex("5203a20100"))
                    with pytest.raises(TransportError, match="no endpoint"):
                        link.send("no-such-endpoint", b"x")
                    return link.send("proto-ver", b"E" * 500)
                finally:
                    link.close()

            info = await asyncio.to_thread(exchange)
            assert b'"sec_ver": 0' in info
            assert len(info) > 23

    asyncio.run(main())
