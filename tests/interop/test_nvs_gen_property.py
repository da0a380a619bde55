"""Random CSVs: ``jumpstart nvs generate|encrypt`` and nvs_partition_gen write the same bytes.

The generator runs in-process through the function its own CLI calls. Namespace names are
never repeated in one CSV (the generator then files rows under the wrong namespace; see
test_repeated_namespace_goes_to_the_right_index) and no key looks like ``sta.*``/``ap.*``.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from esp_idf_nvs_partition_gen import nvs_partition_gen as gen
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jumpstart.errors import InputError
from jumpstart.formats.nvs import NvsKeys
from jumpstart.host import nvs_tool
from jumpstart.host.nvs_parse import parse_image
from jumpstart.host.nvs_tool import generate

pytestmark = pytest.mark.interop

KEYS = NvsKeys(bytes(range(1, 33)), bytes(range(101, 133)))
INT_BOUNDS = {
    "u8": (0, 255),
    "i8": (-128, 127),
    "u16": (0, 65535),
    "i16": (-32768, 32767),
    "u32": (0, 2**32 - 1),
    "i32": (-(2**31), 2**31 - 1),
    "u64": (0, 2**64 - 1),
    "i64": (-(2**63), 2**63 - 1),
}
key_names = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=15)
text_values = st.text('abcdefgh ijk,"xyz0123456789', max_size=4000)


@st.composite
def data_row(draw: st.DrawFn) -> list[str]:
    key = draw(key_names)
    encoding = draw(st.sampled_from([*INT_BOUNDS, "string", "hex2bin", "base64"]))
    if encoding in INT_BOUNDS:
        low, high = INT_BOUNDS[encoding]
        return [key, "data", encoding, str(draw(st.integers(low, high)))]
    if encoding == "string":
        return [key, "data", encoding, draw(text_values)]
    size = draw(st.one_of(st.integers(0, 64), st.integers(0, 2100), st.integers(3900, 9000)))
    blob = draw(st.binary(min_size=size, max_size=size))
    value = blob.hex() if encoding == "hex2bin" else base64.b64encode(blob).decode()
    return [key, "data", encoding, value]


@st.composite
def csv_text(draw: st.DrawFn) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["key", "type", "encoding", "value"])
    names = draw(st.lists(key_names, min_size=1, max_size=4, unique=True))
    for name in names:
        writer.writerow([name, "namespace", "", ""])
        for row in draw(st.lists(data_row(), max_size=12)):
            writer.writerow(row)
    return out.getvalue()


def reference(folder: Path, csv_path: Path, size: str, version: int, key: Path | None) -> bytes:
    """Run nvs_partition_gen's generate/encrypt; raises whatever it raises."""
    out = folder / "reference.bin"
    args = SimpleNamespace(
        input=[str(csv_path)], output=str(out), size=size, version=version, outdir=str(folder)
    )
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        if key is None:
            gen.generate(args)
        else:
            args.keygen, args.inputkey, args.keyfile = False, str(key), None
            args.key_protect_hmac, args.kp_hmac_keygen = False, False
            args.kp_hmac_keyfile, args.kp_hmac_inputkey = None, None
            gen.encrypt(args)
    return out.read_bytes()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    text=csv_text(),
    pages=st.one_of(st.integers(3, 8), st.integers(3, 256)),
    version=st.sampled_from([1, 2]),
    encrypted=st.booleans(),
)
def test_random_csv_same_bytes(text: str, pages: int, version: int, encrypted: bool) -> None:
    size = hex(pages * 4096)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path = folder / "in.csv"
        csv_path.write_text(text, encoding="utf-8")
        key_path = folder / "keys.bin"
        key_path.write_bytes(KEYS.to_bytes())
        try:
            expected: bytes | None = reference(
                folder, csv_path, size, version, key_path if encrypted else None
            )
        except (Exception, SystemExit):  # the generator refuses (or crashes on) this input
            expected = None
        event(f"generator {'refused' if expected is None else 'wrote'}")
        out = folder / "ours.bin"
        if expected is None:
            with pytest.raises(InputError):
                run_ours(csv_path, out, size, version, key_path if encrypted else None)
            assert not out.exists()
            return
        run_ours(csv_path, out, size, version, key_path if encrypted else None)
        assert out.read_bytes() == expected
        if not encrypted:
            parse_image(expected)  # our parser reads what the generator wrote


def run_ours(csv_path: Path, out: Path, size: str, version: int, key: Path | None) -> None:
    if key is None:
        generate([csv_path], out, size, version=version)
    else:
        nvs_tool.encrypt([csv_path], out, size, version=version, inputkey=key)


def test_repeated_namespace_goes_to_the_right_index(tmp_path: Path) -> None:
    """A deliberate departure: rows after a repeated namespace row stay in that namespace."""
    csv_path = tmp_path / "rep.csv"
    csv_path.write_text(
        "key,type,encoding,value\na,namespace,,\nx,data,u8,1\nb,namespace,,\n"
        "y,data,u8,2\na,namespace,,\nz,data,u8,3\n"
    )
    ours = generate([csv_path], tmp_path / "ours.bin", "0x3000")
    values = parse_image(ours.read_bytes()).values()
    assert values == {("a", "x"): 1, ("b", "y"): 2, ("a", "z"): 3}
    theirs = reference(tmp_path, csv_path, "0x3000", 2, None)
    assert parse_image(theirs).values()[("b", "z")] == 3  # the generator's misfiling
