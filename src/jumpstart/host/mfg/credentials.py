"""``mfg credentials``: what a factory needs for N outlets, ready for ``mfg generate``.

For each device ``PREFIX-n``: a serial number, a random PoP (and with ``sec2`` a Security 2 salt
and verifier), an ECDSA P-256 key and a certificate signed by the cloud's CA, the thing
registered in the cloud's registry. The run writes, in OUTDIR::

    config.csv     the outlet's fctry layout (the keys the outlet reads), for mfg generate
    values.csv     one row per device, appended batch by batch
    server.cert    the CA devices trust (one file, REPEAT in the config)
    certs/         PREFIX-n.cert and PREFIX-n.key

Keys and signatures are the costly part: batches are made in worker processes (one per core,
not one per device). Each batch is written in this order: key and certificate files, then the
registry (one transaction for the batch), then its rows in values.csv. So a run killed at any
point resumes where it stopped: rows present are done; a device whose files exist is completed
with those files (registered if it is not yet); nothing is registered twice.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jumpstart.children import die_with_parent
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.pki import CertificateAuthority, certificate_id
from jumpstart.cloud.registry import Registry, check_thing_name
from jumpstart.errors import InputError
from jumpstart.formats.esp_secure_cert import SecureCertEntry, TlvType, build_partition
from jumpstart.idf.protocomm.srp6a import random_salt, verifier
from jumpstart.statefiles import write_new

__all__ = ["FACTORY_CONFIG", "CredentialsJob", "CredentialsResult", "run_credentials"]

SEC2_USERNAME = "wifiprov"
RUN_FILE = "run.json"  # the options of the run that made this folder
BATCH = 200
# The outlet's factory partition (apps/outlet reads these from namespace fctry). What every
# device shares is REPEAT: the endpoint, its port and the CA.
FACTORY_CONFIG = """fctry,namespace,
serial_no,data,string
pop,data,string
device_id,data,string
endpoint,data,string,REPEAT
mqtt_port,data,string,REPEAT
server_cert,file,string,REPEAT
device_cert,file,string
device_key,file,string
"""
# With --secure-cert the certificate, key and CA are in each device's esp_secure_cert
# partition instead: fctry keeps who the device is and where it connects.
SECURE_CERT_CONFIG = "".join(
    line + "\n"
    for line in FACTORY_CONFIG.splitlines()
    if line.split(",")[0] not in ("server_cert", "device_cert", "device_key")
)
SECURE_CERT_DIR = "esp_secure_cert"
SEC2_CONFIG = """sec2_username,data,string,REPEAT
sec2_salt,data,string
sec2_verifier,data,string
"""
COLUMNS = (
    "id",
    "serial_no",
    "pop",
    "device_id",
    "endpoint",
    "mqtt_port",
    "server_cert",
    "device_cert",
    "device_key",
)
SEC2_COLUMNS = ("sec2_username", "sec2_salt", "sec2_verifier")


@dataclass(frozen=True)
class CredentialsJob:
    home: CloudHome
    count: int
    outdir: Path
    prefix: str = "outlet"
    start: int = 1
    endpoint: str = "localhost"
    mqtt_port: int = 8883
    sec2: bool = False
    secure_cert: bool = False
    workers: int = 0  # 0: one per core


@dataclass(frozen=True)
class CredentialsResult:
    made: int
    resumed: int
    skipped: int


@dataclass(frozen=True, slots=True)
class _Identity:
    index: int
    thing: str
    serial: str
    pop: str
    key_pem: bytes
    cert_pem: bytes
    certificate_id: str
    sec2_salt: str = ""
    sec2_verifier: str = ""


def _serial(prefix: str, index: int) -> str:
    return f"{prefix.upper()}-{index:06d}"


def _secrets(sec2: bool) -> tuple[str, str, str]:
    """A PoP, and with Security 2 the salt and verifier of (wifiprov, PoP)."""
    pop = secrets.token_hex(4)
    if not sec2:
        return pop, "", ""
    salt = random_salt()
    return pop, salt.hex(), verifier(SEC2_USERNAME.encode(), pop.encode(), salt).hex()


def _make_batch(
    ca_key: bytes, ca_cert: bytes, prefix: str, indices: list[int], sec2: bool
) -> list[_Identity]:
    """In a worker process: keys, certificates and secrets for ``indices``."""
    ca = CertificateAuthority.from_pem(ca_key, ca_cert)
    made = []
    for index in indices:
        thing = f"{prefix}-{index}"
        issued = ca.issue_client(thing)
        pop, salt, verifier_hex = _secrets(sec2)
        made.append(
            _Identity(
                index,
                thing,
                _serial(prefix, index),
                pop,
                issued.key_pem,
                issued.cert_pem,
                issued.certificate_id,
                salt,
                verifier_hex,
            )
        )
    return made


class _Outdir:
    def __init__(self, job: CredentialsJob) -> None:
        self.job = job
        self.path = job.outdir
        self.certs = job.outdir / "certs"
        self.values = job.outdir / "values.csv"
        columns = COLUMNS[:6] if job.secure_cert else COLUMNS
        self.columns = columns + (SEC2_COLUMNS if job.sec2 else ())
        self.secure_certs = job.outdir / SECURE_CERT_DIR
        self.ca_pem = b""

    def prepare(self, ca_pem: bytes) -> None:
        self.ca_pem = ca_pem
        self.certs.mkdir(parents=True, exist_ok=True)
        if self.job.secure_cert:
            self.secure_certs.mkdir(exist_ok=True)
        base = SECURE_CERT_CONFIG if self.job.secure_cert else FACTORY_CONFIG
        config = (base + (SEC2_CONFIG if self.job.sec2 else "")).encode()
        for name, data in (("config.csv", config), ("server.cert", ca_pem)):
            _write_once(
                self.path / name,
                data,
                "belongs to another run (other options or another cloud); choose another --outdir",
            )
        run = json.dumps(
            {
                "prefix": self.job.prefix,
                "endpoint": self.job.endpoint,
                "mqtt_port": self.job.mqtt_port,
                "sec2": self.job.sec2,
                "secure_cert": self.job.secure_cert,
            },
            sort_keys=True,
        ).encode()
        _write_once(
            self.path / RUN_FILE,
            run,
            "holds a run with other options (see that file); use the same options, or another"
            " --outdir",
        )
        if not self.values.exists():
            write_new(self.values, _csv_line(self.columns))
        header = self.values.read_text().splitlines()[:1]
        if header != [",".join(self.columns)]:
            raise InputError(f"{self.values} has other columns; choose another --outdir")

    def done(self) -> set[int]:
        """The ids of the rows written (a torn last line is dropped and rewritten later)."""
        text = self.values.read_text()
        if not text.endswith("\n"):  # killed mid-append: drop the partial line
            text = text[: text.rfind("\n") + 1]
            self.values.write_text(text)
        rows = list(csv.reader(io.StringIO(text)))[1:]
        return {int(row[0]) for row in rows if row}

    def files(self, thing: str) -> tuple[Path, Path]:
        return self.certs / f"{thing}.cert", self.certs / f"{thing}.key"

    def write_files(self, identity: _Identity) -> None:
        cert, key = self.files(identity.thing)
        write_new(key, identity.key_pem, 0o600)
        write_new(cert, identity.cert_pem)

    def write_secure_cert(self, identity: _Identity) -> None:
        """The device's esp_secure_cert partition, as configure_esp_secure_cert.py builds it:
        CA, device certificate, key (traditional OpenSSL PEM), each with its NUL; integrity."""
        key = serialization.load_pem_private_key(identity.key_pem, password=None)
        traditional = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        image = build_partition(
            [
                SecureCertEntry(TlvType.CA_CERT, self.ca_pem + b"\0"),
                SecureCertEntry(TlvType.DEV_CERT, identity.cert_pem + b"\0"),
                SecureCertEntry(TlvType.PRIV_KEY, traditional + b"\0"),
            ]
        )
        write_new(self.secure_certs / f"{identity.thing}.bin", image, 0o600)

    def append(self, identities: list[_Identity]) -> None:
        job = self.job
        lines = []
        for d in identities:
            cert, key = self.files(d.thing)
            row = [str(d.index), d.serial, d.pop, d.thing, job.endpoint, str(job.mqtt_port)]
            if not job.secure_cert:
                paths = (self.path / "server.cert", cert, key)
                row += [str(path.absolute()) for path in paths]
            if job.sec2:
                row += [SEC2_USERNAME, d.sec2_salt, d.sec2_verifier]
            lines.append(_csv_line(row))
        with self.values.open("ab") as out:
            out.write(b"".join(lines))
            out.flush()
            os.fsync(out.fileno())


def _write_once(path: Path, data: bytes, otherwise: str) -> None:
    """Write ``path`` if it is new; if it exists it must hold ``data`` already."""
    if not path.exists():
        write_new(path, data)
    elif path.read_bytes() != data:
        raise InputError(f"{path} {otherwise}")


def _csv_line(cells: tuple[str, ...] | list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue().encode()


def _resume(
    job: CredentialsJob, outdir: _Outdir, registry: Registry, index: int
) -> _Identity | None:
    """A device begun by an interrupted run: its files, if they exist."""
    thing = f"{job.prefix}-{index}"
    cert_path, key_path = outdir.files(thing)
    registered = registry.thing(thing) is not None
    if not cert_path.exists() or not key_path.exists():
        if registered:
            raise InputError(
                f"thing {thing!r} is registered already but its key is not in {outdir.certs}:"
                " choose another --prefix or --start"
            )
        return None
    cert_pem = cert_path.read_bytes()
    cert_id = certificate_id(x509.load_pem_x509_certificate(cert_pem))
    if registered and cert_id not in {c.certificate_id for c in registry.certificates(thing)}:
        raise InputError(f"thing {thing!r} is registered with another certificate")
    # The PoP and Security 2 secrets were only in memory: make new ones.
    pop, salt, verifier_hex = _secrets(job.sec2)
    return _Identity(
        index,
        thing,
        _serial(job.prefix, index),
        pop,
        key_path.read_bytes(),
        cert_pem,
        cert_id,
        salt,
        verifier_hex,
    )


def _chunks(indices: list[int], size: int) -> Iterator[list[int]]:
    for at in range(0, len(indices), size):
        yield indices[at : at + size]


def run_credentials(
    job: CredentialsJob, progress: Callable[[int, int], None] | None = None
) -> CredentialsResult:
    if job.count < 1 or job.start < 0:
        raise InputError("--count must be at least 1 and --start at least 0")
    for index in (job.start, job.start + job.count - 1):  # before any key is made
        try:
            check_thing_name(f"{job.prefix}-{index}")
        except InputError as err:
            raise InputError(f"--prefix {job.prefix!r}: {err}") from None
    ca = job.home.ensure()
    outdir = _Outdir(job)
    outdir.prepare(ca.cert_pem())
    done = outdir.done()
    wanted = [i for i in range(job.start, job.start + job.count) if i not in done]
    total, finished = len(wanted), 0
    resumed: list[_Identity] = []
    with job.home.registry() as registry:
        fresh = []
        for index in wanted:
            identity = _resume(job, outdir, registry, index)
            if identity is None:
                fresh.append(index)
            else:
                resumed.append(identity)
        if resumed:
            _commit(registry, outdir, resumed, write_files=False)
            finished += len(resumed)
            if progress is not None:
                progress(finished, total)
        workers = job.workers or os.cpu_count() or 1
        key_pem, cert_pem = ca.key_pem(), ca.cert_pem()
        with ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent) as pool:
            pending = [
                pool.submit(_make_batch, key_pem, cert_pem, job.prefix, chunk, job.sec2)
                for chunk in _chunks(fresh, BATCH)
            ]
            try:
                for future in pending:  # in order: values.csv grows in device order
                    batch = future.result()
                    _commit(registry, outdir, batch, write_files=True)
                    finished += len(batch)
                    if progress is not None:
                        progress(finished, total)
            except BaseException:  # an error or Ctrl-C: the batches not begun are dropped
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    return CredentialsResult(len(fresh), len(resumed), job.count - len(wanted))


def _commit(
    registry: Registry, outdir: _Outdir, batch: list[_Identity], *, write_files: bool
) -> None:
    """Files, then the registry (one transaction), then the values rows."""
    for identity in batch:
        if write_files:
            outdir.write_files(identity)
        if outdir.job.secure_cert:
            outdir.write_secure_cert(identity)
    unregistered = [d for d in batch if registry.thing(d.thing) is None]
    registry.register_things([(d.thing, d.certificate_id, d.cert_pem) for d in unregistered])
    outdir.append(batch)
