"""``esp_https_ota``: download an app image over HTTPS straight into the passive OTA slot.

The server must present a certificate that chains to the CA the app embeds (``server.cert``);
there is no fallback to an unverified connection. The image streams into the slot through
``esp_ota_write`` as it arrives, after its header passed two early checks (magic byte, chip id)
and its announced size fits the slot; ``finish`` verifies the whole image and only then makes it
the boot partition. Every failure leaves the running app as the one that boots.

Use ``HttpsOta`` step by step (``begin``, ``get_img_desc``, ``perform`` until it returns
True, ``finish``) to report progress, or :func:`https_ota` for the one-call form.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from jumpstart.formats.app_image import (
    APP_DESC_OFFSET,
    APP_DESC_SIZE,
    AppDescription,
    ChipId,
    ImageError,
    ImageHeader,
    app_desc_offset,
)
from jumpstart.idf.bootloader_support import IMAGE_MAGIC_BYTE, VerifiedApp
from jumpstart.idf.esp_err import EspErr, EspError
from jumpstart.idf.log import EspLog
from jumpstart.idf.ota import EspOta, OtaHandle
from jumpstart.idf.tls import client_context

__all__ = ["HttpsOta", "HttpsOtaConfig", "https_ota"]

TAG = "esp_https_ota"
# DEFAULT_HTTP_BUF_SIZE of esp_http_client: the chunk each perform() reads and writes.
DEFAULT_BUFFER_SIZE = 512
DEFAULT_TIMEOUT_MS = 5000  # esp_http_client's DEFAULT_TIMEOUT_MS
# esp_https_ota reads this much before writing anything: header, segment header, app desc.
IMAGE_HEADER_SIZE = APP_DESC_OFFSET + APP_DESC_SIZE + 1  # the most any chip needs
USER_AGENT = "ESP32 HTTP Client/1.0"  # esp_http_client's default User-Agent
MAX_HEADER_BYTES = 16 * 1024


@dataclass(frozen=True)
class HttpsOtaConfig:
    """The ``esp_http_client_config_t`` fields an OTA download uses."""

    url: str
    cert_pem: bytes
    """The CA that must have signed the server's certificate (the app's ``server.cert``)."""
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    buffer_size: int = DEFAULT_BUFFER_SIZE
    skip_cert_common_name_check: bool = False


def _fail(message: str, code: EspErr = EspErr.ESP_FAIL) -> EspError:
    return EspError(code, message)


class HttpsOta:
    """One download into the passive slot: ``begin``, ``perform``... ``finish``."""

    def __init__(
        self,
        ota: EspOta,
        config: HttpsOtaConfig,
        log: EspLog,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        http: h11.Connection,
    ) -> None:
        self.ota = ota
        self.config = config
        self.log = log
        self._reader = reader
        self._writer = writer
        self._http = http
        self._pending = bytearray()
        self._body_done = False
        self._handle: OtaHandle | None = None
        self.image_size: int | None = None
        """The Content-Length the server announced, or None (chunked transfer)."""
        self.image_len_read = 0
        partition = ota.get_next_update_partition()
        if partition is None:
            raise _fail("no OTA slot to write to", EspErr.ESP_ERR_NOT_FOUND)
        self.partition = partition

    # -- begin -------------------------------------------------------------------------
    @classmethod
    async def begin(cls, ota: EspOta, config: HttpsOtaConfig, log: EspLog) -> HttpsOta:
        """``esp_https_ota_begin``: connect, check the server, send GET, read the headers."""
        parts = urlsplit(config.url)
        if parts.scheme != "https" or not parts.hostname:
            raise _fail(f"{config.url!r} is not an https:// URL", EspErr.ESP_ERR_INVALID_ARG)
        port = parts.port or 443
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        timeout = config.timeout_ms / 1000
        context = client_context(
            config.cert_pem,
            config.client_cert_pem,
            config.client_key_pem,
            check_hostname=not config.skip_cert_common_name_check,
        )
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races with completion, and a device's tasks must end when it restarts.
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    parts.hostname, port, ssl=context, limit=max(config.buffer_size, 65536)
                )
        except ssl.SSLCertVerificationError as err:
            log.e(TAG, f"Failed to open HTTP connection: {err.verify_message}")
            raise _fail(f"server certificate not trusted ({err.verify_message})") from None
        except (ssl.SSLError, OSError, TimeoutError) as err:
            log.e(TAG, f"Failed to open HTTP connection: {err}")
            raise _fail(f"cannot reach {parts.hostname}:{port} ({err})") from None
        http = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
        self = cls(ota, config, log, reader, writer, http)
        try:
            await self._request(parts.netloc, target)
        except BaseException:
            await self._close()
            raise
        return self

    async def _request(self, host: str, target: str) -> None:
        request = h11.Request(
            method="GET",
            target=target,
            headers=[("Host", host), ("User-Agent", USER_AGENT), ("Accept", "*/*")],
        )
        self._writer.write(self._http.send(request) + self._http.send(h11.EndOfMessage()))
        event = await self._next_event()
        if not isinstance(event, h11.Response):
            raise _fail("the server closed the connection without a response")
        if event.status_code != 200:
            reason = event.reason.decode(errors="replace")
            self.log.e(TAG, f"HTTP status {event.status_code} {reason}")
            raise _fail(f"HTTP {event.status_code} {reason} from {self.config.url}")
        for name, value in event.headers:
            if name == b"content-length":
                self.image_size = int(value)
        if self.image_size is not None and self.image_size > self.partition.size:
            raise _fail(
                f"image too large: {self.image_size} bytes, the '{self.partition.label}' slot "
                f"holds {self.partition.size}",
                EspErr.ESP_ERR_INVALID_SIZE,
            )
        self.log.i(
            TAG,
            f"Starting OTA into {self.partition.label} (0x{self.partition.address:x}), "
            f"image size {self.image_size if self.image_size is not None else 'unknown'}",
        )

    async def _next_event(self) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        timeout = self.config.timeout_ms / 1000
        while True:
            try:
                event = self._http.next_event()
            except h11.RemoteProtocolError as err:
                raise self._broken(str(err)) from None
            if event is not h11.NEED_DATA:
                return event
            try:
                async with asyncio.timeout(timeout):
                    data = await self._reader.read(self.config.buffer_size)
            except TimeoutError:
                raise self._broken(f"no data for {self.config.timeout_ms} ms") from None
            except (ssl.SSLError, OSError) as err:
                raise self._broken(str(err)) from None
            self._http.receive_data(data)

    def _broken(self, why: str) -> EspError:
        total = f" of {self.image_size}" if self.image_size is not None else ""
        self.log.e(TAG, f"Connection lost after {self.image_len_read}{total} bytes: {why}")
        return _fail(f"download interrupted after {self.image_len_read}{total} bytes ({why})")

    async def _fill(self, wanted: int) -> None:
        """Read body bytes until ``wanted`` are pending or the body ended."""
        while len(self._pending) < wanted and not self._body_done:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                self._pending += event.data
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
            elif isinstance(event, h11.ConnectionClosed):
                raise self._broken("connection closed")

    # -- image -------------------------------------------------------------------------
    async def get_img_desc(self) -> AppDescription:
        """``esp_https_ota_get_img_desc``: the new app's description, read before writing."""
        await self._fill(IMAGE_HEADER_SIZE)
        head = bytes(self._pending[:IMAGE_HEADER_SIZE])
        if head[:1] != IMAGE_MAGIC_BYTE:
            raise _fail("not an app image (bad magic byte)", EspErr.ESP_ERR_OTA_VALIDATE_FAILED)
        extended = self.ota.chip.extended_header
        try:
            header = ImageHeader.from_bytes(head, extended=extended)
            description = AppDescription.from_bytes(head[app_desc_offset(extended) :])
        except ImageError as err:
            raise _fail(f"image header: {err}", EspErr.ESP_ERR_OTA_VALIDATE_FAILED) from None
        chip_id = self.ota.chip.chip_id
        if header.chip_id != chip_id:
            self.log.e(TAG, f"Mismatch chip id, expected {chip_id}, found {header.chip_id}")
            raise _fail(
                f"image is for chip id 0x{header.chip_id:04x} ({_chip_name(header.chip_id)}), "
                f"this device is 0x{chip_id:04x} ({_chip_name(chip_id)})",
                EspErr.ESP_ERR_INVALID_VERSION,
            )
        return description

    async def perform(self) -> bool:
        """``esp_https_ota_perform``: move one buffer into the slot; True once all arrived."""
        if self._handle is None:
            await self.get_img_desc()
            self._handle = self.ota.begin(self.partition)
        await self._fill(self.config.buffer_size)
        chunk = bytes(self._pending[: self.config.buffer_size])
        del self._pending[: len(chunk)]
        if chunk:
            # esp_ota_write refuses bytes past the slot (a server that sent no length).
            self._handle.write(chunk)
            self.image_len_read += len(chunk)
        return self._body_done and not self._pending

    def is_complete_data_received(self) -> bool:
        if self.image_size is None:
            return self._body_done and not self._pending
        return self.image_len_read == self.image_size

    async def finish(self) -> VerifiedApp:
        """``esp_https_ota_finish``: verify the image and make its slot the boot partition."""
        try:
            if self._handle is None or not self.is_complete_data_received():
                raise self._broken("incomplete image")
            verified = self._handle.end()
            self.ota.set_boot_partition(self.partition)
            return verified
        finally:
            await self._close()

    async def abort(self) -> None:
        """``esp_https_ota_abort``: stop; the running app stays the boot partition."""
        if self._handle is not None:
            self._handle.abort()
        await self._close()

    async def _close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()


def _chip_name(chip_id: int) -> str:
    try:
        return ChipId(chip_id).name.lower()
    except ValueError:
        return "unknown chip"


async def https_ota(
    ota: EspOta,
    config: HttpsOtaConfig,
    log: EspLog,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> VerifiedApp:
    """``esp_https_ota``: the whole download; the new app boots after the next restart."""
    session = await HttpsOta.begin(ota, config, log)
    try:
        while not await session.perform():
            if on_progress is not None:
                on_progress(session.image_len_read, session.image_size)
    except BaseException:
        await session.abort()
        raise
    verified = await session.finish()
    log.i(TAG, f"OTA complete: {verified.image.length} bytes into {session.partition.label}")
    return verified
