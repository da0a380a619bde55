"""The dashboard's HTTP side: the token, CSRF refusals, hostile input, writes through the REST
API's checks, and the live event stream fed by the broker."""

from __future__ import annotations

import asyncio
import http.client
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from jumpstart.cloud.dashboard import DashboardServer
from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.service import CloudService
from jumpstart.host.device_control import send_command
from jumpstart.host.device_home import JumpstartHome
from jumpstart.host.device_runner import run_device
from jumpstart.host.flashing import flash_app_image
from tests.cloud_device import CloudOutlet, cloud_outlet, wait_until
from tests.idf.device_helpers import app_image

Answer = tuple[int, dict[str, str], bytes]


def request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def cookie(dashboard: DashboardServer) -> dict[str, str]:
    return {"Cookie": f"jumpstart_dashboard={dashboard.token}"}


async def call(
    outlet: CloudOutlet, method: str, path: str, body: bytes = b"", **headers: str
) -> Answer:
    port = outlet.cloud.dashboard.port
    return await asyncio.to_thread(request, port, method, path, body, dict(headers))


def test_without_the_token_everything_is_401_and_nothing_changes(tmp_path: Path) -> None:
    async def main() -> None:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            before = await outlet.desired()
            for method, path in (
                ("GET", "/"),
                ("GET", "/app.js"),
                ("GET", "/api/things"),
                ("GET", "/api/events"),
                ("GET", "/?token=wrong"),
                ("POST", "/api/things/outlet1/output"),
            ):
                body = b'{"output": true}' if method == "POST" else b""
                status, _, text = await call(
                    outlet, method, path, body, **{"Content-Type": "application/json"}
                )
                assert status == 401, (method, path)
                assert b"token" in text
            bad_cookie = {"Cookie": "jumpstart_dashboard=nope", "Content-Type": "application/json"}
            status, _, _ = await call(
                outlet, "POST", "/api/things/outlet1/output", b'{"output": true}', **bad_cookie
            )
            assert status == 401
            assert await outlet.desired() == before

    asyncio.run(main())


def test_the_page_then_a_toggle_reaches_the_device(tmp_path: Path) -> None:
    async def main() -> None:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            dashboard = outlet.cloud.dashboard
            status, headers, page = await call(outlet, "GET", f"/?token={dashboard.token}")
            assert status == 200
            assert b'<script type="module" src="/app.js">' in page
            set_cookie = headers["Set-Cookie"]
            assert "HttpOnly" in set_cookie
            assert "SameSite=Strict" in set_cookie
            assert "default-src 'self'" in headers["Content-Security-Policy"]
            status, _, body = await call(outlet, "GET", "/api/things", **cookie(dashboard))
            things = {t["name"]: t for t in json.loads(body)["things"]}
            thing = outlet.creds.thing
            assert things[thing]["online"] is True
            assert outlet.relay == 0
            headers = {**cookie(dashboard), "Content-Type": "application/json"}
            status, _, body = await call(
                outlet, "POST", f"/api/things/{thing}/output", b'{"output": true}', **headers
            )
            assert status == 200, body
            await wait_until(lambda: outlet.relay == 1, 5, "the relay switched on")
            assert (await outlet.desired())["output"] is True

    asyncio.run(main())


def test_cross_site_and_hostile_writes_are_refused(tmp_path: Path) -> None:
    async def main() -> None:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            dashboard = outlet.cloud.dashboard
            thing = outlet.creds.thing
            path = f"/api/things/{thing}/output"
            before = await outlet.desired()
            form = {**cookie(dashboard), "Content-Type": "application/x-www-form-urlencoded"}
            status, _, _ = await call(outlet, "POST", path, b"output=true", **form)
            assert status == 403  # what a cross-site <form> can send
            evil = {
                **cookie(dashboard),
                "Content-Type": "application/json",
                "Origin": "http://evil.example",
            }
            status, _, _ = await call(outlet, "POST", path, b'{"output": true}', **evil)
            assert status == 403
            json_headers = {**cookie(dashboard), "Content-Type": "application/json"}
            cases: list[tuple[bytes, int]] = [
                (b"{not json", 400),
                (b"\xff\xfe\x00", 400),
                (b'{"output": "yes"}', 400),
                (b"[" * 5000 + b"]" * 5000, 400),
                (b'{"output": true, "pad": "' + b"x" * 20_000 + b'"}', 413),
            ]
            for body, expected in cases:
                status, _, _ = await call(outlet, "POST", path, body, **json_headers)
                assert status == expected, body[:20]
            status, _, _ = await call(outlet, "GET", path, **json_headers)
            assert status == 405
            status, _, _ = await call(
                outlet, "POST", "/api/things/x%2F..%2Fy/output", b'{"output": true}', **json_headers
            )
            assert status == 400  # the REST API's own thing-name check
            assert await outlet.desired() == before

    asyncio.run(main())


def test_the_event_stream_follows_the_device(tmp_path: Path) -> None:
    async def main() -> None:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            dashboard = outlet.cloud.dashboard
            reader, writer = await asyncio.open_connection("127.0.0.1", dashboard.port)
            writer.write(
                b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"Cookie: jumpstart_dashboard={dashboard.token}\r\n\r\n".encode()
            )
            await writer.drain()
            events: list[dict[str, Any]] = []
            opened = asyncio.Event()

            async def collect() -> None:
                buffer = b""
                while True:
                    chunk = await reader.read(4096)
                    if not chunk:
                        return
                    buffer += chunk
                    if b": stream open" in buffer:
                        opened.set()
                    while b"\n\n" in buffer:
                        block, buffer = buffer.split(b"\n\n", 1)
                        for line in block.split(b"\n"):
                            if line.startswith(b"data: "):
                                events.append(json.loads(line[6:]))

            task = asyncio.create_task(collect())
            try:
                await asyncio.wait_for(opened.wait(), 5)  # changes only from here on
                await outlet.press()  # the device's own button
                await wait_until(
                    lambda: any(e.get("output") is True for e in events), 5, "the press"
                )
            finally:
                task.cancel()
                writer.close()

    asyncio.run(main())


def test_upload_ota_revoke_and_their_refusals(tmp_path: Path) -> None:
    async def main() -> None:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            dashboard = outlet.cloud.dashboard
            json_headers = {**cookie(dashboard), "Content-Type": "application/json"}
            image = app_image("1_hello_world")
            octet = {**cookie(dashboard), "Content-Type": "application/octet-stream"}
            status, _, _ = await call(outlet, "POST", "/api/firmware", image, **octet)
            assert status == 403  # without the page's header, as a cross-site form would be
            octet["X-Jumpstart-Dashboard"] = "1"
            status, _, body = await call(outlet, "POST", "/api/firmware", b"not an image", **octet)
            assert status == 400
            assert b"not a valid app image" in body
            status, _, body = await call(outlet, "POST", "/api/firmware", image, **octet)
            assert status == 200, body
            hosted = json.loads(body)
            assert (hosted["project"], hosted["version"]) == ("hello_world", "1.0.0")
            for bad in (b'{"firmware": 7}', b'{"firmware": "x.bin", "thing": 3}', b"[]"):
                status, _, _ = await call(outlet, "POST", "/api/ota", bad, **json_headers)
                assert status == 400, bad
            missing = b'{"firmware": "nope.bin", "thing": null}'
            status, _, _ = await call(outlet, "POST", "/api/ota", missing, **json_headers)
            assert status == 404
            unknown = json.dumps({"firmware": hosted["name"], "thing": "ghost"}).encode()
            status, _, _ = await call(outlet, "POST", "/api/ota", unknown, **json_headers)
            assert status == 400  # the jobs API: not a registered thing

            status, _, body = await call(
                outlet, "GET", f"/api/things/{outlet.creds.thing}", **cookie(dashboard)
            )
            detail = json.loads(body)
            [certificate] = detail["certificates"]
            assert certificate["status"] == "ACTIVE"
            path = f"/api/certificates/{certificate['id']}/revoke"
            status, _, _ = await call(
                outlet, "POST", "/api/certificates/0000/revoke", b"{}", **json_headers
            )
            assert status == 404
            status, _, _ = await call(outlet, "POST", path, b"{}", **json_headers)
            assert status == 200
            await wait_until(
                lambda: not dashboard.snapshot(outlet.creds.thing)["online"], 5, "dropped"
            )

    asyncio.run(main())


def test_front_panel_of_a_device_on_this_machine(tmp_path: Path) -> None:
    async def main() -> None:
        async with cloud_outlet(tmp_path, "6_ota") as outlet:
            dashboard = outlet.cloud.dashboard
            home = JumpstartHome(outlet.cloud.home.path.parent)  # devices/ beside cloud/
            folder = home.create_device("bench")
            with folder.open_flash() as flash:
                flash_app_image(flash, app_image("2_drivers"))
            task = asyncio.create_task(run_device(folder, lambda _line: None))
            try:
                await wait_until(folder.control_path.exists, 10, "device up")
                status, _, body = await call(outlet, "GET", "/api/devices", **cookie(dashboard))
                [device] = json.loads(body)["devices"]
                assert (device["name"], device["running"], device["outputs"]) == (
                    "bench",
                    True,
                    {"27": 0},
                )
                headers = {**cookie(dashboard), "Content-Type": "application/json"}
                for bad in (b'{"hold": 0}', b'{"hold": 99}', b'{"hold": true}', b'{"hold": "1"}'):
                    status, _, _ = await call(
                        outlet, "POST", "/api/devices/bench/press", bad, **headers
                    )
                    assert status == 400, bad
                status, _, _ = await call(
                    outlet, "POST", "/api/devices/ghost/press", b"{}", **headers
                )
                assert status == 404
                status, _, body = await call(
                    outlet, "POST", "/api/devices/bench/press", b'{"hold": 0.1}', **headers
                )
                assert status == 200, body
                assert json.loads(body)["outputs"] == {"27": 1}  # the press reached the device
            finally:
                await asyncio.to_thread(send_command, folder, {"cmd": "stop"})
                await asyncio.wait_for(task, 10)

    asyncio.run(main())


def test_a_client_id_names_its_thing_by_the_shortest_prefix(tmp_path: Path) -> None:
    home = CloudHome(tmp_path / "cloud")
    home.ensure()
    registry = home.registry()
    for name in ("outlet", "outlet-2", "lamp"):
        registry.create_thing(name)
    dashboard = DashboardServer(cast(CloudService, SimpleNamespace(registry=registry, broker=None)))
    vectors = {
        "outlet": "outlet",
        "outlet-2": "outlet",  # "outlet" sorts first and is the shorter prefix
        "outlet-2-shell": "outlet",
        "lamp-7f3a": "lamp",
        "outlets": None,
        "lam": None,
        "-": None,
        "": None,
    }
    try:
        for client_id, thing in vectors.items():
            assert dashboard._thing_of_client(client_id) == thing, client_id
    finally:
        registry.close()
