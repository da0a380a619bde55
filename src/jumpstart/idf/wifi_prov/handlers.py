"""The protobuf endpoints of the manager: ``prov-config``, ``prov-scan`` and ``prov-ctrl``.

Commands are dispatched on ``msg``, as the ESP-IDF device does: Espressif's client sends
GetStatus, ApplyConfig, ScanStatus and the ctrl commands without their empty sub-message. The
commands that carry data (SetConfig, ScanStart, ScanResult) must also carry their payload.
Responses use ``msg`` = request ``msg`` + 1. A malformed or unknown command raises
``SessionError`` and the transport drops the exchange.
"""

from __future__ import annotations

from jumpstart.idf.efuse import parse_mac
from jumpstart.idf.protocomm.proto import constants_pb2
from jumpstart.idf.protocomm.protocomm import RequestHandler
from jumpstart.idf.protocomm.security import SessionError, parse_message
from jumpstart.idf.radio import AuthMode
from jumpstart.idf.wifi_prov.manager import StaState, WifiProvManager
from jumpstart.idf.wifi_prov.proto import (
    wifi_config_pb2,
    wifi_constants_pb2,
    wifi_ctrl_pb2,
    wifi_scan_pb2,
)

__all__ = ["AUTH_MODES", "config_handler", "ctrl_handler", "scan_handler"]

# Every radio auth mode as a WifiAuthMode (0..7: a larger value would crash esp_prov).
AUTH_MODES = {
    AuthMode.OPEN: wifi_constants_pb2.Open,
    AuthMode.WEP: wifi_constants_pb2.WEP,
    AuthMode.WPA_PSK: wifi_constants_pb2.WPA_PSK,
    AuthMode.WPA2_PSK: wifi_constants_pb2.WPA2_PSK,
    AuthMode.WPA_WPA2_PSK: wifi_constants_pb2.WPA_WPA2_PSK,
    AuthMode.WPA3_PSK: wifi_constants_pb2.WPA3_PSK,
    AuthMode.WPA2_WPA3_PSK: wifi_constants_pb2.WPA2_WPA3_PSK,
}


def config_handler(manager: WifiProvManager) -> RequestHandler:
    def handle(_session: int, data: bytes) -> bytes:
        request = parse_message(wifi_config_pb2.WiFiConfigPayload(), data)
        reply = wifi_config_pb2.WiFiConfigPayload()
        if request.msg == wifi_config_pb2.TypeCmdGetStatus:
            reply.msg = wifi_config_pb2.TypeRespGetStatus
            _status(manager, reply.resp_get_status)
        elif request.msg == wifi_config_pb2.TypeCmdSetConfig:
            if request.WhichOneof("payload") != "cmd_set_config":
                raise SessionError("SetConfig without its payload")
            cmd = request.cmd_set_config
            ok = manager.set_pending(cmd.ssid, cmd.passphrase, cmd.bssid)
            reply.msg = wifi_config_pb2.TypeRespSetConfig
            reply.resp_set_config.status = (
                constants_pb2.Success if ok else constants_pb2.InvalidArgument
            )
        elif request.msg == wifi_config_pb2.TypeCmdApplyConfig:
            ok = manager.apply_config()
            reply.msg = wifi_config_pb2.TypeRespApplyConfig
            reply.resp_apply_config.status = (
                constants_pb2.Success if ok else constants_pb2.InternalError
            )
        else:
            raise SessionError(f"unknown prov-config command {request.msg}")
        return reply.SerializeToString()

    return handle


def _status(manager: WifiProvManager, out: wifi_config_pb2.RespGetStatus) -> None:
    out.status = constants_pb2.Success
    state = manager.sta_state
    if state is StaState.CONNECTED and manager.connected is not None:
        info = manager.connected
        out.sta_state = wifi_constants_pb2.Connected
        out.connected.ip4_addr = info.ip4_addr
        out.connected.auth_mode = AUTH_MODES[info.auth_mode]
        out.connected.ssid = info.ssid.encode()
        out.connected.bssid = parse_mac(info.bssid)
        out.connected.channel = info.channel
        manager.status_reported()
    elif state is StaState.DISCONNECTED:
        out.sta_state = wifi_constants_pb2.ConnectionFailed
        out.fail_reason = int(manager.fail_reason)  # type: ignore[assignment]
    elif state is StaState.CONN_ATTEMPT_FAILED:
        out.sta_state = wifi_constants_pb2.Connecting
        remaining = max(0, manager.config.wifi_conn_attempts - manager.attempts)
        out.attempt_failed.attempts_remaining = remaining
    else:
        out.sta_state = wifi_constants_pb2.Connecting


def scan_handler(manager: WifiProvManager) -> RequestHandler:
    def handle(_session: int, data: bytes) -> bytes:
        request = parse_message(wifi_scan_pb2.WiFiScanPayload(), data)
        reply = wifi_scan_pb2.WiFiScanPayload(status=constants_pb2.Success)
        case = request.WhichOneof("payload")
        if request.msg == wifi_scan_pb2.TypeCmdScanStart:
            if case != "cmd_scan_start":
                raise SessionError("ScanStart without its payload")
            # The simulated air answers at once, so a blocking scan is complete on return.
            manager.scan()
            reply.msg = wifi_scan_pb2.TypeRespScanStart
            reply.resp_scan_start.SetInParent()
        elif request.msg == wifi_scan_pb2.TypeCmdScanStatus:
            reply.msg = wifi_scan_pb2.TypeRespScanStatus
            reply.resp_scan_status.scan_finished = manager.scan_finished
            reply.resp_scan_status.result_count = len(manager.scan_results)
        elif request.msg == wifi_scan_pb2.TypeCmdScanResult:
            if case != "cmd_scan_result":
                raise SessionError("ScanResult without its payload")
            _results(manager, request.cmd_scan_result, reply)
        else:
            raise SessionError(f"unknown prov-scan command {request.msg}")
        return reply.SerializeToString()

    return handle


def _results(
    manager: WifiProvManager,
    cmd: wifi_scan_pb2.CmdScanResult,
    reply: wifi_scan_pb2.WiFiScanPayload,
) -> None:
    limit = manager.config.scan_max_entries
    if cmd.start_index >= limit or cmd.count > limit - cmd.start_index:
        raise SessionError(f"scan results {cmd.start_index}+{cmd.count} beyond {limit}")
    reply.msg = wifi_scan_pb2.TypeRespScanResult
    reply.resp_scan_result.SetInParent()
    available = manager.scan_results[cmd.start_index : cmd.start_index + cmd.count]
    if len(available) < cmd.count:
        reply.status = constants_pb2.InternalError
    for ap in available:
        entry = reply.resp_scan_result.entries.add()
        entry.ssid = ap.ssid.encode()
        entry.channel = ap.channel
        entry.rssi = ap.rssi
        entry.bssid = parse_mac(ap.bssid)
        entry.auth = AUTH_MODES[ap.authmode]


def ctrl_handler(manager: WifiProvManager) -> RequestHandler:
    def handle(_session: int, data: bytes) -> bytes:
        request = parse_message(wifi_ctrl_pb2.WiFiCtrlPayload(), data)
        reply = wifi_ctrl_pb2.WiFiCtrlPayload()
        if request.msg == wifi_ctrl_pb2.TypeCmdCtrlReset:
            ok = manager.reset_on_failure()
            reply.msg = wifi_ctrl_pb2.TypeRespCtrlReset
            reply.resp_ctrl_reset.SetInParent()
        elif request.msg == wifi_ctrl_pb2.TypeCmdCtrlReprov:
            ok = manager.reset_for_reprovision()
            reply.msg = wifi_ctrl_pb2.TypeRespCtrlReprov
            reply.resp_ctrl_reprov.SetInParent()
        else:
            raise SessionError(f"unknown prov-ctrl command {request.msg}")
        reply.status = constants_pb2.Success if ok else constants_pb2.InternalError
        return reply.SerializeToString()

    return handle
