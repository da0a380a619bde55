"""Bulk factory images equal a full build of the same values, byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jumpstart.errors import InputError
from jumpstart.formats.nvs import FormatVersion, ItemType
from jumpstart.host.nvs_gen import NvsImageBuilder, NvsSize, parse_nvs_size
from jumpstart.host.nvs_parse import parse_image
from jumpstart.host.nvs_template import (
    FactoryField,
    FactoryValue,
    LayoutChangedError,
    NvsImageBatch,
    NvsImageTemplate,
)

INTEGER_RANGES = {
    ItemType.U8: (0, 255),
    ItemType.I8: (-128, 127),
    ItemType.U16: (0, 65535),
    ItemType.I16: (-32768, 32767),
    ItemType.U32: (0, 2**32 - 1),
    ItemType.I32: (-(2**31), 2**31 - 1),
    ItemType.U64: (0, 2**64 - 1),
    ItemType.I64: (-(2**63), 2**63 - 1),
}
FIELD_TYPES = [*INTEGER_RANGES, ItemType.SZ, ItemType.BLOB]


def full_build(
    size: NvsSize, version: FormatVersion, fields: list[FactoryField], values: list[FactoryValue]
) -> bytes:
    builder = NvsImageBuilder(size, version)
    namespaces: dict[str, int] = {}
    for field, value in zip(fields, values, strict=True):
        if field.namespace not in namespaces:
            namespaces[field.namespace] = builder.namespace(field.namespace)
        ns = namespaces[field.namespace]
        if field.type is ItemType.SZ:
            assert isinstance(value, str)
            builder.string(ns, field.key, value)
        elif field.type is ItemType.BLOB:
            assert isinstance(value, bytes)
            builder.blob(ns, field.key, value)
        else:
            assert isinstance(value, int)
            builder.integer(ns, field.key, field.type, value)
    return builder.to_bytes()


def value_for(field: FactoryField) -> st.SearchStrategy[FactoryValue]:
    if field.type is ItemType.SZ:
        return st.text("abcxyz0123 é", max_size=300)
    if field.type is ItemType.BLOB:
        return st.one_of(st.binary(max_size=100), st.binary(min_size=3000, max_size=9000))
    return st.integers(*INTEGER_RANGES[field.type])


@st.composite
def factory_fields(draw: st.DrawFn) -> list[FactoryField]:
    keys = draw(
        st.lists(
            st.text("abcdefghij_", min_size=1, max_size=15), min_size=1, max_size=12, unique=True
        )
    )
    namespaces = draw(st.lists(st.sampled_from(["fctry", "cal", "certs"]), min_size=len(keys)))
    return [
        FactoryField(ns, key, draw(st.sampled_from(FIELD_TYPES)))
        for ns, key in zip(namespaces, keys, strict=False)
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), factory_fields(), st.sampled_from(list(FormatVersion)))
def test_batch_images_equal_full_builds(
    data: st.DataObject, fields: list[FactoryField], version: FormatVersion
) -> None:
    if version is FormatVersion.V1:  # v1 blobs live in one page
        fields = [f for f in fields if f.type is not ItemType.BLOB] or fields[:0]
    size = parse_nvs_size("0x40000")
    batch = NvsImageBatch(size, fields, version)
    for _ in range(3):
        values = [data.draw(value_for(field)) for field in fields]
        assert batch.render(values) == full_build(size, version, fields, values)


def test_factory_run_of_distinct_devices_parses_back() -> None:
    fields = [
        FactoryField("fctry", "serial_no", ItemType.SZ),
        FactoryField("fctry", "device_cert", ItemType.BLOB),
        FactoryField("fctry", "hw_rev", ItemType.U8),
        FactoryField("cal", "offset", ItemType.I32),
    ]
    size = parse_nvs_size("0x6000")
    batch = NvsImageBatch(size, fields)
    for n in range(20):
        values: list[FactoryValue] = [f"SP-{n:06d}", bytes([n]) * 1200, n, -n]
        image = batch.render(values)
        assert image == full_build(size, FormatVersion.V2, fields, values)
        parsed = parse_image(image).values()
        assert parsed[("fctry", "serial_no")] == f"SP-{n:06d}"
        assert parsed[("fctry", "device_cert")] == bytes([n]) * 1200
        assert parsed[("cal", "offset")] == -n


def test_template_refuses_a_value_of_another_length() -> None:
    fields = [FactoryField("fctry", "serial_no", ItemType.SZ)]
    template = NvsImageTemplate.compile(parse_nvs_size("0x3000"), FormatVersion.V2, fields, ["ab"])
    with pytest.raises(LayoutChangedError):
        template.render(["abc"])


@pytest.mark.parametrize(
    ("field_type", "value", "message"),
    [
        (ItemType.U8, 256, "does not fit type u8"),
        (ItemType.I16, "12", "does not fit type i16"),
        (ItemType.SZ, b"raw", "expected text"),
        (ItemType.BLOB, "text", "expected bytes"),
    ],
)
def test_bad_values_are_refused_clearly(
    field_type: ItemType, value: FactoryValue, message: str
) -> None:
    fields = [FactoryField("fctry", "k", field_type)]
    sample: FactoryValue = (
        1 if field_type in INTEGER_RANGES else ("x" if field_type is ItemType.SZ else b"x")
    )
    batch = NvsImageBatch(parse_nvs_size("0x3000"), fields)
    batch.render([sample])
    with pytest.raises(InputError, match=message):
        batch.render([value])


def test_field_and_value_counts_must_match() -> None:
    batch = NvsImageBatch(parse_nvs_size("0x3000"), [FactoryField("a", "k", ItemType.U8)])
    with pytest.raises(InputError, match="1 fields but 2 values"):
        batch.render([1, 2])


def test_field_type_must_be_storable() -> None:
    with pytest.raises(InputError, match="integer, SZ or BLOB"):
        FactoryField("a", "k", ItemType.BLOB_IDX)
