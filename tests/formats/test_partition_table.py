import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jumpstart.formats.partition_table import (
    MAX_TABLE_LENGTH,
    Partition,
    PartitionTable,
    PartitionTableError,
    decode_table_text,
)
from jumpstart.host.layouts import OUTLET_PARTITIONS_CSV

# (record, 32 bytes): shared by the encoder and the decoder test.
RECORD_VECTORS = [
    (
        Partition("nvs", 1, 2, 0x9000, 0x6000),
        "aa50010200900000006000006e7673" + "00" * 13 + "00000000",
    ),
    (
        Partition("factory", 0, 0, 0x10000, 0x100000),
        "aa500000000001000000100066616374" + "6f7279" + "00" * 9 + "00000000",
    ),
    (
        Partition("nvs_key", 1, 4, 0x110000, 0x1000, encrypted=True),
        "aa50010400001100001000006e76735f6b6579" + "00" * 9 + "01000000",
    ),
    (
        Partition("fctry", 1, 2, 0x340000, 0x6000, readonly=True, encrypted=True),
        "aa5001020000340000600000" + "6663747279" + "00" * 11 + "03000000",
    ),
]


@pytest.mark.parametrize(("part", "raw"), RECORD_VECTORS)
def test_record_encodes_to_vector(part: Partition, raw: str) -> None:
    assert part.to_binary() == bytes.fromhex(raw)


@pytest.mark.parametrize(("part", "raw"), RECORD_VECTORS)
def test_record_decodes_from_vector(part: Partition, raw: str) -> None:
    assert Partition.from_binary(bytes.fromhex(raw)) == part


@pytest.mark.parametrize("name", ["partitions.bin", "partitions-utf8-bom.bin"])
def test_binary_vectors_round_trip(vectors: Path, name: str) -> None:
    raw = (vectors / f"partition_table__test_gen_esp32part_host__{name}").read_bytes()
    table = PartitionTable.from_binary(raw)
    assert table.to_binary() == raw[:MAX_TABLE_LENGTH]
    # The BOM vector was written by a generator that kept the BOM in the first label.
    assert [p.name.lstrip("\ufeff") for p in table] == ["nvs", "phy_инит_", "factory"]


def test_bom_and_plain_csv_give_the_vector_binary(vectors: Path) -> None:
    expected = (vectors / "partition_table__test_gen_esp32part_host__partitions.bin").read_bytes()
    for name in ("partitions-utf8-bom.csv", "partitions-utf8_without-bom.csv"):
        text = decode_table_text(
            (vectors / f"partition_table__test_gen_esp32part_host__{name}").read_bytes()
        )
        assert PartitionTable.from_csv(text).to_binary() == expected[:MAX_TABLE_LENGTH]


def test_guide_layout_is_placed_like_idf() -> None:
    table = PartitionTable.from_csv(OUTLET_PARTITIONS_CSV)
    assert [(p.name, p.offset, p.size) for p in table] == [
        ("nvs", 0x9000, 0x6000),
        ("otadata", 0xF000, 0x2000),
        ("phy_init", 0x11000, 0x1000),
        ("nvs_key", 0x1F000, 0x1000),
        ("ota_0", 0x20000, 1600 * 1024),
        ("ota_1", 0x1B0000, 1600 * 1024),
        ("fctry", 0x340000, 0x6000),
    ]
    assert [p.ota_slot for p in table.ota_apps] == [0, 1]


def test_spec_example_auto_placement() -> None:
    csv = (
        "nvs,data,nvs,,0x6000\notadata,data,ota,,0x2000\nphy_init,data,phy,,0x1000\n"
        "fctry,data,nvs,,0x6000,readonly\nnvs_keys,data,nvs_keys,,0x1000,encrypted\n"
        "ota_0,app,ota_0,,1536K\nota_1,app,ota_1,,1536K\n"
    )
    table = PartitionTable.from_csv(csv)
    assert [p.offset for p in table] == [
        0x9000,
        0xF000,
        0x11000,
        0x12000,
        0x18000,
        0x20000,
        0x1A0000,
    ]
    assert table.to_binary()[0xE0:0xE2] == b"\xeb\xeb"  # MD5 record after 7 records


def test_numbers_keywords_flags_and_negative_size() -> None:
    table = PartitionTable.from_csv(
        "a, 0x40, 0x7, 0x10000, 64k\nb, data, 0x99, , -0x30000, readonly:encrypted\n"
    )
    assert (table["a"].type, table["a"].subtype, table["a"].size) == (0x40, 7, 0x10000)
    assert (table["b"].offset, table["b"].size) == (0x20000, 0x10000)
    assert table["b"].readonly
    assert table["b"].encrypted


def test_variables_come_from_the_given_environment() -> None:
    table = PartitionTable.from_csv("nvs,data,nvs,,$NVS_SIZE\n", env={"NVS_SIZE": "0x4000"})
    assert table["nvs"].size == 0x4000
    with pytest.raises(PartitionTableError, match=r"line 1: unknown variable '\$NVS_SIZE'"):
        PartitionTable.from_csv("nvs,data,nvs,,$NVS_SIZE\n")


BAD_TABLES = [
    (
        "overlap",
        "nvs,data,nvs,0x9000,0x6000\nphy,data,phy,0xa000,0x1000\n",
        r"line 2: partitions overlap",
    ),
    ("below table", "nvs,data,nvs,0x8000,0x6000\n", r"line 1: partitions overlap.*table"),
    (
        "misaligned app",
        "# c\nnvs,data,nvs,,0x6000\nf,app,factory,0x11000,1M\n",
        r"line 3: .*not aligned to 0x10000",
    ),
    ("app size", "f,app,factory,0x10000,0x1800\n", r"line 1: .*not a multiple of 0x1000"),
    (
        "duplicate name",
        "nvs,data,nvs,,0x6000\n\nnvs,data,phy,,0x1000\n",
        r"line 3: partition name 'nvs' is already used at line 1",
    ),
    (
        "second otadata",
        "o1,data,ota,,0x2000\no2,data,ota,,0x2000\n",
        r"line 2: a second otadata partition",
    ),
    ("otadata size", "o1,data,ota,,0x3000\n", r"line 1: otadata partition must have size 0x2000"),
    (
        "bad size suffix",
        "nvs,data,nvs,,0x6000\nf,app,factory,,1G\n",
        r"line 2: invalid number '1G'",
    ),
    ("empty size", "nvs,data,nvs,,\n", r"line 1: size field can't be empty"),
    ("empty type", "nvs,,nvs,,0x6000\n", r"line 1: field 'type' can't be left empty"),
    ("unknown type", "nvs,dat,nvs,,0x6000\n", r"line 1: value 'dat' is not valid; known keywords"),
    ("unknown subtype", "nvs,data,nvz,,0x6000\n", r"line 1: value 'nvz' is not valid"),
    ("app without subtype", "f,app,,,1M\n", r"line 1: app partition cannot have an empty subtype"),
    ("unknown flag", "nvs,data,nvs,,0x6000,secret\n", r"line 1: unknown flag 'secret'"),
    ("small rw nvs", "nvs,data,nvs,,0x2000\n", r"line 1: .*must be flagged readonly"),
    ("readonly otadata", "o,data,ota,,0x2000,readonly\n", r"line 1: .*cannot be flagged readonly"),
    ("type out of range", "x,0x1ff,0,,0x1000\n", r"line 1: type 0x1ff"),
    ("zero size", "x,data,nvs,,0\n", r"line 1: .*size must be positive"),
]


@pytest.mark.parametrize(
    ("csv", "message"), [(c, m) for _n, c, m in BAD_TABLES], ids=[n for n, _c, _m in BAD_TABLES]
)
def test_malformed_tables_name_the_line(csv: str, message: str) -> None:
    with pytest.raises(PartitionTableError, match=message):
        PartitionTable.from_csv(csv)


def test_flash_size_check() -> None:
    with pytest.raises(PartitionTableError, match="beyond the flash size"):
        PartitionTable.from_csv(OUTLET_PARTITIONS_CSV, flash_size=2 * 1024 * 1024)


def test_too_many_partitions() -> None:
    csv = "".join(f"p{i},data,fat,,0x1000\n" for i in range(95))
    with pytest.raises(PartitionTableError, match="too many"):
        PartitionTable.from_csv(csv).to_binary()
    assert len(PartitionTable.from_csv(csv[: csv.index("p94")]).to_binary()) == MAX_TABLE_LENGTH


def test_long_label_is_cut_with_a_warning() -> None:
    table = PartitionTable.from_csv("a_very_long_label_name,data,nvs,,0x6000\n")
    assert table.partitions[0].name == "a_very_long_labe"
    assert "longer than 16 bytes" in table.warnings[0]


def test_label_that_names_another_subtype_warns() -> None:
    assert "another subtype" in PartitionTable.from_csv("nvs,data,fat,,0x6000\n").warnings[0]
    assert PartitionTable.from_csv("nvs,data,nvs,,0x6000\n").warnings == ()


def _good_binary() -> bytes:
    return PartitionTable.from_csv(OUTLET_PARTITIONS_CSV).to_binary()


def test_binary_md5_mismatch_is_refused() -> None:
    raw = bytearray(_good_binary())
    raw[12] ^= 0x01  # flip a bit in the first label
    with pytest.raises(PartitionTableError, match="MD5 mismatch"):
        PartitionTable.from_binary(bytes(raw))
    assert PartitionTable.from_binary(bytes(raw), md5=False).partitions[0].name == "ovs"


def test_binary_errors_are_typed() -> None:
    with pytest.raises(PartitionTableError, match="bad magic"):
        PartitionTable.from_binary(b"\x00" * 32 + b"\xff" * 32)
    with pytest.raises(PartitionTableError, match="no end marker"):
        PartitionTable.from_binary(_good_binary()[:0x40])
    with pytest.raises(PartitionTableError, match="no MD5 record"):
        PartitionTable.from_binary(
            PartitionTable.from_csv(OUTLET_PARTITIONS_CSV).to_binary(md5=False)
        )


partitions_strategy = st.lists(
    st.tuples(
        st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=16),
        st.sampled_from([(1, 2), (1, 1), (1, 0x81), (0, 0x10), (0, 0x11), (0x40, 0x05)]),
        st.integers(1, 64),
        st.booleans(),
    ),
    min_size=1,
    max_size=20,
    unique_by=lambda t: t[0],
)


def _table_from(spec: list[tuple[str, tuple[int, int], int, bool]]) -> PartitionTable:
    rows = []
    for name, (ptype, subtype), pages, encrypted in spec:
        unit = 0x10000 if ptype == 0 else 0x3000
        rows.append(
            f"{name},{ptype},{subtype},,{pages * unit:#x},{'encrypted' if encrypted else ''}"
        )
    # Only one data/ota; the sampled subtypes contain none.
    return PartitionTable.from_csv("\n".join(rows))


@given(partitions_strategy)
def test_binary_round_trip(spec: list[tuple[str, tuple[int, int], int, bool]]) -> None:
    table = _table_from(spec)
    assert PartitionTable.from_binary(table.to_binary()) == table


@given(partitions_strategy)
def test_csv_round_trip(spec: list[tuple[str, tuple[int, int], int, bool]]) -> None:
    table = _table_from(spec)
    assert PartitionTable.from_csv(table.to_csv()) == table


@given(st.binary(max_size=MAX_TABLE_LENGTH))
def test_random_binary_raises_only_typed_errors(raw: bytes) -> None:
    with contextlib.suppress(PartitionTableError):
        PartitionTable.from_binary(raw)


@given(st.text(max_size=300))
def test_random_csv_raises_only_typed_errors(text: str) -> None:
    with contextlib.suppress(PartitionTableError):
        PartitionTable.from_csv(text)


@given(st.data())
def test_corrupting_a_valid_binary_is_detected(data: st.DataObject) -> None:
    raw = bytearray(_good_binary())
    used = 7 * 32  # six records and the MD5 record
    pos = data.draw(st.integers(0, used * 8 - 1))
    raw[pos // 8] ^= 1 << (pos % 8)
    with pytest.raises(PartitionTableError):
        PartitionTable.from_binary(bytes(raw))
