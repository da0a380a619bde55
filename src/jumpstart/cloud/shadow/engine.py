"""The Device Shadow document engine: pure functions of (request, stored shadow, now).

Semantics follow the AWS IoT Developer Guide (spec/cloud.md section 2):

* An update merges ``state.desired`` / ``state.reported`` into the stored sections: objects
  merge recursively, arrays and scalars replace, a ``null`` leaf deletes its key, a ``null``
  section deletes the section, ``"state": null`` clears both. A section left empty disappears;
  an emptied nested object stays as ``{}`` and counts as absent for the delta.
* Every accepted update or delete adds 1 to ``version``. A request carrying ``version`` that
  differs from the stored one is rejected 409. A deleted shadow keeps its version, so a shadow
  re-created within 48 hours continues the sequence; after that it starts again.
* The delta walks ``desired``: keys whose reported value is missing or different, nested
  objects with their path to the root, arrays as whole values, numbers compared by value
  (``1 == 1.0``, but ``true`` is not ``1``).
* Metadata mirrors the sections with ``{"timestamp": t}`` per leaf (arrays: one per element),
  keeping each leaf's time of last write. Timestamps are integer epoch seconds.
* ``clientToken`` (at most 64 bytes) is echoed in every answer to its request.

The choices AWS leaves undocumented are ``ShadowSettings`` fields, each with a test.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from jumpstart.cloud import json_input
from jumpstart.errors import InputError

__all__ = [
    "DeltaRule",
    "EmptySection",
    "ShadowError",
    "ShadowSettings",
    "StoredShadow",
    "UpdateResult",
    "VersionOnCreate",
    "compute_delta",
    "delete_shadow",
    "get_shadow",
    "parse_token_request",
    "update_shadow",
]

Json = Any  # a decoded JSON value
SECTIONS = ("desired", "reported")
# Doc "Deleting a shadow": a shadow re-created within 48 hours keeps the version sequence.
VERSION_MEMORY_S = 48 * 3600


class DeltaRule(Enum):
    """When ``/update/delta`` is published (undocumented; spec section 2.5)."""

    DESIRED_TOUCHED = "desired-touched"  # the update touched desired and a delta remains
    ANY_UPDATE = "any-update"  # every update that leaves a delta (the Greengrass behaviour)


class EmptySection(Enum):
    """What ``"desired": {}`` does (undocumented; spec section 2.4 rule 8)."""

    NO_OP = "no-op"  # merging nothing changes nothing (moto)
    CLEARS = "clears"  # treated as missing, clears the section (Greengrass)


class VersionOnCreate(Enum):
    """What a ``version`` in the request that creates a shadow means (spec section 2.6): one
    that never existed, or one deleted (whose version is remembered for 48 hours)."""

    # The developer guide: an update is processed "only if the specified version matches the
    # latest version it has": 0 for a shadow that never existed, the delete's version for a
    # deleted one (a delete adds 1; the re-created shadow's version "will follow"). Else 409.
    MATCHES_LATEST = "matches-latest"
    MUST_BE_NEXT = "must-be-next"  # 400 "Invalid version" unless it is the version to be made
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class ShadowSettings:
    # Quotas from spec section 2.8.
    max_document_bytes: int = 8192  # desired + reported, compact JSON
    max_depth: int = 6  # "JSON contains too many levels of nesting; maximum is 6"
    max_client_token_bytes: int = 64
    delta_rule: DeltaRule = DeltaRule.DESIRED_TOUCHED
    empty_section: EmptySection = EmptySection.NO_OP
    version_on_create: VersionOnCreate = VersionOnCreate.MATCHES_LATEST


class ShadowError(InputError):
    """A request the service answers on ``*/rejected`` (MQTT) or with an HTTP error (REST)."""

    def __init__(self, code: int, message: str, client_token: str | None = None) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.client_token = client_token

    def document(self, now: int) -> dict[str, Json]:
        """The error document of spec section 2.7."""
        doc: dict[str, Json] = {"code": self.code, "message": self.message, "timestamp": now}
        if self.client_token is not None:
            doc["clientToken"] = self.client_token
        return doc


@dataclass(frozen=True, slots=True)
class StoredShadow:
    """What the store keeps of one shadow. ``exists`` is false after a delete (the version
    stays, spec section 2.1)."""

    state: Mapping[str, Json] = field(default_factory=dict)
    metadata: Mapping[str, Json] = field(default_factory=dict)
    version: int = 0
    timestamp: int = 0
    exists: bool = True

    def to_json(self) -> str:
        return json.dumps(
            {
                "state": self.state,
                "metadata": self.metadata,
                "version": self.version,
                "timestamp": self.timestamp,
                "exists": self.exists,
            },
            separators=(",", ":"),
            allow_nan=False,
        )

    @classmethod
    def from_json(cls, text: str) -> StoredShadow:
        raw = json.loads(text)
        return cls(raw["state"], raw["metadata"], raw["version"], raw["timestamp"], raw["exists"])

    def snapshot(self) -> dict[str, Json]:
        """``{state, metadata, version}`` as in ``/update/documents``."""
        return {"state": dict(self.state), "metadata": dict(self.metadata), "version": self.version}


@dataclass(frozen=True, slots=True)
class UpdateResult:
    shadow: StoredShadow
    accepted: dict[str, Json]
    delta: dict[str, Json] | None
    documents: dict[str, Json]


# --- requests -----------------------------------------------------------------------------


def _parse_request(payload: bytes, settings: ShadowSettings) -> dict[str, Json]:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ShadowError(
            415, "Unsupported documented encoding; supported encoding is UTF-8"
        ) from None
    if not text.strip():
        return {}
    try:
        request = json_input.parse(payload)
    except json_input.JsonInputError:
        raise ShadowError(400, "Invalid JSON") from None
    if not isinstance(request, dict):
        raise ShadowError(400, "Invalid JSON")
    return request


def _client_token(request: Mapping[str, Json], settings: ShadowSettings) -> str | None:
    token = request.get("clientToken")
    if token is None:
        return None
    if not isinstance(token, str) or len(token.encode()) > settings.max_client_token_bytes:
        raise ShadowError(400, "Invalid clientToken")
    return token


def _with_token(doc: dict[str, Json], token: str | None) -> dict[str, Json]:
    if token is not None:
        doc["clientToken"] = token
    return doc


def parse_token_request(payload: bytes, settings: ShadowSettings) -> str | None:
    """The clientToken of a ``/get`` or ``/delete`` request (their body is otherwise ignored)."""
    try:
        return _client_token(_parse_request(payload, settings), settings)
    except ShadowError:
        return None  # AWS ignores the body of get and delete


# --- get and delete -----------------------------------------------------------------------


def get_shadow(
    stored: StoredShadow | None, name: str, now: int, client_token: str | None = None
) -> dict[str, Json]:
    """The ``/get/accepted`` document, or ShadowError 404."""
    if stored is None or not stored.exists:
        raise ShadowError(404, f"No shadow exists with name: '{name}'", client_token)
    state: dict[str, Json] = {k: stored.state[k] for k in SECTIONS if k in stored.state}
    delta = compute_delta(stored.state.get("desired"), stored.state.get("reported"))
    if delta:
        state["delta"] = delta
    doc = {"state": state, "metadata": dict(stored.metadata), "version": stored.version}
    doc["timestamp"] = now
    return _with_token(doc, client_token)


def delete_shadow(
    stored: StoredShadow | None, name: str, now: int, client_token: str | None = None
) -> tuple[StoredShadow, dict[str, Json]]:
    """(the deleted shadow to store, ``/delete/accepted``), or ShadowError 404.

    AWS adds 1 to the version on delete and remembers it (spec section 2.1)."""
    if stored is None or not stored.exists:
        raise ShadowError(404, f"No shadow exists with name: '{name}'", client_token)
    version = stored.version + 1
    deleted = StoredShadow({}, {}, version, now, exists=False)
    return deleted, _with_token({"version": version, "timestamp": now}, client_token)


# --- update -------------------------------------------------------------------------------


def update_shadow(
    stored: StoredShadow | None,
    payload: bytes,
    now: int,
    settings: ShadowSettings | None = None,
) -> UpdateResult:
    """Apply one ``/update`` request; ShadowError carries the 4xx to answer with."""
    settings = settings or ShadowSettings()
    if len(payload) > max(settings.max_document_bytes, 0) * 2:
        # Requests beyond twice the document quota cannot yield a valid document; refuse before
        # parsing so an oversized body costs nothing.
        raise ShadowError(413, "The payload exceeds the maximum size allowed")
    request = _parse_request(payload, settings)
    token = _client_token(request, settings)
    try:
        return _update(stored, request, token, now, settings)
    except ShadowError as err:
        err.client_token = token
        raise


def _update(
    stored: StoredShadow | None,
    request: dict[str, Json],
    token: str | None,
    now: int,
    settings: ShadowSettings,
) -> UpdateResult:
    if stored is not None and not stored.exists and now - stored.timestamp > VERSION_MEMORY_S:
        stored = None  # the remembered version has expired
    state = _validate(stored, request, settings)
    before = stored if stored is not None and stored.exists else None
    new_state, new_meta = _apply(before, state, now, settings)
    size = sum(len(_compact(new_state[s])) for s in SECTIONS if s in new_state)
    if size > settings.max_document_bytes:
        raise ShadowError(413, "The payload exceeds the maximum size allowed")

    version = (stored.version if stored is not None else 0) + 1
    shadow = StoredShadow(new_state, new_meta, version, now, exists=True)
    # {"state": null}: AWS answers metadata {"timestamp": t} (observed reply, moto #9237).
    accepted: dict[str, Json] = {"state": state, "metadata": {"timestamp": now}}
    if state is not None:
        accepted["metadata"] = {s: _request_metadata(state[s], now) for s in SECTIONS if s in state}
    accepted.update(version=version, timestamp=now)
    _with_token(accepted, token)

    delta_doc = None
    delta = compute_delta(new_state.get("desired"), new_state.get("reported"))
    touched_desired = state is None or "desired" in state
    if delta and (touched_desired or settings.delta_rule is DeltaRule.ANY_UPDATE):
        delta_doc = {
            "version": version,
            "timestamp": now,
            "state": delta,
            "metadata": _project(new_meta.get("desired", {}), delta),
        }
        _with_token(delta_doc, token)
    documents: dict[str, Json] = {}
    if before is not None:
        documents["previous"] = before.snapshot()
    documents.update(current=shadow.snapshot(), timestamp=now)
    _with_token(documents, token)
    return UpdateResult(shadow, accepted, delta_doc, documents)


def _validate(
    stored: StoredShadow | None, request: dict[str, Json], settings: ShadowSettings
) -> dict[str, Json] | None:
    """The request's ``state`` once every rule of spec section 2.6/2.7 holds."""
    version = request.get("version")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 0
    ):
        raise ShadowError(400, "Invalid version")
    if "state" not in request:
        raise ShadowError(400, "Missing required node: state")
    state = request["state"]
    if state is not None and not isinstance(state, dict):
        raise ShadowError(400, "State node must be an object")
    for key in state or {}:
        if key not in SECTIONS:
            raise ShadowError(400, f"State contains an invalid node: '{key}'")
    for section in SECTIONS:
        value = (state or {}).get(section)
        if value is not None and not isinstance(value, dict):
            raise ShadowError(400, f"{section.capitalize()} node must be an object")
        if value is not None:
            _check_tree(value, settings.max_depth)
    # "version": null is no version (as AWS's Greengrass shadow manager reads it).
    if version is not None:
        current = stored.version if stored is not None else 0
        creating = stored is None or not stored.exists
        rule = settings.version_on_create if creating else VersionOnCreate.MATCHES_LATEST
        if rule is VersionOnCreate.MUST_BE_NEXT and version != current + 1:
            raise ShadowError(400, "Invalid version")
        if rule is VersionOnCreate.MATCHES_LATEST and version != current:
            raise ShadowError(409, "Version conflict")
    return state


def _apply(
    before: StoredShadow | None, state: dict[str, Json] | None, now: int, settings: ShadowSettings
) -> tuple[dict[str, Json], dict[str, Json]]:
    """The merged (state, metadata) sections."""
    if state is None:
        return {}, {}
    new_state: dict[str, Json] = dict(before.state) if before else {}
    new_meta: dict[str, Json] = dict(before.metadata) if before else {}
    for section in SECTIONS:
        if section not in state:
            continue
        patch = state[section]
        if patch is None or (not patch and settings.empty_section is EmptySection.CLEARS):
            new_state.pop(section, None)
            new_meta.pop(section, None)
            continue
        merged = _merge(new_state.get(section, {}), patch)
        meta = _merge_metadata(new_meta.get(section, {}), new_state.get(section), patch, now)
        if merged:
            new_state[section], new_meta[section] = merged, meta
        else:
            new_state.pop(section, None)
            new_meta.pop(section, None)
    return new_state, new_meta


def _compact(value: Json) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _check_tree(section: dict[str, Json], max_depth: int) -> None:
    """Depth as Greengrass counts it: the section object is level 1, only non-empty
    containers count; arrays hold no null (doc "Array values")."""

    def walk(value: Json, depth: int) -> None:
        if isinstance(value, dict | list) and value:
            if depth > max_depth:
                raise ShadowError(
                    400, f"JSON contains too many levels of nesting; maximum is {max_depth}"
                )
            children = value.values() if isinstance(value, dict) else value
            for child in children:
                if isinstance(value, list) and child is None:
                    raise ShadowError(400, "Invalid JSON: arrays cannot contain null")
                walk(child, depth + 1)

    walk(section, 1)


def _merge(base: Json, patch: Mapping[str, Json]) -> dict[str, Json]:
    out = dict(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            out[key] = _merge(out.get(key), value)
        else:
            out[key] = value
    return out


def _leaf_metadata(value: Json, now: int) -> Json:
    if isinstance(value, dict):
        return {k: _leaf_metadata(v, now) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_leaf_metadata(v, now) for v in value]
    return {"timestamp": now}


def _merge_metadata(meta: Json, old: Json, patch: Mapping[str, Json], now: int) -> dict[str, Json]:
    out = dict(meta) if isinstance(meta, dict) and isinstance(old, dict) else {}
    old_tree = old if isinstance(old, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            out[key] = _merge_metadata(out.get(key), old_tree.get(key), value, now)
        else:
            out[key] = _leaf_metadata(value, now)
    return out


def _request_metadata(value: Json, now: int) -> Json:
    """The accepted message's metadata: every leaf sent, ``null`` leaves included."""
    if isinstance(value, dict):
        return {k: _request_metadata(v, now) for k, v in value.items()}
    if isinstance(value, list):
        return [_request_metadata(v, now) for v in value]
    return {"timestamp": now}


def _project(meta: Json, delta: Json) -> Json:
    """The metadata of exactly the leaves of ``delta``."""
    if isinstance(delta, dict) and isinstance(meta, dict):
        return {k: _project(meta.get(k), v) for k, v in delta.items()}
    return meta


def _same(a: Json, b: Json) -> bool:
    """JSON equality: numbers by value, booleans apart from numbers, arrays by position."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _without_empty(value: Json) -> Json:
    if isinstance(value, dict):
        pruned = {k: _without_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v != {}}
    return value


def compute_delta(desired: Json, reported: Json) -> dict[str, Json]:
    """Desired keys whose reported value is missing or different (spec section 2.5)."""
    if not isinstance(desired, dict):
        return {}
    reported_tree = reported if isinstance(reported, dict) else {}
    out: dict[str, Json] = {}
    for key, wanted in desired.items():
        have = reported_tree.get(key)
        if isinstance(wanted, dict):
            sub = compute_delta(wanted, have) if isinstance(have, dict) else _without_empty(wanted)
            if sub:
                out[key] = sub
        elif not _same(wanted, have):
            out[key] = wanted
    return out
