"""Run a device from its folder, serving its control socket (``device run``, ``idf monitor``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Callable
from typing import Any

from jumpstart.host.device_control import MAX_REQUEST
from jumpstart.host.device_home import DeviceFolder
from jumpstart.idf.device import Device, PeripheralHook
from jumpstart.idf.radio import RadioWorld

__all__ = ["ControlServer", "run_device"]

BUTTON_PIN = 0  # the guide's boot button, GPIO0
MAX_HOLD_S = 60.0


class ControlServer:
    """Answers control requests for one device."""

    def __init__(self, device: Device) -> None:
        self.device = device

    async def handle(self, request: Any) -> Any:
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            raise ValueError('a request is a JSON object with a "cmd"')
        cmd = request["cmd"]
        if cmd == "status":
            return self.device.status()
        if cmd == "press":
            hold = float(request.get("hold", 0.1))
            pin = int(request.get("pin", BUTTON_PIN))
            if not 0 < hold <= MAX_HOLD_S:
                raise ValueError(f"hold must be between 0 and {MAX_HOLD_S:g} seconds")
            self.device.gpio.drive(pin, 0)
            try:
                await asyncio.sleep(hold)
            finally:
                self.device.gpio.drive(pin, None)
            # Let the button's glitch filter and the app react before answering.
            await asyncio.sleep(0.08)
            return self.device.status()
        if cmd == "restart":
            self.device.restart()
            return {"restarting": True}
        if cmd == "power_cut":
            self.device.power_cut()
            return {"power_cut": True}
        if cmd == "stop":
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.device.stop()))
            return {"stopping": True}
        raise ValueError(f"unknown command {cmd!r} (status, press, restart, power_cut, stop)")

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            line = await reader.readline()
            if len(line) > MAX_REQUEST:
                reply: dict[str, Any] = {"ok": False, "error": "request too long"}
            else:
                try:
                    reply = {"ok": True, "result": await self.handle(json.loads(line))}
                except (ValueError, TypeError) as err:
                    reply = {"ok": False, "error": str(err)}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def run_device(
    folder: DeviceFolder,
    console: Callable[[str], None],
    *,
    peripherals: list[PeripheralHook] | None = None,
    world: RadioWorld | None = None,
) -> None:
    """Boot the device in ``folder`` and run it until SIGINT/SIGTERM or a ``stop`` request."""
    flash = folder.open_flash()
    device = Device(
        folder.name,
        flash,
        folder.efuse(),
        console=console,
        peripherals=peripherals,
        world=world,
        security=folder.security(),
        chip=folder.chip(),
    )
    server = ControlServer(device)
    folder.control_path.unlink(missing_ok=True)
    listener = await asyncio.start_unix_server(
        server.serve_client, path=str(folder.control_path), limit=MAX_REQUEST + 1
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(device.stop()))
    try:
        await device.run()
    finally:
        listener.close()
        await listener.wait_closed()
        folder.control_path.unlink(missing_ok=True)
        flash.close()
