"""Firmware hosting: app images served over HTTPS for OTA (``jumpstart cloud firmware``).

Images live as files in ``cloud/firmware/``; the server answers ``GET /firmware/NAME`` with the
file and its Content-Length. It presents the cloud's server certificate, so a device that
embeds the cloud's CA as ``server.cert`` can validate it; it asks for no client certificate,
like the HTTPS servers of ESP-IDF's OTA examples (and like a pre-signed S3 URL for AWS IoT OTA).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

import h11

from jumpstart.cloud.home import CloudHome
from jumpstart.cloud.https_server import HttpsServer, requests, send_response, server_connection
from jumpstart.errors import InputError
from jumpstart.targets import verified_app_image

__all__ = ["FirmwareImage", "FirmwareServer", "FirmwareStore", "firmware_url"]

PATH_PREFIX = "/firmware/"
SEND_CHUNK = 64 * 1024
MAX_REQUEST_BODY = 0  # GET and HEAD only
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class FirmwareImage:
    name: str
    size: int
    sha256: str
    project: str
    version: str


def _no_body(length: int) -> None:
    if length > MAX_REQUEST_BODY:
        raise h11.RemoteProtocolError("a firmware request carries no body")


def firmware_url(host: str, port: int, name: str) -> str:
    return f"https://{host}:{port}{PATH_PREFIX}{name}"


def _describe(name: str, data: bytes) -> FirmwareImage:
    project = version = "?"
    with contextlib.suppress(InputError):
        desc = verified_app_image(data)[1].app_description
        if desc is not None:
            project, version = desc.project_name, desc.version
    return FirmwareImage(name, len(data), hashlib.sha256(data).hexdigest(), project, version)


class FirmwareStore:
    """The folder of hosted images."""

    def __init__(self, home: CloudHome) -> None:
        self.path = home.path / "firmware"

    def upload(self, data: bytes, name: str | None = None, *, check: bool = True) -> FirmwareImage:
        """Host ``data`` as ``name`` (default: ``PROJECT-VERSION.bin``); return what was stored.

        With ``check`` the image must pass the bootloader's checks (it is a sound app image);
        ``check=False`` hosts anything, to see how devices refuse bad images.
        """
        if check:
            try:
                _, image = verified_app_image(data)
            except InputError as err:
                raise InputError(
                    f"not a valid app image ({err}); build one with 'jumpstart idf build'"
                ) from None
            desc = image.app_description
            assert desc is not None  # verify() requires it
            default = f"{desc.project_name}-{desc.version}.bin"
        else:
            default = f"image-{hashlib.sha256(data).hexdigest()[:12]}.bin"
        name = name or default
        if not _NAME.fullmatch(name):
            raise InputError(f"firmware name {name!r}: use letters, digits, '_', '-', '.'")
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / name
        temporary = target.with_suffix(target.suffix + ".part")
        temporary.write_bytes(data)
        temporary.replace(target)
        return _describe(name, data)

    def images(self) -> list[FirmwareImage]:
        if not self.path.is_dir():
            return []
        return [
            _describe(p.name, p.read_bytes())
            for p in sorted(self.path.iterdir())
            if p.is_file() and _NAME.fullmatch(p.name)
        ]

    def open(self, name: str) -> Path | None:
        """The file for ``name``, or None (unknown, or not a plain file name)."""
        if not _NAME.fullmatch(name):
            return None
        path = self.path / name
        return path if path.is_file() else None


class FirmwareServer(HttpsServer):
    """HTTPS (server authentication only) over the firmware folder."""

    def __init__(self, home: CloudHome) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(home.server_pem), str(home.server_key))
        super().__init__(context)
        self.store = FirmwareStore(home)
        self.downloads = 0
        """Completed downloads since start (for operators and tests)."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = server_connection()
        async for request, _body in requests(conn, reader, _no_body):
            await self._respond(conn, writer, request)

    async def _respond(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, request: h11.Request
    ) -> None:
        target = request.target.decode("ascii", errors="replace").split("?", 1)[0]
        method = request.method.decode("ascii", errors="replace")
        path = (
            self.store.open(target[len(PATH_PREFIX) :]) if target.startswith(PATH_PREFIX) else None
        )
        if method not in ("GET", "HEAD"):
            await self._error(conn, writer, 405, "only GET and HEAD")
            return
        if path is None:
            await self._error(conn, writer, 404, f"no firmware at {target}")
            return
        size = path.stat().st_size
        headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
        writer.write(conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK")))
        if method == "GET":
            with path.open("rb") as image:
                while chunk := image.read(SEND_CHUNK):
                    writer.write(conn.send(h11.Data(data=chunk)))
                    await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
        if method == "GET":
            self.downloads += 1

    async def _error(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int, text: str
    ) -> None:
        body = (text + "\n").encode()
        await send_response(conn, writer, status, [("Content-Type", "text/plain")], body)
