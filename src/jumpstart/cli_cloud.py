"""``jumpstart cloud``: the local AWS IoT compatible device cloud."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from jumpstart.cli_util import command_group
from jumpstart.cloud.admin import (
    client_create,
    curl_line,
    job_create_request,
    operator_credentials,
    rest_request,
    shadow_request,
    thing_certificate,
    thing_create,
    thing_delete,
)
from jumpstart.cloud.endpoints import (
    DASHBOARD_PORT,
    FIRMWARE_PORT,
    MQTT_PORT,
    REST_PORT,
    parse_broker,
    parse_shard,
)
from jumpstart.cloud.firmware import FirmwareStore, firmware_url
from jumpstart.cloud.home import CloudHome, default_home
from jumpstart.cloud.nats import nats_config, nats_nodes, registry_view
from jumpstart.cloud.registry import Role
from jumpstart.cloud.service import CloudConfig, CloudService, open_stores
from jumpstart.errors import InputError
from jumpstart.host.files import read_file

cloud_app = command_group(help="The local AWS IoT compatible device cloud.", no_args_is_help=True)
thing_app = command_group(help="Things (devices) and their credentials.", no_args_is_help=True)
client_app = command_group(help="Operator and phone-app credentials.", no_args_is_help=True)
cert_app = command_group(help="Certificates.", no_args_is_help=True)
shadow_app = command_group(
    help="Read and change shadows (REST, as an operator).", no_args_is_help=True
)
cloud_app.add_typer(thing_app, name="thing")
cloud_app.add_typer(client_app, name="client")
cloud_app.add_typer(cert_app, name="cert")
job_app = command_group(help="Jobs for fleets, e.g. OTA (as an operator).", no_args_is_help=True)
cloud_app.add_typer(shadow_app, name="shadow")
cloud_app.add_typer(job_app, name="job")
firmware_app = command_group(help="App images hosted over HTTPS for OTA.", no_args_is_help=True)
cloud_app.add_typer(firmware_app, name="firmware")

OutOption = Annotated[Path, typer.Option("--out", "-o", help="Folder for the five files.")]
PortOption = Annotated[
    int | None,
    typer.Option("--port", help="The REST endpoint's port (default: the running cloud's)."),
]
NameOption = Annotated[str, typer.Option("--name", help="A named shadow (default: classic).")]
FirmwarePortOption = Annotated[
    int | None,
    typer.Option("--port", help="The firmware server's port (default: the running cloud's)."),
]


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _home() -> CloudHome:
    return default_home()


def _firmware_port(home: CloudHome, port: int | None) -> int:
    """--port, else the running cloud's firmware port, else the default."""
    if port is not None:
        return port
    running = home.running_endpoints()
    return running.firmware_port if running is not None else FIRMWARE_PORT


ForceOption = Annotated[
    bool, typer.Option("--force", help="Replace device.key and device.cert in the folder.")
]


@thing_app.command("create")
def thing_create_cmd(name: str, out: OutOption = Path(), force: ForceOption = False) -> None:
    """Register NAME and write device.key, device.cert, deviceid.txt, server.cert, endpoint.txt."""
    for path in thing_create(_home(), name, out, force=force):
        _out().print(f"wrote {path}")


@thing_app.command("delete")
def thing_delete_cmd(name: str) -> None:
    """Remove NAME from the registry and revoke its certificates (its shadows stay, as on
    AWS); its live connections end within two seconds."""
    revoked = thing_delete(_home(), name)
    _out().print(f"deleted thing {name} ({revoked} certificate(s) revoked)")


@thing_app.command("list")
def thing_list_cmd() -> None:
    """The registered things."""
    with _home().registry() as registry:
        for thing in registry.things():
            _out().print(thing.name)


@client_app.command("create")
def client_create_cmd(
    name: str,
    role: Annotated[str, typer.Option("--role", help="admin or app")] = "app",
    out: OutOption = Path(),
    force: ForceOption = False,
) -> None:
    """Credentials for an operator (admin) or a phone app (app)."""
    try:
        chosen = Role(role)
    except ValueError:
        raise InputError(f"--role must be admin or app, not {role!r}") from None
    for path in client_create(_home(), name, chosen, out, force=force):
        _out().print(f"wrote {path}")


@cert_app.command("create")
def cert_create_cmd(thing: str, out: OutOption = Path(), force: ForceOption = False) -> None:
    """A new key and certificate for an existing THING, written with the other guide files
    (e.g. after its old certificate was revoked, or its key lost)."""
    for path in thing_certificate(_home(), thing, out, force=force):
        _out().print(f"wrote {path}")


@cert_app.command("list")
def cert_list_cmd() -> None:
    """Certificates with their principal, role and status."""
    with _home().registry() as registry:
        for record in registry.certificates():
            _out().print(
                f"{record.certificate_id}  {record.principal:<20} {record.role.value:<6} "
                f"{record.status.value}"
            )


@cert_app.command("revoke")
def cert_revoke_cmd(certificate_id: str) -> None:
    """Revoke a certificate: the gateway and REST refuse it from the next connection on."""
    with _home().registry() as registry:
        registry.revoke(certificate_id)
    _out().print(f"revoked {certificate_id}")


@cloud_app.command("nats-config")
def nats_config_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for n1.conf, n2.conf, ...")],
    nodes: Annotated[int, typer.Option("--nodes", help="Servers in the cluster")] = 3,
    host: Annotated[str, typer.Option("--host", help="The address the servers listen on")] = (
        "127.0.0.1"
    ),
    base_port: Annotated[
        int,
        typer.Option(
            "--base-port", help="Client ports from here; MQTT at +1000, cluster routes at +2000"
        ),
    ] = 14222,
) -> None:
    """nats-server configurations for a cluster carrying this cloud's MQTT: the cloud's CA
    and server certificate, each certificate mapped to a user with its thing's permissions,
    only active certificates accepted, JetStream for MQTT sessions."""
    if not 1 <= nodes <= 9:
        raise InputError("--nodes must be between 1 and 9")
    if not 1024 <= base_port <= 65535 - 2000 - nodes:
        raise InputError(f"--base-port must be between 1024 and {65535 - 2000 - nodes}")
    home = _home()
    home.ensure()
    with home.registry() as registry:
        view = registry_view(registry)
    cluster = nats_nodes(nodes, host, base_port)
    out.mkdir(parents=True, exist_ok=True)
    for node in cluster:
        path = out / f"{node.name}.conf"
        path.write_text(nats_config(home, out.resolve(), node, cluster, view))
        _out().print(
            f"wrote {path}: MQTT mqtts://{host}:{node.mqtt_port}, clients {host}:{node.client_port}"
        )
    # One command per line, absolute, so each can be pasted into a terminal of its own.
    _out().print("Start each node in a terminal of its own:")
    for node in cluster:
        _out().print(f"  nats-server -c {(out / f'{node.name}.conf').resolve()}", soft_wrap=True)


@cloud_app.command("serve")
def serve_cmd(
    mqtt_port: Annotated[int, typer.Option("--mqtt-port")] = MQTT_PORT,
    rest_port: Annotated[int, typer.Option("--rest-port")] = REST_PORT,
    firmware_port: Annotated[int, typer.Option("--firmware-port")] = FIRMWARE_PORT,
    dashboard_port: Annotated[
        int, typer.Option("--dashboard-port", help="the dashboard's port (on 127.0.0.1)")
    ] = DASHBOARD_PORT,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    store: Annotated[
        str,
        typer.Option("--store", help="sqlite (files in the cloud's folder) or postgresql://..."),
    ] = "sqlite",
    broker: Annotated[
        str,
        typer.Option(
            "--broker",
            help="embedded (the built-in gateway), mosquitto or nats (started and configured"
            " here), mqtts://HOST:PORT (a broker that runs elsewhere) or"
            " nats://HOST:PORT[,HOST:PORT...] (a NATS cluster that runs already, made with"
            " `cloud nats-config`; devices connect on --mqtt-port)",
        ),
    ] = "embedded",
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            help="postgresql://...: keep things and certificates in that database, so engine"
            " instances on several hosts agree on them (remembered for every command on this"
            " cloud's folder), or sqlite to go back to its registry.db",
        ),
    ] = None,
    nodes: Annotated[
        int,
        typer.Option(
            "--nodes",
            help="with --broker nats: a cluster of N nodes on this host, HAProxy in front on"
            " --mqtt-port",
        ),
    ] = 1,
    shard: Annotated[
        str,
        typer.Option(
            "--shard",
            help="I/N: with an external broker, serve only the things of shard I of N"
            " (run N instances over one --store postgresql://...)",
        ),
    ] = "0/1",
) -> None:
    """Run the cloud (MQTT endpoint, REST API, firmware hosting) until Ctrl-C."""
    home = _home()
    if registry is not None:
        home.use_registry(registry)
    operator_credentials(home)
    config = CloudConfig(
        host=host,
        mqtt_port=mqtt_port,
        rest_port=rest_port,
        firmware_port=firmware_port,
        dashboard_port=dashboard_port,
        broker=parse_broker(broker),
        shard=parse_shard(shard),
        nodes=nodes,
    )
    shadow_store, job_store = open_stores(home, store)

    async def run() -> None:
        # SIGTERM (a service manager's stop) ends it as cleanly as Ctrl-C.
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with CloudService(home, config, shadow_store, job_store) as cloud:
            out = _out()
            out.print(f"[bold]Dashboard[/]  {cloud.dashboard.url}")
            out.print(f"[bold]jumpstart cloud[/] data in {home.path}")
            mode = config.broker
            endpoint = str(mode) if mode.kind == "mqtts" else f"mqtts://localhost:{cloud.mqtt_port}"
            out.print(f"  MQTT (mutual TLS)  {endpoint}  \\[{mode.kind}]")
            if cloud.mosquitto is not None:
                out.print(f"  mosquitto config   {cloud.mosquitto.config_path}")
            if cloud.nats is not None and cloud.nats.clustered:
                out.print(
                    f"  {len(cloud.nats.nodes)} nats-server nodes, HAProxy in front:"
                    f" {cloud.nats.folder}"
                )
            elif cloud.nats is not None:
                out.print(f"  nats-server config {cloud.nats.config_path}")
            if mode.kind == "nats":
                out.print(f"  engines            queue group on {cloud.bus.health()[1]['broker']}")
            out.print(f"  REST (mutual TLS)  https://localhost:{cloud.rest_port}")
            out.print(f"  Firmware (HTTPS)   https://localhost:{cloud.firmware_port}/firmware/")
            out.print(f"  CA for clients     {home.ca_pem}")
            if home.registry_url() is not None:
                out.print(f"  registry           PostgreSQL (named in {home.registry_url_path})")
            out.print("Read a thing's shadow the guide's way (in the thing's folder):")
            out.print(f"  export CURL_CA_BUNDLE={home.ca_pem}")
            out.print("  " + curl_line("$(cat cloud_cfg/deviceid.txt)", cloud.rest_port))
            out.print("Ctrl-C stops the cloud.")
            await stop.wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    _out().print("cloud stopped")


def _show(status: int, document: dict[str, object]) -> None:
    _out().print_json(json.dumps(document))
    if status >= 400:
        raise InputError(f"the cloud answered {status}: {document.get('message', '')}")


@shadow_app.command("get")
def shadow_get_cmd(thing: str, name: NameOption = "", port: PortOption = None) -> None:
    """Print THING's shadow document."""
    response = shadow_request(_home(), "GET", thing, name, port=port)
    _show(response.status, response.document)


@shadow_app.command("update")
def shadow_update_cmd(
    thing: str,
    document: Annotated[str, typer.Argument(help='e.g. \'{"state":{"desired":{"output":true}}}\'')],
    name: NameOption = "",
    port: PortOption = None,
) -> None:
    """Update THING's shadow with DOCUMENT."""
    response = shadow_request(_home(), "POST", thing, name, document.encode(), port=port)
    _show(response.status, response.document)


@shadow_app.command("delete")
def shadow_delete_cmd(thing: str, name: NameOption = "", port: PortOption = None) -> None:
    """Delete THING's shadow."""
    response = shadow_request(_home(), "DELETE", thing, name, port=port)
    _show(response.status, response.document)


@firmware_app.command("upload")
def firmware_upload_cmd(
    image: Annotated[Path, typer.Argument(help="An app image (jumpstart idf build -o IMAGE)")],
    name: Annotated[
        str | None,
        typer.Option("--name", help="File name in the URL (default PROJECT-VERSION.bin)"),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Host it even if it fails the image checks (to test devices)"),
    ] = False,
    port: FirmwarePortOption = None,
) -> None:
    """Host IMAGE on the cloud's HTTPS firmware server and print its URL."""
    home = _home()
    home.ensure()
    hosted = FirmwareStore(home).upload(read_file(image), name, check=not force)
    url = firmware_url("localhost", _firmware_port(home, port), hosted.name)
    out = _out()
    out.print(
        f"hosted {hosted.project} {hosted.version} "
        f"({hosted.size} bytes, sha256 {hosted.sha256[:16]}...)"
    )
    out.print(url)
    out.print("Start the OTA on a thing (its shadow's desired ota_url):")
    document = json.dumps({"state": {"desired": {"ota_url": url}}}, separators=(",", ":"))
    out.print(f"  jumpstart cloud shadow update THING '{document}'")


@firmware_app.command("list")
def firmware_list_cmd(
    port: FirmwarePortOption = None,
) -> None:
    """The hosted images and their URLs."""
    home = _home()
    for hosted in FirmwareStore(home).images():
        url = firmware_url("localhost", _firmware_port(home, port), hosted.name)
        _out().print(f"{hosted.project:<16} {hosted.version:<10} {hosted.size:>9}  {url}")


@job_app.command("create")
def job_create_cmd(
    job_id: str,
    document: Annotated[Path, typer.Option("--document", help="The job document (JSON file).")],
    thing: Annotated[
        list[str] | None, typer.Option("--thing", help="A target thing (repeatable).")
    ] = None,
    all_things: Annotated[
        bool, typer.Option("--all", help="Every registered thing (a snapshot).")
    ] = False,
    description: Annotated[str, typer.Option("--description")] = "",
    port: PortOption = None,
) -> None:
    """Create job JOB_ID: each target gets a QUEUED execution and a notify-next."""
    if not thing and not all_things:
        raise InputError("name the targets: --thing NAME (repeatable) or --all")
    try:
        text = document.read_text()
    except OSError as err:
        raise InputError(f"cannot read the job document {document}: {err.strerror}") from None
    response = job_create_request(
        _home(), job_id, text, list(thing or []), all_things, description, port
    )
    _show(response.status, response.document)


@job_app.command("list")
def job_list_cmd(port: PortOption = None) -> None:
    """Every job with its status."""
    response = rest_request(_home(), "GET", "/jobs", port=port)
    if response.status >= 400:
        _show(response.status, response.document)
    out = _out()
    for job in response.document.get("jobs", []):
        out.print(f"{job['jobId']:<32} {job['status']:<12} created {job['createdAt']}")


@job_app.command("describe")
def job_describe_cmd(job_id: str, port: PortOption = None) -> None:
    """JOB_ID, its progress and every thing's execution."""
    home = _home()
    job = rest_request(home, "GET", f"/jobs/{job_id}", port=port)
    if job.status >= 400:
        _show(job.status, job.document)
    executions = rest_request(home, "GET", f"/jobs/{job_id}/things", port=port)
    document = rest_request(home, "GET", f"/jobs/{job_id}/job-document", port=port)
    out = _out()
    out.print_json(json.dumps(job.document["job"]))
    out.print("document:")
    out.print_json(document.document.get("document", "{}"))
    for summary in executions.document.get("executionSummaries", []):
        thing_name = summary["thingArn"].rsplit("/", 1)[-1]
        state = summary["jobExecutionSummary"]
        out.print(f"{thing_name:<32} {state['status']}")


@job_app.command("cancel")
def job_cancel_cmd(
    job_id: str,
    force: Annotated[
        bool, typer.Option("--force", help="Cancel IN_PROGRESS executions too.")
    ] = False,
    port: PortOption = None,
) -> None:
    """Cancel JOB_ID's QUEUED executions (and IN_PROGRESS ones with --force)."""
    query = "?force=true" if force else ""
    response = rest_request(_home(), "PUT", f"/jobs/{job_id}/cancel{query}", port=port)
    _show(response.status, response.document)
