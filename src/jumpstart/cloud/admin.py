"""Operator functions behind ``jumpstart cloud``: things, credentials, shadows and jobs over
REST."""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jumpstart.cloud.endpoints import REST_PORT, Shard
from jumpstart.cloud.home import DEFAULT_ENDPOINT, CloudHome
from jumpstart.cloud.jobs.model import ALL_THINGS_GROUP, group_arn, thing_arn
from jumpstart.cloud.registry import CertStatus, Registry, Role
from jumpstart.errors import InputError
from jumpstart.statefiles import folder_lock, write_new

__all__ = [
    "GUIDE_FILES",
    "RestResponse",
    "client_create",
    "curl_line",
    "job_create_request",
    "operator_context",
    "operator_credentials",
    "rest_request",
    "shadow_request",
    "thing_create",
]

# The five files of the guide's quick setup (chapter 6.3.2), as 5_cloud/main/cloud_cfg holds.
GUIDE_FILES = ("device.key", "device.cert", "deviceid.txt", "server.cert", "endpoint.txt")
OPERATOR = "operator"


CREDENTIAL_FILES = ("device.key", "device.cert")


def check_credentials_free(out: Path, force: bool) -> None:
    """Refuse to replace a key or certificate in ``out`` unless ``force``: a private key that is
    overwritten cannot be had back, and the device that holds it could not connect again."""
    if force:
        return
    taken = [out / name for name in CREDENTIAL_FILES if (out / name).exists()]
    if taken:
        raise InputError(
            f"{taken[0]} exists; its key would be lost: choose another folder with -o, or pass"
            " --force to replace it"
        )


def _write_credentials(
    home: CloudHome, registry: Registry, name: str, role: Role, out: Path
) -> list[Path]:
    issued = registry.issue(name, role)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "device.key": issued.key_pem,
        "device.cert": issued.cert_pem,
        "deviceid.txt": name.encode(),
        "server.cert": home.ca_pem.read_bytes(),
        "endpoint.txt": DEFAULT_ENDPOINT.encode(),
    }
    written = []
    # Whole files, the key first and the certificate last: a folder with a certificate
    # always has its key (the internal credentials test for the certificate).
    for file_name in (
        "device.key",
        *(n for n in files if n not in ("device.key", "device.cert")),
        "device.cert",
    ):
        path = out / file_name
        write_new(path, files[file_name], 0o600 if file_name.endswith(".key") else 0o644)
        written.append(path)
    return written


def thing_create(home: CloudHome, name: str, out: Path, *, force: bool = False) -> list[Path]:
    """Register thing ``name``, issue its certificate and write the guide's five files."""
    check_credentials_free(out, force)
    with home.registry() as registry:
        registry.create_thing(name)
        return _write_credentials(home, registry, name, Role.DEVICE, out)


def thing_certificate(home: CloudHome, name: str, out: Path, *, force: bool = False) -> list[Path]:
    """A new key and certificate for the existing thing ``name`` (AWS's
    create-keys-and-certificate and attach-thing-principal), with the guide's five files."""
    check_credentials_free(out, force)
    with home.registry() as registry:
        if registry.thing(name) is None:
            raise InputError(f"no thing named {name!r}; create it with 'cloud thing create {name}'")
        return _write_credentials(home, registry, name, Role.DEVICE, out)


def thing_delete(home: CloudHome, name: str) -> int:
    """Remove thing ``name`` and revoke its certificates; how many were active."""
    with home.registry() as registry:
        active = [c for c in registry.certificates(name) if c.status is CertStatus.ACTIVE]
        registry.delete_thing(name)
    return len(active)


def client_create(
    home: CloudHome, name: str, role: Role, out: Path, *, force: bool = False
) -> list[Path]:
    """Credentials for an operator or phone app (same five files, the role's rights)."""
    if role is Role.DEVICE:
        raise InputError("a device is a thing: use 'jumpstart cloud thing create'")
    check_credentials_free(out, force)
    with home.registry() as registry:
        return _write_credentials(home, registry, name, role, out)


def _internal_credentials(home: CloudHome, name: str) -> tuple[Path, Path]:
    """An admin certificate the cloud uses itself, made once, whichever process comes first
    (a half-made one, killed between its files, is made again)."""
    folder = home.path / name
    cert, key = folder / "device.cert", folder / "device.key"
    if cert.exists():
        return cert, key
    home.ensure()
    with folder_lock(home.path):
        if not cert.exists():
            client_create(home, name, Role.ADMIN, folder, force=True)
    return cert, key


def operator_credentials(home: CloudHome) -> tuple[Path, Path]:
    """The admin certificate the CLI uses for itself, made on first use."""
    return _internal_credentials(home, OPERATOR)


ENGINES = "jumpstart-engines"


def engine_principal(shard: Shard) -> str:
    """The engines' identity on an external broker, one per shard. mosquitto makes a
    client's certificate name its client id, so each instance needs a name of its own."""
    return ENGINES if shard.count == 1 else f"{ENGINES}-{shard.index}of{shard.count}"


def engine_credentials(home: CloudHome, shard: Shard) -> tuple[Path, Path]:
    """The admin certificate of ``shard``'s engines, made on first use together with those
    of its sibling shards, so a broker configured from the registry knows them all."""
    for index in range(shard.count):
        _internal_credentials(home, engine_principal(Shard(index, shard.count)))
    return _internal_credentials(home, engine_principal(shard))


def curl_line(thing: str, port: int = REST_PORT, cert_dir: str = "cloud_cfg") -> str:
    """The guide's read command, pointed at the local endpoint."""
    return (
        f"curl --tlsv1.2 --cert {cert_dir}/device.cert --key {cert_dir}/device.key "
        f"https://{DEFAULT_ENDPOINT}:{port}/things/{thing}/shadow"
    )


@dataclass(frozen=True)
class RestResponse:
    status: int
    document: dict[str, Any]


def operator_context(home: CloudHome, shard: Shard | None = None) -> ssl.SSLContext:
    """A client TLS context that trusts the cloud's CA and presents the operator certificate
    (the CLI's REST calls), or with ``shard`` the engines' certificate (external broker)."""
    cert, key = operator_credentials(home) if shard is None else engine_credentials(home, shard)
    context = ssl.create_default_context(cafile=str(home.ca_pem))
    context.load_cert_chain(str(cert), str(key))
    return context


def rest_port(home: CloudHome, port: int | None) -> tuple[int, str]:
    """The REST port to call, and where it came from: ``port`` when given, else the running
    cloud's record, else the default."""
    if port is not None:
        return port, "--port"
    running = home.running_endpoints()
    if running is not None:
        return running.rest_port, f"the cloud running as process {running.pid}"
    return REST_PORT, "the default port; no cloud records itself running here"


def rest_request(
    home: CloudHome,
    method: str,
    path: str,
    body: bytes = b"",
    port: int | None = None,
    host: str = DEFAULT_ENDPOINT,
) -> RestResponse:
    """One REST call to a running cloud with the operator's certificate (``port`` None: the
    cloud running on ``home``)."""
    port, source = rest_port(home, port)
    context = operator_context(home)
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=10)
    try:
        connection.request(method, path, body=body or None)
        response = connection.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as err:
        raise InputError(
            f"cannot reach the cloud at {host}:{port} ({source}): {err}; start it with "
            "'jumpstart cloud serve', or pass --port PORT if it listens elsewhere"
        ) from None
    finally:
        connection.close()
    try:
        document = json.loads(data) if data else {}
    except ValueError:
        raise InputError(f"the cloud answered {response.status} with non-JSON") from None
    return RestResponse(response.status, document)


def shadow_request(
    home: CloudHome,
    method: str,
    thing: str,
    shadow_name: str = "",
    body: bytes = b"",
    port: int | None = None,
    host: str = DEFAULT_ENDPOINT,
) -> RestResponse:
    """A shadow GET, POST (update) or DELETE as the operator."""
    path = f"/things/{thing}/shadow" + (f"?name={shadow_name}" if shadow_name else "")
    return rest_request(home, method, path, body, port, host)


def job_create_request(
    home: CloudHome,
    job_id: str,
    document: str,
    things: list[str],
    all_things: bool = False,
    description: str = "",
    port: int | None = None,
) -> RestResponse:
    """CreateJob for ``things`` (or every registered thing) as the operator."""
    targets = [thing_arn(thing) for thing in things]
    if all_things:
        targets.append(group_arn(ALL_THINGS_GROUP))
    body = {"targets": targets, "document": document, "description": description}
    return rest_request(home, "PUT", f"/jobs/{job_id}", json.dumps(body).encode(), port)
