"""The provisioning client (``esp_prov``): session, scan, credentials, status, ctrl.

``ProvClient`` speaks the device's endpoints over any ``ProvTransport`` with any security
client; ``provision()`` runs esp_prov's order of operations and reports through callbacks, so
the CLI can show it and tests can drive it in-process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from jumpstart.errors import InputError
from jumpstart.host.prov_transport import ProvTransport, TransportError
from jumpstart.idf.protocomm import (
    Security0Client,
    Security1Client,
    Security2Client,
    SecurityClient,
    SessionError,
)
from jumpstart.idf.protocomm.security import parse_message
from jumpstart.idf.wifi_prov.proto import (
    wifi_config_pb2,
    wifi_constants_pb2,
    wifi_ctrl_pb2,
    wifi_scan_pb2,
)

__all__ = [
    "ProvClient",
    "ProvError",
    "ProvOptions",
    "ScanResult",
    "WifiStatus",
    "make_security",
    "provision",
]

# esp_prov fetches scan results in chunks: BLE values are small.
SCAN_CHUNK = {"softap": 100, "ble": 4}
SCAN_GROUP_CHANNELS = {"softap": 5, "ble": 0}
STATUS_RETRIES = 3


class ProvError(InputError):
    """The device refused a step; the message says which."""


@dataclass(frozen=True, slots=True)
class ScanResult:
    ssid: str
    bssid: str
    channel: int
    rssi: int
    auth: str


@dataclass(frozen=True, slots=True)
class WifiStatus:
    state: str  # Connected / Connecting / Disconnected / ConnectionFailed
    fail_reason: str | None = None
    attempts_remaining: int | None = None
    ip: str | None = None
    ssid: str | None = None


class ProvClient:
    """One provisioning session with one device."""

    def __init__(self, transport: ProvTransport, security: SecurityClient) -> None:
        self.transport = transport
        self.security = security

    def establish_session(self) -> None:
        request: bytes | None = self.security.start()
        try:
            while request is not None:
                request = self.security.step(self.transport.send("prov-session", request))
        except (SessionError, TransportError) as err:
            raise ProvError(
                f"Failed to establish session: {err} (wrong PoP or password, or another client "
                "replaced this session)"
            ) from None

    def _call(self, endpoint: str, request: Message, reply: Message) -> Any:
        sealed = self.security.encrypt(request.SerializeToString())
        answer = self.transport.send(endpoint, sealed)
        try:
            return parse_message(reply, self.security.decrypt(answer))
        except SessionError as err:
            raise ProvError(f"{endpoint}: {err}") from None

    def custom_data(self, data: bytes, endpoint: str = "custom-data") -> bytes:
        answer = self.transport.send(endpoint, self.security.encrypt(data))
        return self.security.decrypt(answer)

    def scan(self, transport: str = "softap") -> list[ScanResult]:
        start = wifi_scan_pb2.WiFiScanPayload(msg=wifi_scan_pb2.TypeCmdScanStart)
        start.cmd_scan_start.blocking = True
        start.cmd_scan_start.passive = False
        start.cmd_scan_start.group_channels = SCAN_GROUP_CHANNELS.get(transport, 0)
        start.cmd_scan_start.period_ms = 120
        self._scan_call(start)
        status = wifi_scan_pb2.WiFiScanPayload(msg=wifi_scan_pb2.TypeCmdScanStatus)
        count = self._scan_call(status).resp_scan_status.result_count
        results: list[ScanResult] = []
        chunk = SCAN_CHUNK.get(transport, 4)
        while len(results) < count:
            request = wifi_scan_pb2.WiFiScanPayload(msg=wifi_scan_pb2.TypeCmdScanResult)
            request.cmd_scan_result.start_index = len(results)
            request.cmd_scan_result.count = min(chunk, count - len(results))
            for entry in self._scan_call(request).resp_scan_result.entries:
                try:
                    auth = wifi_constants_pb2.WifiAuthMode.Name(entry.auth)
                except ValueError:
                    auth = "?"
                results.append(
                    ScanResult(
                        entry.ssid.decode("latin-1").rstrip("\0"),
                        entry.bssid.hex(),
                        entry.channel,
                        entry.rssi,
                        auth,
                    )
                )
        return results

    def _scan_call(self, request: wifi_scan_pb2.WiFiScanPayload) -> wifi_scan_pb2.WiFiScanPayload:
        reply: wifi_scan_pb2.WiFiScanPayload = self._call(
            "prov-scan", request, wifi_scan_pb2.WiFiScanPayload()
        )
        if reply.status:
            raise ProvError(f"scan failed with status {reply.status}")
        return reply

    def set_config(self, ssid: str, passphrase: str) -> None:
        request = wifi_config_pb2.WiFiConfigPayload(msg=wifi_config_pb2.TypeCmdSetConfig)
        request.cmd_set_config.ssid = ssid.encode()
        request.cmd_set_config.passphrase = passphrase.encode()
        reply = self._call("prov-config", request, wifi_config_pb2.WiFiConfigPayload())
        if reply.resp_set_config.status:
            raise ProvError(
                f"device refused the Wi-Fi config (status {reply.resp_set_config.status})"
            )

    def apply_config(self) -> None:
        # esp_prov sends the bare msg (08 04), without the empty sub-message.
        request = wifi_config_pb2.WiFiConfigPayload(msg=wifi_config_pb2.TypeCmdApplyConfig)
        reply = self._call("prov-config", request, wifi_config_pb2.WiFiConfigPayload())
        if reply.resp_apply_config.status:
            raise ProvError(
                f"device refused to apply the config (status {reply.resp_apply_config.status}); "
                "after a failure send --reset first"
            )

    def get_status(self) -> WifiStatus:
        request = wifi_config_pb2.WiFiConfigPayload(msg=wifi_config_pb2.TypeCmdGetStatus)
        request.cmd_get_status.SetInParent()
        status = self._call("prov-config", request, wifi_config_pb2.WiFiConfigPayload())
        resp = status.resp_get_status
        if resp.status:
            raise ProvError(f"GetStatus failed with status {resp.status}")
        state = wifi_constants_pb2.WifiStationState.Name(resp.sta_state)
        which = resp.WhichOneof("state")
        if which == "connected":
            return WifiStatus(
                state, ip=resp.connected.ip4_addr, ssid=resp.connected.ssid.decode("latin-1")
            )
        if which == "fail_reason":
            reason = wifi_constants_pb2.WifiConnectFailedReason.Name(resp.fail_reason)
            return WifiStatus(state, fail_reason=reason)
        if which == "attempt_failed":
            return WifiStatus(state, attempts_remaining=resp.attempt_failed.attempts_remaining)
        return WifiStatus(state)

    def ctrl(self, reprov: bool) -> None:
        msg = wifi_ctrl_pb2.TypeCmdCtrlReprov if reprov else wifi_ctrl_pb2.TypeCmdCtrlReset
        request = wifi_ctrl_pb2.WiFiCtrlPayload(msg=msg)
        reply = self._call("prov-ctrl", request, wifi_ctrl_pb2.WiFiCtrlPayload())
        if reply.status:
            what = "re-provisioning" if reprov else "reset"
            raise ProvError(f"device refused the {what} (status {reply.status})")


@dataclass
class ProvOptions:
    """esp_prov's command line, as data."""

    transport: str = "softap"
    sec_ver: int | None = None
    pop: str | None = None
    sec2_username: str = "wifiprov"
    sec2_password: str | None = None
    ssid: str | None = None
    passphrase: str | None = None
    custom_data: str | None = None
    reset: bool = False
    reprov: bool = False
    proto_ver: str | None = None
    poll_interval_s: float = 5.0
    pick_ap: Callable[[list[ScanResult]], tuple[str, str]] | None = None
    ask: Callable[[str], str] | None = None
    timings: dict[str, float] = field(default_factory=dict)


def make_security(info: dict[str, Any] | None, options: ProvOptions) -> SecurityClient:
    """Pick the scheme as esp_prov does: sec2 only when asked, else from ``no_sec``."""
    prov = (info or {}).get("prov", {}) if isinstance(info, dict) else {}
    caps = prov.get("cap", []) if isinstance(prov, dict) else []
    sec_ver = options.sec_ver
    if sec_ver is None:
        sec_ver = 0 if "no_sec" in caps else 1
    if sec_ver == 0:
        return Security0Client()
    if sec_ver == 1:
        pop = "" if "no_pop" in caps else options.pop
        if pop is None:
            if options.ask is None:
                raise ProvError("the device needs a proof of possession: pass --pop")
            pop = options.ask("Proof of Possession required: ")
        return Security1Client(pop.encode())
    if sec_ver == 2:
        password = options.sec2_password
        if password is None:
            if options.ask is None:
                raise ProvError("Security 2 needs a password: pass --sec2_pwd")
            password = options.ask("Security Scheme 2 - SRP6a Password required: ")
        patch = prov.get("sec_patch_ver", 0) if isinstance(prov, dict) else 0
        return Security2Client(
            options.sec2_username.encode(), password.encode(), int(patch) if patch else 0
        )
    raise ProvError(f"security version {sec_ver} is not 0, 1 or 2")


def provision(
    transport: ProvTransport,
    options: ProvOptions,
    say: Callable[[str], None] = print,
) -> bool:
    """esp_prov's flow. True once the device reports Connected (or ctrl/custom steps done)."""
    clock = time.perf_counter
    started = clock()
    # Capabilities decide the scheme, the PoP, the GCM nonce rule and whether scanning works.
    info = transport_info(transport, "none" if options.sec_ver is None else "---")
    if options.proto_ver is not None:
        got = ((info or {}).get("prov") or {}).get("ver")
        if got != options.proto_ver:
            raise ProvError(f"device runs protocol {got!r}, not {options.proto_ver!r}")
    client = ProvClient(transport, make_security(info, options))
    say(f"==== Starting Session (security {client.security.version}) ====")
    client.establish_session()
    say("==== Session Established ====")
    options.timings["session"] = clock() - started
    if options.reset or options.reprov:
        client.ctrl(options.reprov)
        say("==== Re-provisioning requested ====" if options.reprov else "==== Reset done ====")
        return True
    if options.custom_data is not None:
        answer = client.custom_data(options.custom_data.encode())
        say(f"==== Custom data sent, device answered {answer!r} ====")
    ssid, passphrase = options.ssid, options.passphrase
    if ssid is None:
        caps = ((info or {}).get("prov") or {}).get("cap", [])
        if "wifi_scan" not in caps:
            raise ProvError("the device cannot scan: pass --ssid")
        results = client.scan(options.transport)
        if options.pick_ap is None:
            raise ProvError("no --ssid given and no way to pick a network")
        ssid, chosen = options.pick_ap(results)
        passphrase = passphrase if passphrase is not None else chosen
    if passphrase is None:
        passphrase = options.ask(f"Passphrase for {ssid}: ") if options.ask else ""
    client.set_config(ssid, passphrase)
    say("==== Wi-Fi Credentials sent successfully ====")
    client.apply_config()
    say("==== Wi-Fi Credentials applied ====")
    options.timings["applied"] = clock() - started
    connected = _wait_connected(client, options, say)
    if connected:
        options.timings["connected"] = clock() - started
    return connected


def _wait_connected(client: ProvClient, options: ProvOptions, say: Callable[[str], None]) -> bool:
    """esp_prov's poll loop: Connecting keeps polling, a failure is retried 3 more times."""
    retries = STATUS_RETRIES
    waited = 0.0
    while True:
        time.sleep(options.poll_interval_s)
        waited += options.poll_interval_s
        status = client.get_status()
        if status.state == "Connecting":
            note = (
                f" ({status.attempts_remaining} attempts remaining)"
                if status.attempts_remaining is not None
                else ""
            )
            say(f"WiFi state: Connecting{note}")
            continue
        if status.state == "Connected":
            options.timings["waited"] = waited
            say(f"++++ WiFi state: Connected, IP {status.ip} ++++")
            say("==== Provisioning was successful ====")
            return True
        reason = {"AuthError": "Incorrect Password", "NetworkNotFound": "Incorrect SSID"}.get(
            status.fail_reason or "", status.fail_reason or "unknown"
        )
        say(f"---- WiFi state: {status.state}, reason: {reason} ----")
        if retries == 0:
            say("---- Provisioning failed! ----")
            return False
        retries -= 1


def transport_info(transport: ProvTransport, probe: str) -> dict[str, Any] | None:
    raw = transport.send("proto-ver", probe.encode())
    try:
        info = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return info if isinstance(info, dict) else None
