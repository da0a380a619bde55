"""``jumpstart fleet``: many complete outlets in one process against a local cloud."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from jumpstart.cli_util import command_group
from jumpstart.cloud.endpoints import parse_broker
from jumpstart.errors import InputError
from jumpstart.fleet.bench import FleetBenchOptions, print_bench, run_bench
from jumpstart.fleet.runner import FleetRunOptions, parse_rate, run_fleet

MAX_DEVICES = 20_000
BROKERS = ("embedded", "mosquitto", "nats")

fleet_app = command_group(
    help="A fleet of virtual outlets in one process (the cloud started alongside).",
    no_args_is_help=True,
)


@fleet_app.command("run")
def fleet_run(
    devices: Annotated[int, typer.Option("--devices", help="How many outlets")] = 100,
    duration: Annotated[float, typer.Option("--duration", help="Seconds to run")] = 30.0,
    churn: Annotated[
        str,
        typer.Option(
            "--churn", help="Power cuts, reboots and home Wi-Fi outages at this rate, e.g. 1/s"
        ),
    ] = "0/s",
    toggle_rate: Annotated[
        str, typer.Option("--toggle-rate", help="REST toggles of random outlets, e.g. 10/s")
    ] = "0/s",
    broker: Annotated[
        str,
        typer.Option(
            "--broker",
            help="embedded (the gateway), mosquitto, nats, or mqtts://HOST:PORT (a broker that"
            " trusts the cloud in --home)",
        ),
    ] = "embedded",
    home: Annotated[
        Path | None,
        typer.Option("--home", help="With an mqtts:// broker: the jumpstart home of its cloud"),
    ] = None,
    provision: Annotated[
        bool,
        typer.Option("--provision", help="Devices start unprovisioned: SoftAP, Security 1, PoP"),
    ] = False,
    apps: Annotated[Path, typer.Option("--apps", help="The repository's apps/ folder")] = Path(
        "apps"
    ),
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object at the end")] = False,
) -> None:
    """Boot DEVICES outlets made by the factory tools, connected to a cloud started here;
    provision, toggle and churn them; end with every device back in sync, or exit 1."""
    _check_fleet(devices, broker, apps, external=True)
    if home is not None and not broker.startswith("mqtts://"):
        raise InputError("--home is for an mqtts:// broker; the others get a cloud of their own")
    if duration <= 0:
        raise InputError("--duration must be positive")
    options = FleetRunOptions(
        devices,
        apps.resolve(),
        duration,
        parse_rate(churn),
        parse_rate(toggle_rate),
        broker,
        provision,
        home.resolve() if home is not None else None,
    )
    console = Console(stderr=json_out)
    summary = asyncio.run(run_fleet(options, console, live=not json_out))
    final = summary.final
    report = {
        "devices": summary.devices,
        "broker": summary.broker,
        "provisioned": summary.provisioned,
        "in_sync": final.in_sync if final else 0,
        "connected": final.connected if final else 0,
        "all_in_sync_s": round(summary.all_in_sync_s, 2),
        "churn_events": summary.churn.total(),
        "churn": dict(summary.churn),
        "connects": final.connects if final else 0,
        "errors": final.errors if final else 0,
        "nvs_intact": summary.nvs_intact,
        "toggles": summary.toggles,
        "toggle_ms": asdict(summary.toggle_ms) if summary.toggle_ms else None,
        "own_flash_kib_per_device": round(summary.own_flash_kib, 1),
        "peak_rss_mib": round(summary.rss_mib, 1),
    }
    if json_out:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            console.print(f"{key:<26} {value}")
    if not summary.ok:
        raise typer.Exit(1)


def _check_fleet(devices: int, broker: str, apps: Path, *, external: bool = False) -> None:
    if not 1 <= devices <= MAX_DEVICES:
        raise InputError(f"--devices must be between 1 and {MAX_DEVICES}")
    if external and broker.startswith("mqtts://"):
        parse_broker(broker)  # an InputError saying how to write it
    elif broker not in BROKERS:
        also = " or mqtts://HOST:PORT" if external else ""
        raise InputError(f"--broker {broker!r}: use {' or '.join(BROKERS)}{also}")
    if not (apps / "outlet" / "app.toml").is_file():
        raise InputError(f"{apps} holds no outlet app; run this from the repository or give --apps")


@fleet_app.command("bench")
def fleet_bench(
    devices: Annotated[int, typer.Option("--devices", help="How many outlets")] = 1000,
    broker: Annotated[
        str, typer.Option("--broker", help="embedded (the gateway), mosquitto or nats")
    ] = "embedded",
    toggles: Annotated[int, typer.Option("--toggles", help="Toggles measured per path")] = 300,
    toggle_rate: Annotated[
        float, typer.Option("--toggle-rate", help="Toggles per second while measuring")
    ] = 100.0,
    storm: Annotated[
        bool, typer.Option("--storm/--no-storm", help="Stop and restart the cloud at the end")
    ] = True,
    apps: Annotated[Path, typer.Option("--apps", help="The repository's apps/ folder")] = Path(
        "apps"
    ),
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object for machines")] = False,
) -> None:
    """Measure the cloud under DEVICES outlets: boot and connect time, peak connects/s,
    toggles REST -> relay and MQTT -> relay at the GPIO, memory per device, the raw broker
    round trip in the same run, and a reconnect storm. Exit 1 if not every device came back."""
    _check_fleet(devices, broker, apps)
    if not 1 <= toggles <= 100_000 or not 0 < toggle_rate <= 10_000:
        raise InputError("--toggles must be 1..100000 and --toggle-rate 0..10000 per second")
    options = FleetBenchOptions(devices, apps.resolve(), broker, toggles, toggle_rate, storm)
    console = Console(stderr=True)
    report = asyncio.run(run_bench(options, console))
    if json_out:
        print(json.dumps(report.to_json()))
    else:
        print_bench(report, Console())
    back = report.storm is None or report.storm.left_behind == 0
    if report.in_sync != devices or not back:
        raise typer.Exit(1)
