"""``jumpstart mfg``: ESP-IDF's mass manufacturing utility (``mfg_gen.py``), same arguments."""

from __future__ import annotations

import contextlib
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from jumpstart.cli_util import command_group
from jumpstart.cloud.endpoints import MQTT_PORT
from jumpstart.cloud.home import default_home
from jumpstart.errors import InputError
from jumpstart.formats.nvs import NvsKeys
from jumpstart.host.app_build import build_app_image
from jumpstart.host.device_home import JumpstartHome
from jumpstart.host.files import read_file
from jumpstart.host.mfg.credentials import CredentialsJob, run_credentials
from jumpstart.host.mfg.flash import flash_factory_line
from jumpstart.host.mfg.generate import Encryption, MfgJob, run_mfg
from jumpstart.host.mfg.tables import read_config, read_values
from jumpstart.host.nvs_tool import read_keys

mfg_app = command_group(
    help="Manufacturing: factory NVS partitions for many devices (like ESP-IDF's mfg_gen.py).",
    no_args_is_help=True,
)


@contextlib.contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on a terminal (done/total, devices per second, time left); the
    callback the long operations report to."""
    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(label, total=total, rate="")
        began = time.perf_counter()

        def report(done: int, of: int) -> None:
            rate = done / max(time.perf_counter() - began, 1e-9)
            bar.update(task, completed=done, total=of, rate=f"{rate:,.0f} devices/s")

        yield report


def _encryption(
    keygen: bool,
    inputkey: Path | None,
    key_protect_hmac: bool,
    kp_hmac_keygen: bool,
    kp_hmac_inputkey: Path | None,
) -> Encryption | None:
    if keygen and inputkey is not None:
        raise InputError("--keygen and --inputkey both given: choose one")
    if key_protect_hmac and not keygen:
        raise InputError("--key_protect_hmac derives the keys --keygen makes: add --keygen")
    if inputkey is not None:
        return Encryption(read_keys(inputkey))
    if not keygen:
        return None
    if not key_protect_hmac:
        return Encryption()
    if kp_hmac_inputkey is not None and not kp_hmac_keygen:
        return Encryption(NvsKeys.from_hmac(read_file(kp_hmac_inputkey)))
    if kp_hmac_keygen and kp_hmac_inputkey is None:
        return Encryption(hmac_keygen=True)
    raise InputError("--key_protect_hmac needs --kp_hmac_keygen or --kp_hmac_inputkey FILE")


@mfg_app.command("generate")
def generate(
    conf: Annotated[Path, typer.Argument(help="Config CSV: key,type,encoding[,REPEAT] rows")],
    values: Annotated[Path, typer.Argument(help="Values CSV: a header of keys, a row a device")],
    prefix: Annotated[str, typer.Argument(help="File name prefix of every output")],
    size: Annotated[str, typer.Argument(help="NVS partition size, a multiple of 4096")],
    outdir: Annotated[Path, typer.Option("--outdir", help="Output folder")] = Path(),
    fileid: Annotated[
        str | None, typer.Option("--fileid", help="Values column naming each device's files")
    ] = None,
    prefix_num: Annotated[
        tuple[int, int] | None,
        typer.Option("--prefix_num", help="START DIGITS: a counter after the prefix"),
    ] = None,
    version: Annotated[int, typer.Option("--version", help="1 or 2 (multi-page blobs)")] = 2,
    keygen: Annotated[bool, typer.Option("--keygen", help="Encrypt, new keys per device")] = False,
    inputkey: Annotated[
        Path | None, typer.Option("--inputkey", help="Encrypt every image with these keys")
    ] = None,
    key_protect_hmac: Annotated[
        bool, typer.Option("--key_protect_hmac", help="Derive the keys from an HMAC key")
    ] = False,
    kp_hmac_keygen: Annotated[
        bool, typer.Option("--kp_hmac_keygen", help="A new HMAC key per device")
    ] = False,
    kp_hmac_inputkey: Annotated[
        Path | None, typer.Option("--kp_hmac_inputkey", help="The HMAC key for every device")
    ] = None,
) -> None:
    """One intermediate CSV, one NVS image (and key file) per device of VALUES.

    Outputs OUTDIR/csv/PREFIX-ID.csv, OUTDIR/bin/PREFIX-ID.bin and with --keygen
    OUTDIR/keys/keys-PREFIX-ID.bin, byte-identical to mfg_gen.py. Every row is checked before
    anything is written; no temporary file is left beside the inputs.
    """
    encryption = _encryption(keygen, inputkey, key_protect_hmac, kp_hmac_keygen, kp_hmac_inputkey)
    config = read_config(conf)
    table = read_values(values, config)
    job = MfgJob(
        config,
        table,
        prefix,
        size,
        outdir,
        fileid=fileid,
        prefix_num=prefix_num,
        version=version,
        encryption=encryption,
        keygen=keygen,
    )
    with _progress("devices", len(table.devices)) as report:
        result = run_mfg(job, report)
    kinds = "CSV files and NVS images" + (" and key files" if keygen else "")
    print(f"{result.devices} devices: {len(result.files)} {kinds} in {outdir}", file=sys.stderr)


@mfg_app.command("credentials")
def credentials(
    count: Annotated[int, typer.Option("--count", help="How many devices")],
    prefix: Annotated[str, typer.Option("--prefix", help="Thing names: PREFIX-n")] = "outlet",
    start: Annotated[int, typer.Option("--start", help="The first n")] = 1,
    outdir: Annotated[Path, typer.Option("--outdir", help="Output folder")] = Path("factory"),
    endpoint: Annotated[str, typer.Option("--endpoint", help="The cloud's MQTT host")] = (
        "localhost"
    ),
    mqtt_port: Annotated[int, typer.Option("--mqtt-port", help="The cloud's MQTT port")] = (
        MQTT_PORT
    ),
    sec2: Annotated[
        bool, typer.Option("--sec2", help="Also a Security 2 salt and verifier (user wifiprov)")
    ] = False,
    secure_cert: Annotated[
        bool,
        typer.Option(
            "--secure-cert",
            help="Certificate, key and CA in an esp_secure_cert partition image per device",
        ),
    ] = False,
) -> None:
    """Identities for COUNT outlets: serials, PoPs, keys, certificates, registered things.

    Writes OUTDIR/config.csv and OUTDIR/values.csv for 'mfg generate', OUTDIR/server.cert
    and OUTDIR/certs/. An interrupted run continues where it stopped when run again.
    """
    job = CredentialsJob(
        default_home(),
        count,
        outdir,
        prefix=prefix,
        start=start,
        endpoint=endpoint,
        mqtt_port=mqtt_port,
        sec2=sec2,
        secure_cert=secure_cert,
    )
    began = time.perf_counter()
    with _progress("identities", count) as report:
        result = run_credentials(job, report)
    elapsed = time.perf_counter() - began
    print(
        f"{result.made} identities made, {result.resumed} completed from an interrupted run,"
        f" {result.skipped} done before ({elapsed:.1f} s); next:",
        file=sys.stderr,
    )
    size = "0x6000"  # the outlet's fctry partition
    folder = outdir.absolute()  # the line works from any folder of a new terminal
    config, values = (
        shlex.quote(str(folder / "config.csv")),
        shlex.quote(str(folder / "values.csv")),
    )
    print(
        f"  {JumpstartHome().command_prefix()} mfg generate {config} {values} {prefix} {size}"
        f" --outdir {shlex.quote(str(folder))} --fileid id",
        file=sys.stderr,
    )


@mfg_app.command("flash")
def flash(
    outdir: Annotated[Path, typer.Argument(help="The mfg generate output folder")],
    devices: Annotated[
        str, typer.Option("--devices", help="Device names, {n} the image's id: 'outlet-{n}'")
    ],
    app: Annotated[
        Path | None, typer.Option("--app", help="The app image (default: build apps/outlet)")
    ] = None,
    apps: Annotated[Path, typer.Option("--apps", help="The repository's apps/ folder")] = Path(
        "apps"
    ),
) -> None:
    """Create a virtual device per factory image in OUTDIR/bin and flash it: the outlet
    firmware (the same for all) and the device's own fctry partition."""
    if app is not None:
        image = read_file(app)
    elif (apps / "outlet" / "app.toml").is_file():
        image = build_app_image(apps / "outlet")
    else:
        raise InputError(f"{apps} holds no outlet app: pass --app IMAGE or --apps DIR")
    flashed = flash_factory_line(JumpstartHome(), outdir, devices, image)
    for device in flashed:
        print(f"{device.name}: app and {device.image.name} at 0x{device.fctry_offset:x}")
    home = JumpstartHome()
    print(f"{len(flashed)} devices flashed; boot one:")
    print(f"  {home.command_prefix()} device run {flashed[0].name}")
