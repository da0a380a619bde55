"""The ``jumpstart`` command. Each command is a thin wrapper over a public function.

Errors in the input exit with code 2 and one line on stderr that says what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.table import Table

from jumpstart import __version__, cli_device
from jumpstart.cli_cloud import cloud_app
from jumpstart.cli_efuse import efuse_app
from jumpstart.cli_fleet import fleet_app
from jumpstart.cli_mfg import mfg_app
from jumpstart.cli_nvs import nvs_app
from jumpstart.cli_prov import prov_app
from jumpstart.cli_security import security_app
from jumpstart.cli_util import command_group, parse_size
from jumpstart.cloud.endpoints import DASHBOARD_PORT, FIRMWARE_PORT, MQTT_PORT, REST_PORT, PortError
from jumpstart.errors import InputError, JumpstartError
from jumpstart.formats.partition_table import PartitionTable, subtype_name, type_name
from jumpstart.host import image_tools
from jumpstart.host.demo import flash_demo
from jumpstart.host.device_home import JumpstartHome
from jumpstart.host.files import read_file, write_atomically
from jumpstart.host.guided_demo import DemoOptions, run_demo
from jumpstart.host.partition_tool import partition_table as convert_partition_table
from jumpstart.host.product import ProductConfig, run_product
from jumpstart.targets import chip

app = command_group(
    name="jumpstart",
    help="The ESP-Jumpstart smart outlet, concept to production, in Python.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
idf_app = command_group(help="ESP-IDF style tools (idf.py, gen_esp32part).", no_args_is_help=True)
app.add_typer(idf_app, name="idf")
app.add_typer(nvs_app, name="nvs")
app.add_typer(mfg_app, name="mfg")
app.add_typer(efuse_app, name="efuse")
app.add_typer(security_app, name="security")
app.add_typer(fleet_app, name="fleet")
app.add_typer(cli_device.device_app, name="device")
app.add_typer(cli_device.world_app, name="world")
app.add_typer(prov_app, name="prov")
app.add_typer(cloud_app, name="cloud")
idf_app.command("build")(cli_device.idf_build)
idf_app.command(
    "flash", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)(cli_device.idf_flash)
idf_app.command("bootloader")(cli_device.idf_bootloader)
idf_app.command("erase-flash")(cli_device.idf_erase_flash)
idf_app.command("monitor")(cli_device.idf_monitor)

EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _table_view(table: PartitionTable, title: str) -> Table:
    view = Table(title=title)
    for column in ("Name", "Type", "SubType", "Offset", "Size", "Flags"):
        view.add_column(column, justify="right" if column in ("Offset", "Size") else "left")
    for p in table:
        view.add_row(
            p.name,
            type_name(p.type),
            subtype_name(p.type, p.subtype),
            f"0x{p.offset:x}",
            f"0x{p.size:x} ({p.size // 1024}K)",
            ":".join(p.flag_names()),
        )
    return view


@idf_app.command("partition-table")
def partition_table(
    input: Annotated[
        Path, typer.Argument(help="partitions.csv, or a binary table to turn into CSV")
    ],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the result here")
    ] = None,
    offset: Annotated[str, typer.Option(help="Partition table offset")] = "0x8000",
    flash_size: Annotated[str | None, typer.Option(help="Check the table fits, e.g. 4MB")] = None,
    no_md5: Annotated[bool, typer.Option("--disable-md5sum", help="No MD5 record")] = False,
) -> None:
    """Convert a partition table: CSV -> binary, or binary -> CSV (like gen_esp32part.py)."""
    result = convert_partition_table(
        read_file(input),
        table_offset=parse_size(offset),
        flash_size=parse_size(flash_size) if flash_size else None,
        md5=not no_md5,
        env=os.environ,
    )
    for warning in result.table.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if output is not None:
        write_atomically(output, result.output)
        print(f"wrote {len(result.output)} bytes to {output}", file=sys.stderr)
    elif result.output_is_binary:
        _out().print(_table_view(result.table, f"{input.name}: {len(result.table)} partitions"))
    else:
        sys.stdout.write(result.output.decode())


@app.command("image-info")
def image_info(
    file: Annotated[Path, typer.Argument(help="App image (.bin)")],
    chip_name: Annotated[str, typer.Option("--chip", help="esp32 or esp8266")] = "esp32",
) -> None:
    """Show an app image's header, segments, checksum, hash, app description and signatures."""
    sys.stdout.write(image_tools.image_info(read_file(file), chip(chip_name)))


@app.command("image-build")
def image_build(
    payload: Annotated[Path, typer.Argument(help="Bytes to carry after the app description")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Image file to write")],
    project: Annotated[str, typer.Option(help="Project name (esp_app_desc_t.project_name)")],
    version: Annotated[str, typer.Option(help="App version (esp_app_desc_t.version)")],
    idf_ver: Annotated[str, typer.Option(help="ESP-IDF version string")] = "v5.5",
    secure_version: Annotated[int, typer.Option(help="Anti-rollback secure version")] = 0,
) -> None:
    """Build an app image whose first segment is the app description followed by PAYLOAD.

    The build time is now, or SOURCE_DATE_EPOCH when set (reproducible builds).
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    data = image_tools.image_build(
        project,
        version,
        read_file(payload),
        when=when,
        idf_ver=idf_ver,
        secure_version=secure_version,
    )
    write_atomically(output, data)
    print(f"wrote {len(data)} bytes to {output} ({project} {version})", file=sys.stderr)


@app.command("image-sign")
def image_sign(
    input: Annotated[Path, typer.Argument(help="App image to sign")],
    key: Annotated[Path, typer.Option(help="RSA-3072 or ECDSA private key (PEM)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Signed image to write")],
) -> None:
    """Append a Secure Boot V2 signature sector (like espsecure sign-data --version 2)."""
    signed = image_tools.image_sign(read_file(input), image_tools.load_private_key(read_file(key)))
    write_atomically(output, signed)
    print(f"wrote {len(signed)} bytes to {output}", file=sys.stderr)


@app.command("image-verify")
def image_verify(
    input: Annotated[Path, typer.Argument(help="App image, signed or not")],
    key: Annotated[Path | None, typer.Option(help="Public or private key (PEM) to trust")] = None,
) -> None:
    """Check checksum, hash and (if present) the Secure Boot V2 signature of an image."""
    public = image_tools.load_public_key(read_file(key)) if key else None
    print(image_tools.image_verify(read_file(input), public))


@app.command("demo")
def demo(
    step: Annotated[bool, typer.Option("--step", help="Pause for Enter between steps")] = False,
    browser: Annotated[
        bool, typer.Option("--browser", help="Open the dashboard beside the story")
    ] = False,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="An empty folder for the run (default: a temporary one)"),
    ] = None,
    apps: Annotated[Path, typer.Option("--apps", help="The repository's apps/ folder")] = Path(
        "apps"
    ),
    flash_layout: Annotated[
        bool,
        typer.Option(
            "--flash-layout", help="Only lay out a flash with a signed image and check it"
        ),
    ] = False,
) -> None:
    """The guide's story, run and checked step by step: factory, boot, provisioning, the
    relay by button and curl, OTA, a refused and a rolled-back image, reset to factory."""
    if flash_layout:
        console = _out()
        result = flash_demo(JumpstartHome().path)
        console.print(_table_view(result.table, "Guide layout (7_mfg/partitions.csv)"))
        console.print(
            f"[bold]flash[/] {result.flash_path}\n"
            f"[bold]boot slot[/] {result.boot_label}: {result.project} {result.version}, "
            f"{result.signed_bytes} bytes signed "
            f"(ECDSA P-256, key digest {result.key_digest[:16]}...)\n"
            f"Inspect it: jumpstart idf partition-table and jumpstart image-info"
        )
        return
    if not (apps / "outlet" / "app.toml").is_file():
        raise InputError(f"{apps} holds no outlet app; run this from the repository or give --apps")
    with contextlib.ExitStack() as stack:
        folder = home or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="jumpstart-demo-"))
        )
        if home is not None and any(home.iterdir() if home.exists() else ()):
            raise InputError(f"--home {home} is not empty; the demo needs a fresh folder")
        options = DemoOptions(apps.resolve(), folder, pause=step, browser=browser)
        code = asyncio.run(run_demo(options, lambda line: print(line, flush=True)))
    if code:
        raise typer.Exit(1)


@app.command("run")
def run(
    apps: Annotated[Path, typer.Option("--apps", help="The repository's apps/ folder")] = Path(
        "apps"
    ),
    device: Annotated[str, typer.Option("--device", help="The outlet's name")] = "outlet",
    mqtt_port: Annotated[int, typer.Option("--mqtt-port")] = MQTT_PORT,
    rest_port: Annotated[int, typer.Option("--rest-port")] = REST_PORT,
    firmware_port: Annotated[int, typer.Option("--firmware-port")] = FIRMWARE_PORT,
    dashboard_port: Annotated[int, typer.Option("--dashboard-port")] = DASHBOARD_PORT,
) -> None:
    """The product on this machine: the local cloud and one outlet, until Ctrl-C (make run)."""
    if not (apps / "outlet" / "app.toml").is_file():
        raise InputError(f"{apps} holds no outlet app; run this from the repository (make run)")
    config = ProductConfig(
        apps,
        device=device,
        mqtt_port=mqtt_port,
        rest_port=rest_port,
        firmware_port=firmware_port,
        dashboard_port=dashboard_port,
    )

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        asyncio.run(run_product(config, say, say))
    except PortError as err:
        raise PortError(f'{err} (make run: RUN_ARGS="{err.option} PORT")', err.option) from None
    print("stopped: cloud and outlet (state kept)", flush=True)


@app.command("version")
def version() -> None:
    """Print the jumpstart version."""
    print(__version__)


def os_error_line(err: OSError) -> str:
    """One line for an OSError that reached the top: what failed, on which file."""
    what = err.strerror or str(err)
    if err.filename is not None:
        return f"{what}: {err.filename}"
    return what


def main(argv: list[str] | None = None) -> int:
    """Run the CLI in-process; returns the exit code.

    Every way out is here: bad input and environment errors (``JumpstartError``, an
    ``OSError`` from any command) print one ``error:`` line and exit 2; Ctrl-C exits 130.
    """
    command = typer.main.get_command(app)
    try:
        # Without standalone mode click returns a command's typer.Exit code instead of
        # exiting: it is the process's exit code.
        result = command.main(args=argv, prog_name="jumpstart", standalone_mode=False)
    except JumpstartError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except OSError as err:
        print(f"error: {os_error_line(err)}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except typer.Exit as done:
        return int(done.exit_code)
    except (typer.Abort, click.exceptions.Abort, KeyboardInterrupt) as stop:
        if isinstance(stop.__cause__, EOFError):  # a prompt met the end of its input
            print(
                "error: no input to answer a prompt (give the value as an option)", file=sys.stderr
            )
            return EXIT_INPUT_ERROR
        result = EXIT_INTERRUPTED
    except typer.TyperException as err:  # usage errors: bad option, missing argument
        err.show()  # type: ignore[attr-defined]
        return int(getattr(err, "exit_code", EXIT_INPUT_ERROR))
    if result == EXIT_INTERRUPTED:  # click returns Ctrl-C's code without a word
        print("interrupted", file=sys.stderr)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
