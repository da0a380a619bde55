import pytest
from hypothesis import given
from hypothesis import strategies as st

from jumpstart.errors import InputError
from jumpstart.formats.app_package import AppPackage

PACKAGE = AppPackage(
    name="drivers",
    version="1.0.0",
    entry="drivers.main",
    modules={"drivers.__init__": b"", "drivers.main": b"async def app_main(ctx): pass\n"},
    embedded={"server.crt": b"-----BEGIN CERTIFICATE-----\n"},
    config={"output_gpio": 27},
)


def test_round_trip_is_exact_and_deterministic() -> None:
    data = PACKAGE.to_bytes()
    assert data == PACKAGE.to_bytes()
    assert AppPackage.from_bytes(data) == PACKAGE
    assert PACKAGE.packages == {"drivers"}


def test_entry_must_be_one_of_the_modules() -> None:
    with pytest.raises(InputError, match=r"entry module 'x\.main'"):
        AppPackage("a", "1", "x.main", {"y.main": b""})


@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_refused_cleanly(data: bytes) -> None:
    with pytest.raises(InputError):
        AppPackage.from_bytes(data)


def test_truncated_package_is_refused() -> None:
    with pytest.raises(InputError, match="does not carry an app package"):
        AppPackage.from_bytes(PACKAGE.to_bytes()[:-30])
