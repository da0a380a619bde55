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
from jumpstart.cloud.gateway.presence import PRESENCE_PREFIX
from jumpstart.cloud.https_server import (
    HttpRefusalError,
    HttpsServer,
    reason_phrase,
    receive_request,
)
from jumpstart.cloud.policy import Principal
from jumpstart.cloud.registry import Role
from jumpstart.cloud.topics import ShadowOp, ShadowTopic

if TYPE_CHECKING:
    from jumpstart.cloud.service import CloudService

__all__ = ["DashboardServer"]

COOKIE = "jumpstart_dashboard"
MAX_BODY = 16 * 1024
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
KEEPALIVE_S = 15.0  # an SSE comment line, so proxies and the browser keep the stream open
DOCUMENTS_SUFFIX = "/shadow/update/documents"


def _check_body(length: int) -> None:
    if length > MAX_BODY:
        raise HttpRefusalError(413, f"a dashboard request body is at most {MAX_BODY} bytes")


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
        for thing in self._thing_names():
            if client_id == thing or client_id.startswith(thing + "-"):
                return thing
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
        if broker is None:
            return set()
        return {
            c.principal.name
            for c in broker.connections
            if c.principal is not None and c.session is not None
        }

    def snapshot(self, thing: str, online: set[str] | None = None) -> dict[str, Any]:
        reply = self.cloud.shadows.handle(ShadowTopic(thing, "", ShadowOp.GET), b"", via_mqtt=False)
        state = reply.body.get("state", {}) if reply.status == 200 else {}
        reported = state.get("reported", {}) if isinstance(state, dict) else {}
        desired = state.get("desired", {}) if isinstance(state, dict) else {}
        online = self._online() if online is None else online
        return {
            "name": thing,
            "online": thing in online,
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
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
        while True:
            request, body = await receive_request(conn, reader, _check_body)
            if request is None:
                return
            if request.target.split(b"?")[0] == b"/api/events" and self._authorized(request):
                await self._stream(conn, writer)
                return
            status, headers, payload = self.respond(request, body)
            headers = [
                *headers,
                ("Content-Length", str(len(payload))),
                ("Cache-Control", "no-store"),
            ]
            response = h11.Response(
                status_code=status, headers=headers, reason=reason_phrase(status).encode()
            )
            writer.write(conn.send(response))
            writer.write(conn.send(h11.Data(data=payload)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

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

    def respond(
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
        if len(parts) == 4 and parts[:2] == ["api", "things"] and parts[3] == "output":
            if method != "POST":
                return self._json(405, {"message": "Method Not Allowed"})
            refusal = self._csrf_refusal(request)
            if refusal is not None:
                return self._json(403, {"message": refusal})
            return self._set_output(parts[2], body)
        return self._json(404, {"message": "Not Found"})

    def _security_headers(self) -> list[tuple[str, str]]:
        return [
            ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
        ]

    def _csrf_refusal(self, request: h11.Request) -> str | None:
        kind = (self._header(request, b"content-type") or "").split(";")[0].strip()
        if kind != "application/json":
            return "writes take a JSON body (Content-Type: application/json)"
        origin = self._header(request, b"origin")
        allowed = {f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}"}
        if origin is not None and origin not in allowed:
            return f"cross-site request from {origin} refused"
        return None

    def _set_output(self, thing: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            wanted = json_input.parse(body)
        except ValueError as err:  # malformed, not UTF-8, nested too deep...
            return self._json(400, {"message": f"the body is not JSON the cloud takes: {err}"})
        if not isinstance(wanted, dict) or not isinstance(wanted.get("output"), bool):
            return self._json(400, {"message": 'send {"output": true|false}'})
        update = json.dumps({"state": {"desired": {"output": wanted["output"]}}}).encode()
        # The REST API's own route and checks, as the operator.
        request = h11.Request(
            method="POST",
            target=f"/things/{quote(thing, safe='')}/shadow",
            headers=[("Host", "dashboard")],
        )
        status, doc, _ = self.cloud.rest.respond(self.principal, request, update)
        return self._json(status, doc)

    def _json(self, status: int, doc: object) -> tuple[int, list[tuple[str, str]], bytes]:
        return status, [("Content-Type", "application/json")], json.dumps(doc).encode()

    async def _stream(self, conn: h11.Connection, writer: asyncio.StreamWriter) -> None:
        """Server-sent events: every thing now, then each change as the broker routes it."""
        headers = [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-store"),
        ]
        writer.write(conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK")))
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._streams.add(queue)
        try:
            for thing in self.things():
                writer.write(
                    conn.send(
                        h11.Data(data=f"event: thing\ndata: {json.dumps(thing)}\n\n".encode())
                    )
                )
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
