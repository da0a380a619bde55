"""The one JSON entry point: what strict parsers can read gets in, nothing else does."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jumpstart.cloud import json_input
from jumpstart.cloud.json_input import JsonInputError

REFUSED = {
    "1e400": "out of range",
    "-1e400": "out of range",
    "[1" + "0" * 400 + "]": "out of range",
    "NaN": "not JSON",
    "[-Infinity]": "not JSON",
    '{"a":"\\ud800"}': "surrogate",
    '{"\\udfff":1}': "surrogate",
    '["\\ud83d"]': "surrogate",
    "[" * 5000: "deeper than 64",
    '{"a":' * 100 + "1" + "}" * 100: "deeper than 64",
    "{": "invalid JSON",
    "": "invalid JSON",
}


@pytest.mark.parametrize("text", sorted(REFUSED))
def test_refused_documents_say_why(text: str) -> None:
    with pytest.raises(JsonInputError, match=REFUSED[text]):
        json_input.parse(text.encode())


def test_non_utf8_is_refused() -> None:
    with pytest.raises(JsonInputError, match="not UTF-8"):
        json_input.parse(b'{"a":"\xff"}')


def test_accepted_edge_cases() -> None:
    assert json_input.parse(b'["\\ud83d\\ude00"]') == ["\U0001f600"]  # a valid pair
    assert json_input.parse(b'"[[[[{{"') == "[[[[{{"  # brackets in strings do not nest
    assert json_input.parse(b'"\\"[["') == '"[['
    assert json_input.parse(b"1.7976931348623157e308") == 1.7976931348623157e308
    assert json_input.parse(b"[" * 64 + b"]" * 64) is not None
    with pytest.raises(JsonInputError):
        json_input.parse(b"[" * 65 + b"]" * 65)


def test_encode_refuses_non_json_numbers() -> None:
    assert json_input.encode({"a": [1, 2.5]}) == b'{"a":[1,2.5]}'
    with pytest.raises(ValueError, match="JSON compliant"):
        json_input.encode({"a": float("inf")})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_strict_json_round_trips(value: object) -> None:
    assert json_input.parse(json.dumps(value).encode()) == value


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_refused_cleanly(data: bytes) -> None:
    with contextlib.suppress(JsonInputError):  # any other exception fails the test
        json_input.parse(data)
