"""The manager's endpoint handlers at the protobuf level: bounds, statuses, ctrl refusals."""

from __future__ import annotations

import asyncio

import pytest

from jumpstart.idf.protocomm import Security0, SessionError
from jumpstart.idf.wifi_prov.proto import wifi_config_pb2, wifi_ctrl_pb2, wifi_scan_pb2
from tests.idf.wifi_prov.test_robustness import manager_with


def scan_request(start: int, count: int) -> bytes:
    request = wifi_scan_pb2.WiFiScanPayload(msg=wifi_scan_pb2.TypeCmdScanResult)
    request.cmd_scan_result.start_index = start
    request.cmd_scan_result.count = count
    return request.SerializeToString()


def test_scan_results_are_sorted_and_bounded() -> None:
    async def main() -> None:
        async with manager_with(Security0()) as manager:
            pc = manager.protocomm
            assert pc is not None
            pc.open_session(1)
            start = wifi_scan_pb2.WiFiScanPayload(msg=wifi_scan_pb2.TypeCmdScanStart)
            start.cmd_scan_start.blocking = True
            pc.handle("prov-scan", 1, start.SerializeToString())
            status = wifi_scan_pb2.WiFiScanPayload.FromString(
                pc.handle("prov-scan", 1, b"\x08\x02")
            )
            assert status.resp_scan_status.scan_finished
            assert status.resp_scan_status.result_count == 2
            reply = wifi_scan_pb2.WiFiScanPayload.FromString(
                pc.handle("prov-scan", 1, scan_request(0, 2))
            )
            entries = reply.resp_scan_result.entries
            assert [e.ssid for e in entries] == [b"HomeNet", b"Neighbour"]
            assert entries[0].rssi > entries[1].rssi
            assert entries[0].auth == 3  # WPA2_PSK
            assert len(entries[0].bssid) == 6
            # Past the results that exist: truncated, InternalError.
            short = wifi_scan_pb2.WiFiScanPayload.FromString(
                pc.handle("prov-scan", 1, scan_request(1, 5))
            )
            assert len(short.resp_scan_result.entries) == 1
            assert short.status == 5
            # Past the configured maximum (16): the exchange is dropped.
            for start_index, count in ((16, 1), (10, 7)):
                with pytest.raises(SessionError, match="beyond 16"):
                    pc.handle("prov-scan", 1, scan_request(start_index, count))

    asyncio.run(main())


def test_set_config_validation_and_apply_rules() -> None:
    async def main() -> None:
        async with manager_with(Security0()) as manager:
            pc = manager.protocomm
            assert pc is not None
            pc.open_session(1)

            def config(**fields: bytes) -> int:
                request = wifi_config_pb2.WiFiConfigPayload(msg=wifi_config_pb2.TypeCmdSetConfig)
                for key, value in fields.items():
                    setattr(request.cmd_set_config, key, value)
                reply = wifi_config_pb2.WiFiConfigPayload.FromString(
                    pc.handle("prov-config", 1, request.SerializeToString())
                )
                return reply.resp_set_config.status

            def apply() -> int:
                reply = wifi_config_pb2.WiFiConfigPayload.FromString(
                    pc.handle("prov-config", 1, b"\x08\x04")
                )
                return reply.resp_apply_config.status

            assert apply() == 5  # nothing pending
            assert config(ssid=b"x" * 33) == 4
            assert config(ssid=b"ok", passphrase=b"p" * 64) == 4
            assert config(ssid=b"ok", bssid=b"\x01\x02") == 4
            assert config(ssid=b"HomeNet", passphrase=b"correct-horse") == 0
            assert apply() == 0
            assert apply() == 5  # credentials already applied
            # Status before the 1 s connect delay runs out: Connecting, no oneof.
            status = pc.handle("prov-config", 1, b"\x52\x00")
            assert status == bytes.fromhex("08015a021001")
            with pytest.raises(SessionError, match="unknown prov-config command 9"):
                pc.handle("prov-config", 1, b"\x08\x09")
            # Reprov needs auto-stop disabled; reset needs a failure.
            for msg in (wifi_ctrl_pb2.TypeCmdCtrlReprov, wifi_ctrl_pb2.TypeCmdCtrlReset):
                reply = wifi_ctrl_pb2.WiFiCtrlPayload.FromString(
                    pc.handle("prov-ctrl", 1, bytes([0x08, msg]))
                )
                assert reply.msg == msg + 1
                assert reply.status == 5

    asyncio.run(main())
