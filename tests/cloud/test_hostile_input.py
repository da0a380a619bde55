"""Hostile documents and broken HTTP get an answer: 400/413 with AWS's error body over REST,
``/rejected`` over MQTT, and the connection (and the cloud) keeps serving."""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import re
import socket
from typing import Any

import pytest

from tests.cloud.conftest import RunningCloud
from tests.cloud.fuzz_inputs import FUZZ_SCALE
from tests.cloud.mqtt_helpers import PahoDevice, tls_context

pytestmark = pytest.mark.interop

SURROGATE = "\\ud800"  # the six characters of a JSON escape for a lone surrogate
HOSTILE_SHADOW_BODIES = {
    "surrogate-value": '{"state":{"reported":{"name":"' + SURROGATE + '"}}}',
    "surrogate-key": '{"state":{"reported":{"' + SURROGATE + '":1}}}',
    "surrogate-token": '{"state":{"reported":{"x":1}},"clientToken":"' + SURROGATE + '"}',
    "surrogate-desired": '{"state":{"desired":{"a":["' + SURROGATE + '"]}}}',
    "huge-number": '{"state":{"reported":{"x":1e400}}}',
    "huge-negative": '{"state":{"reported":{"x":-1e400}}}',
    "huge-integer": '{"state":{"reported":{"x":1' + "0" * 400 + "}}}",
    "nan": '{"state":{"reported":{"x":NaN}}}',
    "deep-array": "[" * 5000,
    # 1,500 levels: deep enough, and under the shadow's 8 KB document limit (else 413).
    "deep-object": '{"state":' + '{"":' * 1500 + "1" + "}" * 1501,
}


def _strict(payload: bytes) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(payload, parse_constant=refuse)


def _https(cloud: RunningCloud, method: str, path: str, body: bytes) -> tuple[int, Any, dict]:
    conn = http.client.HTTPSConnection(
        "localhost", cloud.rest_port, context=tls_context(cloud, cloud.creds["admin"]), timeout=10
    )
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        data = response.read()
        return response.status, _strict(data), dict(response.getheaders())
    finally:
        conn.close()


@pytest.mark.parametrize("kind", sorted(HOSTILE_SHADOW_BODIES))
def test_rest_shadow_update_refuses_hostile_json(cloud: RunningCloud, kind: str) -> None:
    body = HOSTILE_SHADOW_BODIES[kind].encode()
    status, doc, headers = _https(cloud, "POST", "/things/outlet1/shadow?name=hostile", body)
    assert status == 400
    assert (doc["code"], doc["message"]) == (400, "Invalid JSON")
    assert headers["x-amzn-ErrorType"] == "InvalidRequestException"


def test_rest_topics_and_jobs_refuse_hostile_json(cloud: RunningCloud) -> None:
    for kind, text in HOSTILE_SHADOW_BODIES.items():
        status, _, _ = _https(cloud, "PUT", f"/jobs/hostile-{kind}", text.encode())
        assert status == 400, kind
    job = {"targets": ["x"], "document": "[" * 5000}
    status, _, _ = _https(cloud, "PUT", "/jobs/deep-document", json.dumps(job).encode())
    assert status == 400
    # A publish carries any bytes to subscribers: only its size is checked.
    status, _, _ = _https(cloud, "POST", "/topics/hostile/raw", b"[" * 5000)
    assert status == 200


@pytest.mark.parametrize("path", ["/things/outlet1/shadow", "/topics/big/body"])
def test_rest_bodies_over_128_kb_get_413(cloud: RunningCloud, path: str) -> None:
    body = b'{"state":{"reported":{"x":"' + b"a" * 200_000 + b'"}}}'
    status, doc, headers = _https(cloud, "POST", path, body)
    assert status == 413
    assert doc["message"] == "The payload exceeds the maximum size allowed"
    assert headers["x-amzn-ErrorType"] == "RequestEntityTooLargeException"
    assert headers["Connection"] == "close"


BROKEN_HTTP = {
    "no-host": b"GET /health HTTP/1.1\r\n\r\n",
    "duplicate-length": (
        b"POST /things/outlet1/shadow HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
    ),
    "negative-length": (
        b"POST /things/outlet1/shadow HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n"
    ),
    "garbage-request-line": b"\x00\xff\xfe GARBAGE\r\n\r\n",
    "bad-header": b"GET /health HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n",
}


@pytest.mark.parametrize("kind", sorted(BROKEN_HTTP))
def test_broken_http_gets_400(cloud: RunningCloud, kind: str) -> None:
    context = tls_context(cloud, cloud.creds["admin"])
    with (
        socket.create_connection(("127.0.0.1", cloud.rest_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(BROKEN_HTTP[kind])
        answer = b""
        while chunk := tls.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:200]
    assert b"\r\nConnection: close" in head
    assert _strict(body)["code"] == 400


def test_mqtt_requests_with_hostile_json_are_rejected_and_the_connection_lives(
    cloud: RunningCloud,
) -> None:
    device = PahoDevice(cloud, cloud.creds["outlet1"])
    device.connect()
    prefix = "$aws/things/outlet1/shadow/name/hostile"
    jobs = "$aws/things/outlet1/jobs"
    device.subscribe(
        f"{prefix}/update/rejected",
        f"{prefix}/update/accepted",
        f"{jobs}/start-next/rejected",
        f"{jobs}/get/rejected",
        f"{jobs}/some-job/get/rejected",
        f"{jobs}/some-job/update/rejected",
    )
    try:
        for kind, text in HOSTILE_SHADOW_BODIES.items():
            device.publish(f"{prefix}/update", text.encode())
            doc = _strict(_payload(device.expect_any()))
            assert (doc["code"], doc["message"]) == (400, "Invalid JSON"), kind
        deep = b"[" * 5000
        for topic in ("start-next", "get", "some-job/get", "some-job/update"):
            device.publish(f"{jobs}/{topic}", deep)
            got_topic, payload = device.expect_any()
            assert got_topic == f"{jobs}/{topic}/rejected"
            assert _strict(payload)["code"] == "InvalidJson"
        # Still connected and served.
        device.publish(f"{prefix}/update", {"state": {"reported": {"ok": True}}})
        assert device.expect(f"{prefix}/update/accepted")["state"] == {"reported": {"ok": True}}
        assert device.disconnected.empty()
    finally:
        device.close()


def _payload(message: tuple[str, bytes]) -> bytes:
    return message[1]


REST_ROUTES = [
    ("GET", "/things/outlet1/shadow"),
    ("POST", "/things/outlet1/shadow"),
    ("DELETE", "/things/outlet1/shadow"),
    ("POST", "/things/outlet1/shadow?name=fuzz"),
    ("GET", "/api/things/shadow/ListNamedShadowsForThing/outlet1"),
    ("POST", "/topics/fuzz/topic"),
    ("PUT", "/jobs/fuzz-job"),
    ("GET", "/jobs"),
    ("GET", "/jobs/fuzz-job"),
    ("PUT", "/jobs/fuzz-job/cancel"),
    ("GET", "/jobs/fuzz-job/job-document"),
    ("GET", "/jobs/fuzz-job/things"),
    ("GET", "/things/outlet1/jobs"),
    ("GET", "/things/outlet1/jobs/fuzz-job"),
    ("GET", "/health"),
]
QUERIES = [
    "?name=%ff%fe",
    "?name=" + "n" * 300,
    "?qos=9",
    "?qos=-1",
    "?retain=maybe",
    "?pageSize=-5",
    "?pageSize=99999999999999999999",
    "?nextToken=%00%01",
    "?force=%ff",
    "?a=1&a=2&a=3",
]
PATH_NOISE = [
    "/%ff%fe",
    "/" + "x" * 300,
    "/..",
    "/%2e%2e/%2e%2e",
    "//",
    "/\u00e9".encode().decode(),
]
REQUESTS_PER_ROUTE = 12 * FUZZ_SCALE


def _fuzz_body(rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.randbytes(rng.randint(1, 300))
    if kind == 1:
        return b"\xff\xfe" + rng.randbytes(20)  # not UTF-8
    if kind == 2:
        return rng.choice([b"[", b'{"a":']) * rng.randint(100, 3000)
    if kind == 3:
        return rng.choice(list(HOSTILE_SHADOW_BODIES.values())).encode()
    if kind == 4:
        return rng.choice([b"[]", b'"text"', b"42", b"null", b"true", b"{}"])
    if kind == 5:
        targets = rng.choice([[], ["x"], [1], "notalist", None])
        return json.dumps({"targets": targets, "document": rng.choice(["{}", 5, None])}).encode()
    if kind == 6:
        return json.dumps(
            {
                "state": {"desired": {"k": rng.random()}},
                "version": rng.choice([0, -1, 2**70, "1", None, 1.5]),
            }
        ).encode()
    return b""


def _send_raw(cloud: RunningCloud, request: bytes) -> bytes:
    context = tls_context(cloud, cloud.creds["admin"])
    with (
        socket.create_connection(("127.0.0.1", cloud.rest_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(request)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := tls.recv(65536):
                answer += chunk
                if _complete(answer):
                    break
    return answer


def _complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    found = re.search(rb"(?i)\r\ncontent-length: (\d+)", head)
    return found is not None and len(body) >= int(found[1])


def test_rest_fuzz_every_route_gets_an_answer_and_the_cloud_serves_on(
    cloud: RunningCloud,
) -> None:
    rng = random.Random(20261129)
    answered = 0
    for method, route in REST_ROUTES:
        for n in range(REQUESTS_PER_ROUTE):
            path = route
            if n % 3 == 1:
                path += rng.choice(QUERIES)
            elif n % 3 == 2:
                path = route.replace("/outlet1", rng.choice(PATH_NOISE), 1)
            body = _fuzz_body(rng) if n % 4 else b""
            head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            answer = _send_raw(cloud, head.encode("utf-8", "surrogatepass") + body)
            status_line, _, rest = answer.partition(b"\r\n")
            assert re.fullmatch(rb"HTTP/1\.1 [1-5]\d\d [A-Za-z -]+", status_line), (path, answer)
            status = int(status_line.split()[1])
            assert status < 500, (method, path, body[:60], answer[:300])
            payload = rest.partition(b"\r\n\r\n")[2]
            doc = _strict(payload)  # always strict JSON
            if status >= 400:
                assert "message" in doc
            answered += 1
    assert answered == len(REST_ROUTES) * REQUESTS_PER_ROUTE
    # A normal round trip afterwards.
    body = b'{"state":{"reported":{"after":"fuzz"}}}'
    assert _https(cloud, "POST", "/things/outlet2/shadow", body)[0] == 200
    status, doc, _ = _https(cloud, "GET", "/things/outlet2/shadow", b"")
    assert (status, doc["state"]["reported"]["after"]) == (200, "fuzz")
