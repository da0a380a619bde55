"""The cloud's data folder, ``$JUMPSTART_HOME/cloud``::

ca.key, ca.pem          the fleet CA (signs server and client certificates)
server.key, server.pem  the endpoint's certificate (localhost, 127.0.0.1)
registry.db             things and certificates (SQLite)
shadows.db              shadow documents (SQLite, the default store)
jobs.db                 jobs and their executions
retained.db             retained MQTT messages
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from jumpstart.cloud.pki import CertificateAuthority
from jumpstart.cloud.registry import Registry

__all__ = ["DEFAULT_ENDPOINT", "CloudHome", "default_home"]

DEFAULT_ENDPOINT = "localhost"
SERVER_NAMES = ["localhost", "127.0.0.1", "::1"]


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o600)


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

    def ensure(self) -> CertificateAuthority:
        """Create the folder, the CA and the server certificate on first use."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.ca_pem.exists():
            ca = CertificateAuthority.create()
            _write_private(self.ca_key, ca.key_pem())
            self.ca_pem.write_bytes(ca.cert_pem())
        ca = CertificateAuthority.from_pem(self.ca_key.read_bytes(), self.ca_pem.read_bytes())
        if not self.server_pem.exists():
            server = ca.issue_server(SERVER_NAMES)
            _write_private(self.server_key, server.key_pem)
            self.server_pem.write_bytes(server.cert_pem + ca.cert_pem())
        return ca

    def registry(self) -> Registry:
        return Registry(self.registry_path, self.ensure())


def default_home() -> CloudHome:
    """``$JUMPSTART_HOME/cloud`` (default ``~/.jumpstart/cloud``)."""
    root = Path(os.environ.get("JUMPSTART_HOME", Path.home() / ".jumpstart"))
    return CloudHome(root / "cloud")
