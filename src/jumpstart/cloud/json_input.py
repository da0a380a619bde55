"""Every JSON document the cloud accepts goes through here (shadow and jobs requests over MQTT
and REST, job documents), and every one it sends is encoded by ``encode``.

What strict parsers (cJSON on the device, JavaScript, Go) cannot read never gets in, so it can
never come out: no ``NaN``/``Infinity``, no number beyond double range (``1e400`` would be
stored and sent back as the bare token ``Infinity``), no lone UTF-16 surrogate (``"\\ud800"``
decodes to a Python string no UTF-8 encoder accepts). Nesting is bounded before the parser
runs, so ``[`` x 5000 is refused in linear time instead of exhausting the recursion limit.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "JsonInputError", "encode", "parse"]

# Far above any document the services accept (shadow state: 6 levels, AWS's error message
# "JSON contains too many levels of nesting; maximum is 6"), far below Python's recursion
# limit. The services check their own, smaller limits on the parsed value.
MAX_JSON_DEPTH = 64
# Strings (skipped whole) and the brackets outside them: all the depth scan needs to see.
_STRUCTURE = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")


class JsonInputError(ValueError):
    """The input is not a JSON document the cloud accepts; the message says why."""


def _depth_exceeds(data: bytes, limit: int) -> bool:
    depth = 0
    for match in _STRUCTURE.finditer(data):
        token = match.group()
        if len(token) != 1:
            continue  # a string
        if token[0] in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JsonInputError(f"number {text[:40]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    value = int(text)
    if abs(value) > _MAX_DOUBLE:
        raise JsonInputError(f"number {text[:40]} is out of range")
    return value


_MAX_DOUBLE = int(sys.float_info.max)  # the largest finite double, as an integer


def _constant(name: str) -> Any:
    raise JsonInputError(f"{name} is not JSON")


def _check_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonInputError("a string holds a lone UTF-16 surrogate") from None


def _check_strings(value: Any) -> None:
    # The depth is bounded already, so the recursion is too.
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def parse(data: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The parsed document, or JsonInputError saying what is wrong with it."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _depth_exceeds(raw, max_depth):
        raise JsonInputError(f"JSON nested deeper than {max_depth} levels")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonInputError("the document is not UTF-8") from None
    try:
        value = json.loads(
            text,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            parse_constant=_constant,
        )
    except JsonInputError:
        raise
    except (ValueError, RecursionError) as err:
        raise JsonInputError(f"invalid JSON: {err}") from None
    _check_strings(value)
    return value


def encode(value: Any, *, compact: bool = True) -> bytes:
    """Strict JSON (``allow_nan=False``): a non-JSON token can never be sent."""
    separators = (",", ":") if compact else None
    return json.dumps(value, separators=separators, allow_nan=False).encode()
