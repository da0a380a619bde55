"""``jumpstart prov``: provision a device the way Espressif's ``esp_prov`` does.

``--service_name`` is a SoftAP SSID or BLE device name from the radio world (the client joins
the SoftAP first), or a ``host:port`` to talk to directly. Without ``--ssid`` the device scans
and a network is picked interactively.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Annotated, Any

import typer

from jumpstart.cli_util import command_group
from jumpstart.errors import InputError
from jumpstart.host.device_home import JumpstartHome
from jumpstart.host.prov_client import ProvOptions, ScanResult, provision
from jumpstart.host.prov_connect import open_device
from jumpstart.host.prov_transport import ProvTransport
from jumpstart.idf.protocomm.srp6a import random_salt, verifier
from jumpstart.idf.radio import RadioWorld

PROV_HELP = """Provision a device's Wi-Fi, as Espressif's esp_prov does (same flags).

\b
Examples:
  jumpstart prov --qr '{"ver":"v1","name":"PROV_A1B2C3","pop":"abcd1234","transport":"softap"}' \\
      --ssid myssid --passphrase mypassword
  jumpstart prov --transport softap --service_name PROV_A1B2C3 --sec_ver 1 \\
      --pop abcd1234 --ssid myssid --passphrase mypassword
  jumpstart prov --transport ble --service_name PROV_A1B2C3 --sec_ver 2 \\
      --sec2_username wifiprov --sec2_pwd abcd1234 --ssid myssid --passphrase mypassword
  jumpstart prov list        (devices offering provisioning, and their --service_name)

Without --ssid the device scans and you pick a network. The QR payload is what the device
printed; its fields fill --service_name, --transport, --pop and --sec_ver.
"""

prov_app = command_group(help=PROV_HELP, invoke_without_command=True)


def _world() -> RadioWorld:
    return RadioWorld(JumpstartHome().world_path)


def _refuse_ble_to_a_chip_without_it(service_name: str | None) -> None:
    """A device of this home named by the service name (PROV_ + its MAC's last three bytes)
    whose chip has no Bluetooth is refused with the guide's reason, not a search timeout."""
    home = JumpstartHome()
    for name in home.device_names():
        folder = home.device(name)
        mac = folder.efuse().mac
        if service_name == f"PROV_{mac[3]:02X}{mac[4]:02X}{mac[5]:02X}":
            folder.chip().require_bluetooth()


def open_transport(transport: str, service_name: str | None, ap_password: str) -> ProvTransport:
    """The transport to the named device in this home's radio world."""
    return open_device(_world(), transport, service_name, ap_password)


def _pick(results: list[ScanResult]) -> tuple[str, str]:
    if not results:
        raise InputError("the device found no Wi-Fi networks; pass --ssid")
    print("++++ Scan results ++++")
    print(f"S.N. {'SSID':<32} {'BSSID':<12} {'CHN':>3} {'RSSI':>4} AUTH")
    for n, r in enumerate(results, 1):
        print(f"[{n:>2}] {r.ssid:<32} {r.bssid:<12} {r.channel:>3} {r.rssi:>4} {r.auth}")
    while True:
        choice = input(f"Select AP by number (0 to rescan, 1..{len(results)}): ").strip()
        if choice.isdigit() and 1 <= int(choice) <= len(results):
            ap = results[int(choice) - 1]
            password = "" if ap.auth == "Open" else getpass.getpass(f"Passphrase for {ap.ssid}: ")
            return ap.ssid, password


def _apply_qr(text: str, values: dict[str, Any]) -> None:
    try:
        qr = json.loads(text)
    except ValueError as err:
        raise InputError(f"--qr is not JSON: {err}") from None
    if not isinstance(qr, dict) or qr.get("ver") != "v1" or "name" not in qr:
        raise InputError('--qr needs the apps\' payload: {"ver":"v1","name":...,"transport":...}')
    values["service_name"] = values["service_name"] or qr["name"]
    values["transport"] = qr.get("transport", values["transport"])
    for key, field in (("pop", "pop"), ("username", "sec2_username"), ("password", "ap_password")):
        if key in qr and not values.get(field):
            values[field] = str(qr[key])
    if "security" in qr and values["sec_ver"] is None:
        values["sec_ver"] = int(qr["security"])


@prov_app.callback()
def prov(
    ctx: typer.Context,
    transport: Annotated[str, typer.Option("--transport", help="softap (httpd) or ble")] = "softap",
    service_name: Annotated[
        str | None,
        typer.Option("--service_name", "--service-name", help="SSID / BLE name, or host:port"),
    ] = None,
    sec_ver: Annotated[
        int | None, typer.Option("--sec_ver", "--sec-ver", help="0, 1 or 2 (default: 0 or 1)")
    ] = None,
    pop: Annotated[str | None, typer.Option("--pop", help="Security 1 proof of possession")] = None,
    sec2_username: Annotated[
        str, typer.Option("--sec2_username", "--sec2-username", help="Security 2 user")
    ] = "wifiprov",
    sec2_pwd: Annotated[
        str | None, typer.Option("--sec2_pwd", "--sec2-pwd", help="Security 2 password")
    ] = None,
    ssid: Annotated[str | None, typer.Option("--ssid", help="Wi-Fi network (none: scan)")] = None,
    passphrase: Annotated[str | None, typer.Option("--passphrase", help="Wi-Fi password")] = None,
    custom_data: Annotated[
        str | None, typer.Option("--custom_data", "--custom-data", help="Send to custom-data")
    ] = None,
    reset: Annotated[bool, typer.Option("--reset", help="Reset after a failed attempt")] = False,
    reprov: Annotated[bool, typer.Option("--reprov", help="Re-provision a device")] = False,
    proto_ver: Annotated[
        str | None, typer.Option("--proto_ver", "--proto-ver", help="Expected prov.ver")
    ] = None,
    qr: Annotated[
        str | None, typer.Option("--qr", help="The QR payload JSON the device printed")
    ] = None,
    ap_password: Annotated[
        str, typer.Option("--softap_password", help="The provisioning SoftAP's passphrase")
    ] = "",
    poll_interval: Annotated[
        float, typer.Option("--poll_interval", help="Seconds between status polls")
    ] = 5.0,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Print timings")] = False,
) -> None:
    """Provision a device: session, Wi-Fi credentials, wait until it is connected."""
    if ctx.invoked_subcommand is not None:
        return
    values: dict[str, Any] = {
        "transport": transport,
        "service_name": service_name,
        "sec_ver": sec_ver,
        "pop": pop,
        "sec2_username": sec2_username,
        "ap_password": ap_password,
    }
    if qr is not None:
        _apply_qr(qr, values)
    kind = "softap" if values["transport"] == "httpd" else values["transport"]
    interactive = sys.stdin.isatty()
    options = ProvOptions(
        transport=kind,
        sec_ver=values["sec_ver"],
        pop=values["pop"],
        sec2_username=values["sec2_username"],
        sec2_password=sec2_pwd,
        ssid=ssid,
        passphrase=passphrase,
        custom_data=custom_data,
        reset=reset,
        reprov=reprov,
        proto_ver=proto_ver,
        poll_interval_s=poll_interval,
        pick_ap=_pick if interactive else None,
        ask=getpass.getpass if interactive else None,
    )
    if kind == "ble":
        _refuse_ble_to_a_chip_without_it(values["service_name"])
    link = open_transport(kind, values["service_name"], values["ap_password"])
    try:
        ok = provision(link, options, print)
    finally:
        link.close()
    if verbose:
        for step, seconds in options.timings.items():
            print(f"  {step}: {seconds * 1000:.1f} ms")
    if not ok:
        raise typer.Exit(1)


@prov_app.command("list")
def prov_list() -> None:
    """Devices offering provisioning in the radio world, with what to pass as
    ``--service_name``: the SSID, or for Espressif's esp_prov (``--transport softap``) the
    SoftAP's HTTP endpoint."""
    world = _world()
    found = False
    for ap in world.access_points():
        if ap.device and ap.endpoint:
            found = True
            print(
                f"{ap.ssid:<32} softap  {ap.auth.value:<9} endpoint {ap.endpoint:<21}"
                f" device {ap.device}"
            )
    for advert in world.adverts():
        found = True
        print(f"{advert.name:<32} ble     {advert.service_uuid}  device {advert.device}")
    if not found:
        print("no device is offering provisioning")


@prov_app.command("sec2-credentials")
def sec2_credentials(
    username: Annotated[str, typer.Option("--username", help="Security 2 user name")],
    password: Annotated[str, typer.Option("--password", help="Security 2 password")],
    salt_len: Annotated[int, typer.Option("--salt_len", "--salt-len", help="Salt bytes")] = 16,
    salt: Annotated[str | None, typer.Option("--salt", help="Use this salt (hex)")] = None,
) -> None:
    """Print a salt and the verifier a device stores for USERNAME/PASSWORD."""
    if salt is not None:
        try:
            salt_bytes = bytes.fromhex(salt)
        except ValueError:
            raise InputError(f"--salt {salt!r} is not hex") from None
    else:
        if not 4 <= salt_len <= 64:
            raise InputError("--salt_len is 4..64 bytes")
        salt_bytes = random_salt(salt_len)
    print(f"salt: {salt_bytes.hex()}")
    print(f"verifier: {verifier(username.encode(), password.encode(), salt_bytes).hex()}")
