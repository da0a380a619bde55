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
from jumpstart.statefiles import folder_lock, write_new

__all__ = ["DEFAULT_ENDPOINT", "CloudHome", "default_home"]

DEFAULT_ENDPOINT = "localhost"
SERVER_NAMES = ["localhost", "127.0.0.1", "::1"]


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

    def registry(self) -> Registry:
        return Registry(self.registry_path, self.ensure())


def default_home() -> CloudHome:
    """``$JUMPSTART_HOME/cloud`` (default ``~/.jumpstart/cloud``)."""
    root = Path(os.environ.get("JUMPSTART_HOME", Path.home() / ".jumpstart"))
    return CloudHome(root / "cloud")
