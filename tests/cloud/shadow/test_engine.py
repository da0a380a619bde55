"""The shadow engine against the AWS IoT Developer Guide's rules and examples."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jumpstart.cloud.shadow.engine import (
    VERSION_MEMORY_S,
    DeltaRule,
    EmptySection,
    ShadowError,
    ShadowSettings,
    StoredShadow,
    UpdateResult,
    VersionOnCreate,
    compute_delta,
    delete_shadow,
    get_shadow,
    update_shadow,
)

T0 = 1_700_000_000


def _update(
    stored: StoredShadow | None, request: Any, now: int = T0, **settings: Any
) -> UpdateResult:
    return update_shadow(stored, json.dumps(request).encode(), now, ShadowSettings(**settings))


def _chain(*requests: Any, **settings: Any) -> StoredShadow:
    shadow = None
    for index, request in enumerate(requests):
        shadow = _update(shadow, request, T0 + index, **settings).shadow
    assert shadow is not None
    return shadow


def test_first_update_creates_version_1_and_get_shows_delta() -> None:
    result = _update(None, {"state": {"desired": {"color": "red"}}, "clientToken": "t1"})
    assert result.accepted == {
        "state": {"desired": {"color": "red"}},
        "metadata": {"desired": {"color": {"timestamp": T0}}},
        "version": 1,
        "timestamp": T0,
        "clientToken": "t1",
    }
    assert result.delta == {
        "version": 1,
        "timestamp": T0,
        "state": {"color": "red"},
        "metadata": {"color": {"timestamp": T0}},
        "clientToken": "t1",
    }
    assert "previous" not in result.documents
    assert result.documents["current"]["version"] == 1
    got = get_shadow(result.shadow, "outlet", T0 + 5, "g")
    assert got["state"] == {"desired": {"color": "red"}, "delta": {"color": "red"}}
    assert got["metadata"] == {"desired": {"color": {"timestamp": T0}}}
    assert (got["version"], got["timestamp"], got["clientToken"]) == (1, T0 + 5, "g")


def test_get_of_missing_shadow_is_404_with_token() -> None:
    with pytest.raises(ShadowError) as caught:
        get_shadow(None, "outlet", T0, "tok")
    assert caught.value.document(T0) == {
        "code": 404,
        "message": "No shadow exists with name: 'outlet'",
        "timestamp": T0,
        "clientToken": "tok",
    }


def test_partial_nested_merge_null_deletes_and_metadata_keeps_leaf_times() -> None:
    shadow = _chain(
        {"state": {"reported": {"lights": {"color": {"r": 255, "g": 0}, "on": True}}}},
        {"state": {"reported": {"lights": {"color": {"g": 255}, "on": None}}}},
    )
    assert shadow.state == {"reported": {"lights": {"color": {"r": 255, "g": 255}}}}
    assert shadow.metadata == {
        "reported": {"lights": {"color": {"r": {"timestamp": T0}, "g": {"timestamp": T0 + 1}}}}
    }
    assert shadow.version == 2


def test_arrays_replace_whole_and_metadata_is_per_element() -> None:
    shadow = _chain(
        {"state": {"desired": {"rgb": [255, 0, 0]}}},
        {"state": {"desired": {"rgb": [0, 0]}}},
    )
    assert shadow.state == {"desired": {"rgb": [0, 0]}}
    assert shadow.metadata["desired"]["rgb"] == [{"timestamp": T0 + 1}, {"timestamp": T0 + 1}]


def test_delta_rules_from_the_guide() -> None:
    desired = {"lights": {"color": {"r": 1, "g": 2}}, "n": 1, "arr": [1, 2], "only": "d"}
    reported = {"lights": {"color": {"r": 1, "g": 3}}, "n": 1.0, "arr": [1, 2], "extra": 5}
    assert compute_delta(desired, reported) == {"lights": {"color": {"g": 2}}, "only": "d"}
    assert compute_delta({"b": True}, {"b": 1}) == {"b": True}
    assert compute_delta({"a": [1, 2]}, {"a": [2, 1]}) == {"a": [1, 2]}
    assert compute_delta({"a": {}}, {}) == {}
    assert compute_delta({"a": {"b": {}}}, None) == {}
    assert compute_delta({"x": 1}, None) == {"x": 1}
    assert compute_delta(None, {"x": 1}) == {}


def test_reported_catching_up_clears_delta() -> None:
    shadow = _chain(
        {"state": {"desired": {"output": True}}},
        {"state": {"reported": {"output": True}}},
    )
    assert "delta" not in get_shadow(shadow, "o", T0)["state"]


def test_null_section_and_null_state() -> None:
    shadow = _chain(
        {"state": {"desired": {"a": 1}, "reported": {"a": 2}}},
        {"state": {"desired": None}},
    )
    assert shadow.state == {"reported": {"a": 2}}
    cleared = _update(shadow, {"state": None})
    assert cleared.shadow.state == {}
    assert cleared.shadow.version == 3
    assert cleared.accepted["state"] is None
    assert get_shadow(cleared.shadow, "o", T0)["state"] == {}


def test_section_emptied_by_nulls_disappears_nested_empty_object_stays() -> None:
    shadow = _chain(
        {"state": {"desired": {"a": {"b": 1}, "c": 2}}},
        {"state": {"desired": {"a": {"b": None}}}},
    )
    assert shadow.state == {"desired": {"a": {}, "c": 2}}
    assert get_shadow(shadow, "o", T0)["state"]["delta"] == {"c": 2}
    shadow = _update(shadow, {"state": {"desired": {"a": None, "c": None}}}).shadow
    assert shadow.state == {}
    assert shadow.metadata == {}


def test_accepted_echoes_request_including_null_leaves() -> None:
    result = _update(
        _chain({"state": {"reported": {"a": 1}}}), {"state": {"reported": {"a": None}}}
    )
    assert result.accepted["state"] == {"reported": {"a": None}}
    assert result.accepted["metadata"] == {"reported": {"a": {"timestamp": T0}}}


def test_type_change_replaces_node_and_metadata() -> None:
    shadow = _chain(
        {"state": {"reported": {"a": {"b": 1}}}},
        {"state": {"reported": {"a": 5}}},
        {"state": {"reported": {"a": {"c": 1}}}},
    )
    assert shadow.state == {"reported": {"a": {"c": 1}}}
    assert shadow.metadata == {"reported": {"a": {"c": {"timestamp": T0 + 2}}}}


def test_optimistic_locking() -> None:
    shadow = _chain({"state": {"reported": {"a": 1}}})
    assert _update(shadow, {"state": {"reported": {"a": 2}}, "version": 1}).shadow.version == 2
    with pytest.raises(ShadowError) as caught:
        _update(shadow, {"state": {"reported": {"a": 2}}, "version": 5, "clientToken": "c"})
    assert (caught.value.code, caught.value.message, caught.value.client_token) == (
        409,
        "Version conflict",
        "c",
    )


@pytest.mark.parametrize(
    ("rule", "version", "outcome"),
    [
        (VersionOnCreate.MATCHES_LATEST, 0, 1),
        (VersionOnCreate.MATCHES_LATEST, 1, 409),
        (VersionOnCreate.MUST_BE_NEXT, 1, 1),
        (VersionOnCreate.MUST_BE_NEXT, 3, 400),
        (VersionOnCreate.IGNORED, 3, 1),
    ],
)
def test_version_on_create_setting(rule: VersionOnCreate, version: int, outcome: int) -> None:
    request = {"state": {"reported": {"a": 1}}, "version": version}
    if outcome >= 400:
        with pytest.raises(ShadowError) as refused:
            _update(None, request, version_on_create=rule)
        assert refused.value.code == outcome
    else:
        assert _update(None, request, version_on_create=rule).shadow.version == outcome


def test_choices_aws_leaves_open() -> None:
    """The README's table of choices: each as the default settings answer it."""
    created = update_shadow(None, b'{"state":{"desired":{"a":1}}}', T0).shadow  # version 1
    # After a delete (reply version 2), an update matching that version is accepted and
    # makes version 3; the next one (3) is a conflict, as is any other.
    deleted, reply = delete_shadow(created, "t", T0 + 1)
    assert reply["version"] == 2
    for wrong in (1, 3):
        with pytest.raises(ShadowError) as conflict:
            update_shadow(deleted, b'{"state":{"desired":{"a":2}},"version":%d}' % wrong, T0 + 2)
        assert conflict.value.code == 409
    again = update_shadow(deleted, b'{"state":{"desired":{"a":2}},"version":2}', T0 + 2)
    assert again.shadow.version == 3
    # "version": null is no version: no check.
    nulled = update_shadow(again.shadow, b'{"state":{"desired":{"a":3}},"version":null}', T0 + 3)
    assert nulled.shadow.version == 4
    # {"state": null} clears the shadow; its answer's metadata is {"timestamp": t}, as AWS's.
    cleared = update_shadow(nulled.shadow, b'{"state":null}', T0 + 4)
    assert cleared.accepted == {
        "state": None,
        "metadata": {"timestamp": T0 + 4},
        "version": 5,
        "timestamp": T0 + 4,
    }


@pytest.mark.parametrize(
    ("rule", "published"), [(DeltaRule.DESIRED_TOUCHED, False), (DeltaRule.ANY_UPDATE, True)]
)
def test_delta_rule_setting(rule: DeltaRule, published: bool) -> None:
    shadow = _chain({"state": {"desired": {"a": 1}}})
    result = _update(shadow, {"state": {"reported": {"b": 2}}}, delta_rule=rule)
    assert (result.delta is not None) is published
    # desired changes always publish the remaining delta
    assert _update(shadow, {"state": {"desired": {"c": 3}}}, delta_rule=rule).delta is not None


@pytest.mark.parametrize(
    ("rule", "after"), [(EmptySection.NO_OP, {"a": 1}), (EmptySection.CLEARS, None)]
)
def test_empty_section_setting(rule: EmptySection, after: Any) -> None:
    shadow = _chain({"state": {"desired": {"a": 1}}})
    result = _update(shadow, {"state": {"desired": {}}}, empty_section=rule)
    assert result.shadow.state.get("desired") == after
    assert result.shadow.version == 2


def test_delete_keeps_version_sequence_and_forgets_after_48_hours() -> None:
    shadow = _chain({"state": {"reported": {"a": 1}}})
    deleted, accepted = delete_shadow(shadow, "o", T0 + 10, "d")
    assert accepted == {"version": 2, "timestamp": T0 + 10, "clientToken": "d"}
    with pytest.raises(ShadowError) as caught:
        get_shadow(deleted, "o", T0)
    assert caught.value.code == 404
    with pytest.raises(ShadowError):
        delete_shadow(deleted, "o", T0)
    assert _update(deleted, {"state": {"reported": {"a": 1}}}, T0 + 20).shadow.version == 3
    late = T0 + 10 + VERSION_MEMORY_S + 1
    assert _update(deleted, {"state": {"reported": {"a": 1}}}, late).shadow.version == 1


# (raw request, code, message): spec section 2.7.
BAD_REQUESTS = [
    (b"{not json", 400, "Invalid JSON"),
    (b"[1,2]", 400, "Invalid JSON"),
    (b'{"state": {"desired": NaN}}', 400, "Invalid JSON"),
    (b"\xff\xfe", 415, "Unsupported documented encoding; supported encoding is UTF-8"),
    (b'{"desired": {}}', 400, "Missing required node: state"),
    (b'{"state": 5}', 400, "State node must be an object"),
    (b'{"state": {"delta": {"a": 1}}}', 400, "State contains an invalid node: 'delta'"),
    (b'{"state": {"desired": 5}}', 400, "Desired node must be an object"),
    (b'{"state": {"reported": [1]}}', 400, "Reported node must be an object"),
    (b'{"state": {"reported": {"a": [1, null]}}}', 400, "Invalid JSON: arrays cannot contain null"),
    (b'{"state": {}, "version": -1}', 400, "Invalid version"),
    (b'{"state": {}, "version": "1"}', 400, "Invalid version"),
    (b'{"state": {}, "version": true}', 400, "Invalid version"),
    (b'{"state": {}, "clientToken": 7}', 400, "Invalid clientToken"),
    (b'{"state": {}, "clientToken": "' + b"x" * 65 + b'"}', 400, "Invalid clientToken"),
    (
        json.dumps(
            {"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}}
        ).encode(),
        400,
        "JSON contains too many levels of nesting; maximum is 6",
    ),
    (
        json.dumps({"state": {"desired": {"a": "x" * 8200}}}).encode(),
        413,
        "The payload exceeds the maximum size allowed",
    ),
    (
        b'{"state": {"desired": {"a": "' + b"x" * 20000 + b'"}}}',
        413,
        "The payload exceeds the maximum size allowed",
    ),
]


@pytest.mark.parametrize(("raw", "code", "message"), BAD_REQUESTS)
def test_bad_requests_are_rejected_with_documented_errors(
    raw: bytes, code: int, message: str
) -> None:
    stored = _chain({"state": {"reported": {"keep": 1}}})
    with pytest.raises(ShadowError) as caught:
        update_shadow(stored, raw, T0)
    assert (caught.value.code, caught.value.message) == (code, message)


def test_depth_limit_allows_six_levels() -> None:
    # desired is level 1, so the object holding "f" is level 6
    ok = {"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}}
    assert _update(None, ok).shadow.version == 1
    # empty containers do not count
    empty = {"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": {}}}}}}}}}
    assert _update(None, empty).shadow.version == 1


def test_size_limit_counts_the_merged_document() -> None:
    shadow = _chain({"state": {"desired": {"a": "x" * 4000}}})
    shadow = _update(shadow, {"state": {"reported": {"a": "x" * 4000}}}).shadow
    with pytest.raises(ShadowError) as caught:
        _update(shadow, {"state": {"reported": {"b": "x" * 200}}})
    assert caught.value.code == 413


def test_stored_shadow_json_round_trip() -> None:
    shadow = _chain({"state": {"desired": {"a": [1, {"b": 2}]}}})
    assert StoredShadow.from_json(shadow.to_json()) == shadow
