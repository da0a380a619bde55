"""The dashboard's HTTP server: the page, a JSON API over the cloud's own REST routes, and a
server-sent event stream fed by the message broker.

Access: it listens on 127.0.0.1 only and every request needs the token printed with its URL
(``/?token=...``, as Jupyter does); the first page load turns the token into an HttpOnly,
SameSite=Strict cookie. Without it every path answers 401 and changes nothing. Writes are
CSRF-safe: they need the cookie (a cross-site request does not carry it), a JSON body, and an
Origin, when the browser sends one, of this server. The page acts as an operator: each write
goes through :meth:`RestServer.respond` with the operator principal, so the REST API's role
checks and validation apply unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import time
from http.cookies import SimpleCookie
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import h11

from jumpstart.cloud import json_input
from jumpstart.cloud.dashboard.devices import local_devices, press_device
from jumpstart.cloud.firmware import FirmwareStore, firmware_url
from jumpstart.cloud.gateway.presence import PRESENCE_PREFIX
from jumpstart.cloud.https_server import (
    HttpRefusalError,
    HttpsServer,
    requests,
    send_response,
    server_connection,
)
from jumpstart.cloud.jobs.model import ALL_THINGS_GROUP, group_arn, thing_arn
from jumpstart.cloud.policy import Principal
from jumpstart.cloud.registry import Role
from jumpstart.cloud.topics import ShadowOp, ShadowTopic
from jumpstart.errors import InputError

if TYPE_CHECKING:
    from jumpstart.cloud.service import CloudService

__all__ = ["DashboardServer"]

COOKIE = "jumpstart_dashboard"
MAX_BODY = 16 * 1024
MAX_UPLOAD = 2 * 1024 * 1024  # an app image: the outlet's slots are 1600 KiB
# Writes that are not JSON (an image upload) carry this header: a cross-site form cannot.
WRITE_HEADER = b"x-jumpstart-dashboard"
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
KEEPALIVE_S = 15.0  # an SSE comment line, so proxies and the browser keep the stream open
DOCUMENTS_SUFFIX = "/shadow/update/documents"


def _check_body(length: int) -> None:
    if length > MAX_UPLOAD:
        raise HttpRefusalError(413, f"a dashboard request body is at most {MAX_UPLOAD} bytes")


class DashboardServer(HttpsServer):
    """One cloud's dashboard: plain HTTP on 127.0.0.1, one token."""

    def __init__(self, cloud: CloudService, token: str | None = None) -> None:
        super().__init__(None)
        self.cloud = cloud
        self.token = token or secrets.token_urlsafe(24)
        self.principal = Principal("dashboard", Role.ADMIN)
        self.port = 0
        self._streams: set[asyncio.Queue[bytes]] = set()
        self._last_seen: dict[str, int] = {}
        if cloud.broker is not None:
            cloud.broker.observers.append(self._observe)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    async def start(self, host: str, port: int) -> int:
        self.port = await super().start("127.0.0.1", port)  # never beyond this machine
        return self.port

    # -- the broker's messages -------------------------------------------------------------
    def _observe(self, topic: str, payload: bytes) -> None:
        thing: str | None = None
        if topic.startswith(PRESENCE_PREFIX):
            client_id = topic.rsplit("/", 1)[-1]
            thing = self._thing_of_client(client_id)
            if thing is not None:
                self._last_seen[thing] = int(time.time())
        elif topic.startswith("$aws/things/") and topic.endswith(DOCUMENTS_SUFFIX):
            parts = topic.split("/")
            if len(parts) == 6:  # the classic shadow: the outlet's
                thing = parts[2]
        if thing is None or not self._streams:
            return
        # After the message is routed: a presence event comes before the connection is gone.
        asyncio.get_running_loop().call_soon(self._push, thing)

    def _thing_of_client(self, client_id: str) -> str | None:
        """The thing a client id names: the id itself or its part before a ``-``, shortest
        first. One keyed lookup per candidate, not a scan of the registry: this runs on every
        connect and disconnect of the fleet."""
        ends = [i for i, char in enumerate(client_id) if char == "-"] + [len(client_id)]
        for end in ends:
            if self.cloud.registry.thing(client_id[:end]) is not None:
                return client_id[:end]
        return None

    def _push(self, thing: str) -> None:
        data = json.dumps(self.snapshot(thing))
        message = f"event: thing\ndata: {data}\n\n".encode()
        for queue in self._streams:
            queue.put_nowait(message)

    # -- what the page shows -------------------------------------------------------------
    def _thing_names(self) -> list[str]:
        return [thing.name for thing in self.cloud.registry.things()]

    def _online(self) -> set[str]:
        broker = self.cloud.broker
        return set() if broker is None else set(broker.online)

    def _is_online(self, thing: str) -> bool:
        broker = self.cloud.broker
        return broker is not None and thing in broker.online

    def snapshot(self, thing: str, online: set[str] | None = None) -> dict[str, Any]:
        reply = self.cloud.shadows.handle(ShadowTopic(thing, "", ShadowOp.GET), b"", via_mqtt=False)
        state = reply.body.get("state", {}) if reply.status == 200 else {}
        reported = state.get("reported", {}) if isinstance(state, dict) else {}
        desired = state.get("desired", {}) if isinstance(state, dict) else {}
        return {
            "name": thing,
            "online": self._is_online(thing) if online is None else thing in online,
            "output": reported.get("output"),
            "desired_output": desired.get("output"),
            "fw_version": reported.get("fw_version"),
            "ota_status": reported.get("ota_status"),
            "shadow_version": reply.body.get("version") if reply.status == 200 else None,
            "last_seen": self._last_seen.get(thing),
        }

    def things(self) -> list[dict[str, Any]]:
        online = self._online()
        return [self.snapshot(name, online) for name in self._thing_names()]

    # -- HTTP ----------------------------------------------------------------------------
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = server_connection()
        async for request, body in requests(conn, reader, _check_body):
            if request.target.split(b"?")[0] == b"/api/events" and self._authorized(request):
                await self._stream(conn, writer)
                return
            status, headers, payload = await self.respond(request, body)
            headers = [*headers, ("Cache-Control", "no-store")]
            await send_response(conn, writer, status, headers, payload)

    def _authorized(self, request: h11.Request) -> bool:
        return self._token_of(request) is not None

    def _token_of(self, request: h11.Request) -> str | None:
        """The valid token this request carries (query or cookie), else None."""
        query = parse_qs(urlsplit(request.target.decode("ascii", "replace")).query)
        candidates = query.get("token", [])[-1:]
        for name, value in request.headers:
            if name == b"cookie":
                cookie: SimpleCookie = SimpleCookie()
                with contextlib.suppress(Exception):
                    cookie.load(value.decode("latin-1"))
                if COOKIE in cookie:
                    candidates.append(cookie[COOKIE].value)
        for candidate in candidates:
            if hmac.compare_digest(candidate.encode(), self.token.encode()):
                return candidate
        return None

    def _header(self, request: h11.Request, name: bytes) -> str | None:
        for key, value in request.headers:
            if key == name:
                return value.decode("latin-1")
        return None

    async def respond(
        self, request: h11.Request, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Status, headers and body of one request."""
        if not self._authorized(request):
            text = (
                b"401 Unauthorized: open the URL 'jumpstart cloud serve' printed (with ?token=)\n"
            )
            return 401, [("Content-Type", "text/plain; charset=utf-8")], text
        method = request.method.decode()
        url = urlsplit(request.target.decode("ascii", "replace"))
        path = url.path
        if method == "GET" and path in STATIC:
            name, kind = STATIC[path]
            data = (
                resources.files("jumpstart.cloud.dashboard").joinpath("static", name).read_bytes()
            )
            headers = [("Content-Type", kind), *self._security_headers()]
            if parse_qs(url.query).get("token"):
                headers.append(
                    ("Set-Cookie", f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/")
                )
            return 200, headers, data
        if path == "/api/things" and method == "GET":
            return self._json(200, {"things": self.things()})
        parts = [unquote(p) for p in path.split("/")[1:]]
        if method == "GET":
            if len(parts) == 3 and parts[:2] == ["api", "things"]:
                return self._thing_detail(parts[2])
            if parts == ["api", "devices"]:
                # Off the event loop: a device may run in this process (make run).
                devices = await asyncio.to_thread(local_devices, self.cloud.home.path.parent)
                return self._json(200, {"devices": devices})
        route = self._write_route(parts)
        if route is None:
            return self._json(404, {"message": "Not Found"})
        if method != "POST":
            return self._json(405, {"message": "Method Not Allowed"})
        refusal = self._csrf_refusal(request, json_body=route != "upload")
        if refusal is not None:
            return self._json(403, {"message": refusal})
        if route != "upload" and len(body) > MAX_BODY:
            return self._json(413, {"message": f"a JSON request is at most {MAX_BODY} bytes"})
        if route == "upload":
            return self._upload(body)
        try:
            document = json_input.parse(body)
        except ValueError as err:  # malformed, not UTF-8, nested too deep...
            return self._json(400, {"message": f"the body is not JSON the cloud takes: {err}"})
        if not isinstance(document, dict):
            return self._json(400, {"message": "send a JSON object"})
        if route == "output":
            return self._set_output(parts[2], document)
        if route == "revoke":
            return self._revoke(parts[2])
        if route == "ota":
            return self._ota(document)
        return await self._press(parts[2], document)

    @staticmethod
    def _write_route(parts: list[str]) -> str | None:
        if len(parts) == 4 and parts[:2] == ["api", "things"] and parts[3] == "output":
            return "output"
        if len(parts) == 4 and parts[:2] == ["api", "certificates"] and parts[3] == "revoke":
            return "revoke"
        if parts == ["api", "firmware"]:
            return "upload"
        if parts == ["api", "ota"]:
            return "ota"
        if len(parts) == 4 and parts[:2] == ["api", "devices"] and parts[3] == "press":
            return "press"
        return None

    def _security_headers(self) -> list[tuple[str, str]]:
        return [
            ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
        ]

    def _csrf_refusal(self, request: h11.Request, *, json_body: bool = True) -> str | None:
        kind = (self._header(request, b"content-type") or "").split(";")[0].strip()
        if json_body and kind != "application/json":
            return "writes take a JSON body (Content-Type: application/json)"
        if not json_body and self._header(request, WRITE_HEADER) != "1":
            return "an upload needs the X-Jumpstart-Dashboard: 1 header (the page sends it)"
        origin = self._header(request, b"origin")
        allowed = {f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}"}
        if origin is not None and origin not in allowed:
            return f"cross-site request from {origin} refused"
        return None

    def _rest(self, method: str, target: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
        """A request to the REST API's own routes and checks, as the operator."""
        request = h11.Request(method=method, target=target, headers=[("Host", "dashboard")])
        status, doc, _ = self.cloud.rest.respond(self.principal, request, body)
        return status, doc

    def _set_output(
        self, thing: str, wanted: dict[str, Any]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if not isinstance(wanted.get("output"), bool):
            return self._json(400, {"message": 'send {"output": true|false}'})
        update = json.dumps({"state": {"desired": {"output": wanted["output"]}}}).encode()
        return self._json(*self._rest("POST", f"/things/{quote(thing, safe='')}/shadow", update))

    def _thing_detail(self, thing: str) -> tuple[int, list[tuple[str, str]], bytes]:
        name = quote(thing, safe="")
        status, shadow = self._rest("GET", f"/things/{name}/shadow")
        if status not in (200, 404):
            return self._json(status, shadow)
        _, jobs = self._rest("GET", f"/things/{name}/jobs")
        certificates = [
            {"id": c.certificate_id, "status": c.status.value, "created_at": c.created_at}
            for c in self.cloud.registry.certificates(thing)
        ]
        return self._json(
            200,
            {
                "thing": self.snapshot(thing),
                "shadow": shadow if status == 200 else None,
                "jobs": jobs.get("executionSummaries", []),
                "certificates": certificates,
            },
        )

    def _revoke(self, certificate_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
        record = self.cloud.registry.certificate(certificate_id)
        if record is None:
            return self._json(404, {"message": f"no certificate {certificate_id}"})
        self.cloud.registry.revoke(certificate_id)  # the cloud ends its connections
        return self._json(200, {"revoked": certificate_id})

    def _upload(self, image: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            hosted = FirmwareStore(self.cloud.home).upload(image)
        except InputError as err:
            return self._json(400, {"message": str(err)})
        url = firmware_url("localhost", self.cloud.firmware_port, hosted.name)
        return self._json(
            200,
            {"name": hosted.name, "project": hosted.project, "version": hosted.version, "url": url},
        )

    def _ota(self, request: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        """An OTA job for one thing or all, through the jobs API."""
        name, thing = request.get("firmware"), request.get("thing")
        if not isinstance(name, str) or not (thing is None or isinstance(thing, str)):
            return self._json(400, {"message": 'send {"firmware": NAME, "thing": T or null}'})
        if FirmwareStore(self.cloud.home).open(name) is None:
            return self._json(404, {"message": f"no firmware {name!r}: upload it first"})
        url = firmware_url("localhost", self.cloud.firmware_port, name)
        targets = [thing_arn(thing)] if thing else [group_arn(ALL_THINGS_GROUP)]
        job_id = f"ota-{int(time.time())}-{secrets.token_hex(3)}"
        document = json.dumps({"operation": "ota", "url": url})
        body = json.dumps({"targets": targets, "document": document}).encode()
        return self._json(*self._rest("PUT", f"/jobs/{job_id}", body))

    async def _press(
        self, device: str, request: dict[str, Any]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        hold = request.get("hold", 0.1)
        if not isinstance(hold, int | float) or isinstance(hold, bool) or not 0 < hold <= 10:
            return self._json(400, {"message": 'send {"hold": SECONDS} (up to 10)'})
        try:
            home = self.cloud.home.path.parent
            status = await asyncio.to_thread(press_device, home, device, float(hold))
        except InputError as err:
            return self._json(404, {"message": str(err)})
        return self._json(200, status)

    def _json(self, status: int, doc: object) -> tuple[int, list[tuple[str, str]], bytes]:
        return status, [("Content-Type", "application/json")], json.dumps(doc).encode()

    async def _stream(self, conn: h11.Connection, writer: asyncio.StreamWriter) -> None:
        """Server-sent events: each change of a thing as the broker routes it."""
        headers = [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-store"),
        ]
        writer.write(conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK")))
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._streams.add(queue)
        try:
            # Changes only: the page opens this stream first, then reads /api/things, so
            # nothing falls between the two (a full burst here would stall a big fleet's page).
            writer.write(conn.send(h11.Data(data=b": stream open\n\n")))
            await writer.drain()
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    message = b": keep-alive\n\n"
                writer.write(conn.send(h11.Data(data=message)))
                await writer.drain()
        finally:
            self._streams.discard(queue)
