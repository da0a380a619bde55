"""Station mode against an in-memory radio world."""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Any

import pytest

from jumpstart.errors import InputError
from jumpstart.idf import wifi as wifi_module
from jumpstart.idf.event import EventLoop
from jumpstart.idf.log import EspLog
from jumpstart.idf.radio import AccessPoint, AuthMode, RadioWorld
from jumpstart.idf.wifi import (
    GotIp,
    IpEvent,
    StaConfig,
    StaDisconnected,
    Wifi,
    WifiEvent,
    WifiMode,
)

MAC = bytes.fromhex("240ac4010203")


def station(
    world: RadioWorld, ssid: str, password: str, seen: list[tuple[Enum, Any]], lines: list[str]
) -> tuple[Wifi, EventLoop]:
    events = EventLoop()
    wifi = Wifi(world, events, EspLog(lambda: 0, lines.append), MAC)

    def handler(event: Enum, data: Any) -> None:
        seen.append((event, data))
        if event in (WifiEvent.STA_START, WifiEvent.STA_DISCONNECTED):
            wifi.connect()  # what the guide's handler does

    events.register(WifiEvent, handler)
    events.register(IpEvent, handler)
    wifi.set_mode(WifiMode.STA)
    wifi.set_config(StaConfig(ssid, password))
    return wifi, events


def names(seen: list[tuple[Enum, Any]]) -> list[str]:
    out = []
    for event, data in seen:
        out.append(
            f"{event.name}({data.reason.name})" if isinstance(data, StaDisconnected) else event.name
        )
    return out


def run(
    world: RadioWorld, ssid: str, password: str, scenario: Any
) -> tuple[list[tuple[Enum, Any]], list[str]]:
    seen: list[tuple[Enum, Any]] = []
    lines: list[str] = []

    async def main() -> None:
        wifi, events = station(world, ssid, password, seen, lines)
        events.start()
        wifi.start()
        await scenario(wifi)
        await wifi.stop()
        await events.stop()

    asyncio.run(main())
    return seen, lines


def test_connect_gets_an_address_in_the_aps_subnet() -> None:
    ap = AccessPoint("home", "secret123")
    world = RadioWorld(aps=[ap])
    seen, _ = run(world, "home", "secret123", lambda w: asyncio.sleep(0.2))
    assert names(seen) == ["STA_START", "STA_CONNECTED", "STA_GOT_IP"]
    got = seen[-1][1]
    assert isinstance(got, GotIp)
    assert got.ip == ap.address_for(MAC)
    assert got.ip.startswith(ap.subnet + ".")
    assert got.gw == ap.subnet + ".1"


def test_wrong_password_is_an_auth_failure_and_retries_back_off() -> None:
    world = RadioWorld(aps=[AccessPoint("home", "secret123")])
    seen, lines = run(world, "home", "wrongpass", lambda w: asyncio.sleep(1.0))
    failures = [n for n in names(seen) if n.startswith("STA_DISCONNECTED")]
    assert set(failures) == {"STA_DISCONNECTED(AUTH_FAIL)"}
    # 0.25 s, 0.5 s, ... between attempts: only a few fit in one second
    assert 2 <= len(failures) <= 4
    assert any("auth failure" in line and line.startswith("W (") for line in lines)


def test_missing_ap_is_not_found() -> None:
    seen, _ = run(RadioWorld(), "nowhere", "secret123", lambda w: asyncio.sleep(0.1))
    assert names(seen)[:2] == ["STA_START", "STA_DISCONNECTED(NO_AP_FOUND)"]


def test_open_network_needs_no_password() -> None:
    world = RadioWorld(aps=[AccessPoint("cafe", auth=AuthMode.OPEN)])
    seen, _ = run(world, "cafe", "", lambda w: asyncio.sleep(0.2))
    assert names(seen)[-1] == "STA_GOT_IP"


def test_ap_down_disconnects_and_the_station_reconnects_when_it_is_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wifi_module, "WORLD_POLL_S", 0.05)
    world = RadioWorld(aps=[AccessPoint("home", "secret123")])

    async def scenario(wifi: Wifi) -> None:
        await asyncio.sleep(0.2)
        world.set_up("home", False)
        await asyncio.sleep(0.6)
        assert wifi.ip is None
        world.set_up("home", True)
        await asyncio.sleep(1.5)
        assert wifi.ip is not None

    seen, _ = run(world, "home", "secret123", scenario)
    flow = names(seen)
    assert flow[:4] == ["STA_START", "STA_CONNECTED", "STA_GOT_IP", "STA_LOST_IP"]
    assert flow[4] == "STA_DISCONNECTED(BEACON_TIMEOUT)"
    assert "STA_DISCONNECTED(NO_AP_FOUND)" in flow
    assert flow[-2:] == ["STA_CONNECTED", "STA_GOT_IP"]


def test_scan_lists_aps_that_are_up_strongest_first() -> None:
    world = RadioWorld(
        aps=[
            AccessPoint("far", "secret123", rssi=-80),
            AccessPoint("near", "secret123", rssi=-30),
            AccessPoint("off", "secret123", up=False),
        ]
    )
    wifi = Wifi(world, EventLoop(), EspLog(lambda: 0, lambda _: None), MAC)
    assert [ap["ssid"] for ap in wifi.scan()] == ["near", "far"]


def test_world_file_round_trip_and_errors(tmp_path: Any) -> None:
    path = tmp_path / "world.toml"
    world = RadioWorld(path)
    world.add(AccessPoint("home", 'pa"ss word', channel=11, rssi=-40))
    world.set_up("home", False)
    again = RadioWorld(path)
    assert again.access_points() == [
        AccessPoint("home", 'pa"ss word', channel=11, rssi=-40, up=False)
    ]
    with pytest.raises(InputError, match="already exists"):
        again.add(AccessPoint("home", "secret123"))
    with pytest.raises(InputError, match="no AP 'x'"):
        again.remove("x")
    with pytest.raises(InputError, match="8 to 63"):
        AccessPoint("home", "short")
    path.write_text("[[ap]\nssid=")
    with pytest.raises(InputError, match=r"world\.toml"):
        RadioWorld(path)
