"""Station mode against an in-memory radio world."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from enum import Enum
from typing import Any

import pytest

from jumpstart.errors import InputError
from jumpstart.idf import wifi as wifi_module
from jumpstart.idf.esp_err import EspError
from jumpstart.idf.event import EventLoop
from jumpstart.idf.log import EspLog
from jumpstart.idf.radio import AccessPoint, AuthMode, RadioWorld
from jumpstart.idf.wifi import (
    ApConfig,
    ApStation,
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
    assert [ap.ssid for ap in wifi.scan()] == ["near", "far"]


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


def test_softap_appears_in_the_world_and_sees_stations_join_and_leave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wifi_module, "WORLD_POLL_S", 0.05)
    world = RadioWorld()
    seen: list[tuple[Enum, Any]] = []

    async def main() -> None:
        events = EventLoop()
        events.register(WifiEvent, lambda e, d: seen.append((e, d)))
        events.start()
        ap = Wifi(world, events, EspLog(lambda: 0, lambda _: None), MAC, "outlet")
        ap.set_mode(WifiMode.APSTA)
        ap.set_config(ap=ApConfig("PROV_010203", "abcd1234"))
        ap.start()
        hosted = world.find("PROV_010203")
        assert hosted is not None
        assert (hosted.device, hosted.auth) == ("outlet", AuthMode.WPA2_PSK)
        ap.set_ap_endpoint("127.0.0.1:8080")
        with pytest.raises(InputError, match="wrong password"):
            world.join("PROV_010203", "aa:bb:cc:00:00:01", "nope")
        world.join("PROV_010203", "aa:bb:cc:00:00:01", "abcd1234")
        await asyncio.sleep(0.15)
        world.leave("PROV_010203", "aa:bb:cc:00:00:01")
        await asyncio.sleep(0.15)
        # a second device cannot take the same SSID; another device's station can join it
        other = Wifi(world, EventLoop(), EspLog(lambda: 0, lambda _: None), MAC, "other")
        other.set_mode(WifiMode.AP)
        other.set_config(ap=ApConfig("PROV_010203"))
        with pytest.raises(EspError, match="already used by device 'outlet'"):
            other.start()
        await ap.stop()
        await asyncio.sleep(0.01)
        await events.stop()

    asyncio.run(main())
    assert world.find("PROV_010203") is None
    assert [e.name for e, _ in seen] == [
        "AP_START",
        "STA_START",
        "AP_STACONNECTED",
        "AP_STADISCONNECTED",
        "AP_STOP",
        "STA_STOP",
    ]
    joined = seen[2][1]
    assert joined == ApStation("aa:bb:cc:00:00:01", 1)


def test_a_station_device_connects_to_another_devices_softap() -> None:
    world = RadioWorld()

    async def main() -> str | None:
        quiet = EspLog(lambda: 0, lambda _: None)
        host = Wifi(world, EventLoop(), quiet, MAC, "host")
        host.set_mode(WifiMode.AP)
        host.set_config(ap=ApConfig("mesh-node"))
        host.start()
        events = EventLoop()
        events.start()
        sta = Wifi(world, events, quiet, bytes.fromhex("240ac4aabbcc"), "sta")
        sta.set_mode(WifiMode.STA)
        sta.set_config(StaConfig("mesh-node"))
        sta.start()
        sta.connect()
        await asyncio.sleep(0.2)
        ip = sta.ip
        await sta.stop()
        await host.stop()
        await events.stop()
        return ip

    ip = asyncio.run(main())
    assert ip == AccessPoint("mesh-node", auth=AuthMode.OPEN).address_for(
        bytes.fromhex("240ac4aabbcc")
    )


def test_concurrent_world_edits_from_processes_lose_nothing(tmp_path: Any) -> None:

    env = {**__import__("os").environ, "JUMPSTART_HOME": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jumpstart.cli",
                "world",
                "ap",
                "add",
                f"ap{n}",
                "--auth",
                "OPEN",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for n in range(8)
    ]
    assert [p.wait(30) for p in procs] == [0] * 8
    assert sorted(ap.ssid for ap in RadioWorld(tmp_path / "world.toml").access_points()) == [
        f"ap{n}" for n in range(8)
    ]
