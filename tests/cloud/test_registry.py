"""The registry on SQLite and on PostgreSQL: the same rules on both, and a folder that moves
its registry to PostgreSQL keeps what it had and shares it with another host's folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.registry import CertStatus, Registry, Role
from jumpstart.errors import InputError
from tests.postgres_cluster import fresh_schema

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def home(request: pytest.FixtureRequest, tmp_path: Path) -> CloudHome:
    home = CloudHome(tmp_path / "cloud")
    if request.param == "postgresql":
        home.use_registry(fresh_schema(request.getfixturevalue("postgres_url")))
    return home


def test_things_certificates_and_roles(home: CloudHome) -> None:
    with home.registry() as registry:
        registry.create_thing("lamp")
        with pytest.raises(InputError, match="exists already"):
            registry.create_thing("lamp")
        issued = registry.issue("lamp", Role.DEVICE)
        record = registry.certificate(issued.certificate_id)
        assert record is not None
        assert (record.principal, record.role, record.status) == (
            "lamp",
            Role.DEVICE,
            CertStatus.ACTIVE,
        )
        assert record.pem == issued.cert_pem
        with pytest.raises(InputError, match="already used by a principal with role device"):
            registry.issue("lamp", Role.APP)
        with pytest.raises(InputError, match="no thing named"):
            registry.issue("ghost", Role.DEVICE)
        registry.revoke(issued.certificate_id)
        assert registry.revoked_ids() == {issued.certificate_id}
        assert b"BEGIN X509 CRL" in registry.crl_pem()
        with pytest.raises(InputError, match="no certificate with id"):
            registry.revoke("0" * 64)
        registry.delete_thing("lamp")
        assert registry.thing("lamp") is None
        assert registry.owner_of("lamp") == "lamp"  # its revoked certificate keeps the name


def test_a_factory_batch_is_registered_whole_or_not_at_all(home: CloudHome) -> None:
    with home.registry() as registry:
        made = [registry.ca.issue_client(f"plug{n}") for n in range(3)]
        batch = [(f"plug{n}", c.certificate_id, c.cert_pem) for n, c in enumerate(made)]
        registry.register_things(batch[:1])
        with pytest.raises(InputError, match="registered already"):
            registry.register_things(batch)  # plug0 again: none of the three more
        assert [t.name for t in registry.things()] == ["plug0"]
        assert len(registry.certificates()) == 1


def test_moving_to_postgresql_keeps_the_things_and_a_second_host_shares_them(
    tmp_path: Path, postgres_url: str
) -> None:
    first = CloudHome(tmp_path / "host-a" / "cloud")
    with first.registry() as registry:
        registry.create_thing("kept")
        kept = registry.issue("kept", Role.DEVICE)
    url = fresh_schema(postgres_url)
    first.use_registry(url)
    assert first.registry_url() == url
    assert first.registry_url_path.stat().st_mode & 0o777 == 0o600  # may hold a password
    # Another host: the same CA (its folder's key files copied), the same database.
    second = CloudHome(tmp_path / "host-b" / "cloud")
    second.path.mkdir(parents=True)
    for name in ("ca.pem", "ca.key", "server.pem", "server.key"):
        shutil.copy(first.path / name, second.path / name)
    second.use_registry(url)
    with second.registry() as registry:
        record = registry.certificate(kept.certificate_id)
        assert record is not None
        assert record.principal == "kept"
        registry.create_thing("from-b")
    with first.registry() as registry:
        assert [t.name for t in registry.things()] == ["from-b", "kept"]
    # Back to the folder's own SQLite file: what it had, not what was added elsewhere.
    first.use_registry("sqlite")
    with first.registry() as registry:
        assert [t.name for t in registry.things()] == ["kept"]


def test_an_unknown_registry_is_refused(tmp_path: Path) -> None:
    home = CloudHome(tmp_path / "cloud")
    with pytest.raises(InputError, match="use 'sqlite' or a postgresql:// URL"):
        home.use_registry("mysql://db/x")
    with pytest.raises(InputError, match="cannot connect"):
        home.use_registry("postgresql://nobody@127.0.0.1:1/none")
    assert home.registry_url() is None
    assert isinstance(home.registry(), Registry)
