"""The cloud's data folder, ``$JUMPSTART_HOME/cloud``::

ca.key, ca.pem          the fleet CA (signs server and client certificates)
server.key, server.pem  the endpoint's certificate (localhost, 127.0.0.1)
registry.db             things and certificates (SQLite)
registry.url            if present: the PostgreSQL database that holds them instead
shadows.db              shadow documents (SQLite, the default store)
jobs.db                 jobs and their executions
retained.db             retained MQTT messages
endpoints.json          while a cloud runs: its process and ports, for the CLI to find it
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from jumpstart.cloud.pki import CertificateAuthority
from jumpstart.cloud.registry import Registry
from jumpstart.errors import InputError
from jumpstart.statefiles import folder_lock, write_new

__all__ = ["DEFAULT_ENDPOINT", "CloudHome", "RunningEndpoints", "default_home"]

DEFAULT_ENDPOINT = "localhost"
SERVER_NAMES = ["localhost", "127.0.0.1", "::1"]


@dataclass(frozen=True)
class RunningEndpoints:
    """Where a running cloud listens."""

    pid: int
    mqtt_port: int
    rest_port: int
    firmware_port: int


@dataclass(frozen=True)
class CloudHome:
    path: Path

    @property
    def ca_pem(self) -> Path:
        return self.path / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.path / "ca.key"

    @property
    def server_pem(self) -> Path:
        return self.path / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.path / "server.key"

    @property
    def registry_path(self) -> Path:
        return self.path / "registry.db"

    @property
    def shadows_path(self) -> Path:
        return self.path / "shadows.db"

    @property
    def jobs_path(self) -> Path:
        return self.path / "jobs.db"

    @property
    def retained_path(self) -> Path:
        return self.path / "retained.db"

    @property
    def endpoints_path(self) -> Path:
        return self.path / "endpoints.json"

    def record_endpoints(self, endpoints: RunningEndpoints) -> None:
        """Say where the cloud that runs now listens (``cloud serve``, ``make run``)."""
        write_new(self.endpoints_path, json.dumps(asdict(endpoints)).encode())

    def forget_endpoints(self, endpoints: RunningEndpoints) -> None:
        """The cloud stopped: remove its record, unless another one wrote its own since."""
        if self.running_endpoints() == endpoints:
            self.endpoints_path.unlink(missing_ok=True)

    def running_endpoints(self) -> RunningEndpoints | None:
        """The ports of the cloud running on this home, if its process is alive."""
        try:
            raw = json.loads(self.endpoints_path.read_text())
            endpoints = RunningEndpoints(**raw)
        except (OSError, ValueError, TypeError):
            return None
        try:
            os.kill(endpoints.pid, 0)
        except ProcessLookupError:
            return None  # it was killed: the record is stale
        except PermissionError:
            pass  # alive, another user's
        return endpoints

    def ensure(self) -> CertificateAuthority:
        """Create the folder, the CA, the server certificate and the registry on first use:
        once, whichever process comes first (statefiles)."""
        if self.server_pem.exists() and self.registry_path.exists():
            return self._load_ca()
        with folder_lock(self.path):
            if not self.ca_pem.exists():
                ca = CertificateAuthority.create()
                # The key first: ca.pem is what others test for, so it appears last.
                write_new(self.ca_key, ca.key_pem(), 0o600)
                write_new(self.ca_pem, ca.cert_pem())
            ca = self._load_ca()
            if not self.server_pem.exists():
                server = ca.issue_server(SERVER_NAMES)
                write_new(self.server_key, server.key_pem, 0o600)
                write_new(self.server_pem, server.cert_pem + ca.cert_pem())
            if not self.registry_path.exists():
                Registry(self.registry_path, ca).close()  # its schema, once
            return ca

    def _load_ca(self) -> CertificateAuthority:
        return CertificateAuthority.from_pem(self.ca_key.read_bytes(), self.ca_pem.read_bytes())

    @property
    def registry_url_path(self) -> Path:
        return self.path / "registry.url"

    def registry_url(self) -> str | None:
        """The PostgreSQL registry this home uses, if one was chosen (``use_registry``)."""
        try:
            return self.registry_url_path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def use_registry(self, url: str) -> None:
        """Keep things and certificates in ``url`` (PostgreSQL) from now on, for every
        command on this home; ``sqlite`` goes back to registry.db."""
        if url == "sqlite":
            self.registry_url_path.unlink(missing_ok=True)
            return
        if not url.startswith(("postgresql://", "postgres://")):
            raise InputError(f"unknown registry {url[:80]!r}: use 'sqlite' or a postgresql:// URL")
        if url == self.registry_url():
            return
        ca = self.ensure()
        from jumpstart.cloud.postgres import PostgresRegistry  # noqa: PLC0415 - optional

        # What this folder registered so far goes along (its operator and engines among
        # them), so the move loses no thing and no certificate.
        with Registry(self.registry_path, ca) as local, PostgresRegistry(url, ca) as shared:
            local.copy_to(shared)
        write_new(self.registry_url_path, url.encode() + b"\n", 0o600)

    def registry(self) -> Registry:
        """The registry: registry.db, or the PostgreSQL database this home names."""
        ca = self.ensure()
        url = self.registry_url()
        if url is None:
            return Registry(self.registry_path, ca)
        from jumpstart.cloud.postgres import PostgresRegistry  # noqa: PLC0415 - optional

        return PostgresRegistry(url, ca)


def default_home() -> CloudHome:
    """``$JUMPSTART_HOME/cloud`` (default ``~/.jumpstart/cloud``)."""
    root = Path(os.environ.get("JUMPSTART_HOME", Path.home() / ".jumpstart"))
    return CloudHome(root / "cloud")
