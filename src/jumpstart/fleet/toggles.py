"""Toggling outlets from the cloud's side and timing it at the relay's GPIO: the REST API as
an operator, the latency samples, their percentiles."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from jumpstart.fleet.fleet import FleetDevice

__all__ = ["RELAY_GPIO", "Percentiles", "RestClient", "client_context", "relay_switch"]

RELAY_GPIO = 27  # the outlet's output_gpio (apps/outlet/app.toml)


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p95: float
    p99: float

    @classmethod
    def of(cls, samples: list[float]) -> Percentiles:
        ordered = sorted(samples)

        def at(p: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 3)

        return cls(at(50), at(95), at(99))


def client_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(cert, key)
    return context


async def relay_switch(member: FleetDevice, send: Callable[[bool], Awaitable[None]]) -> float:
    """Flip one outlet's relay through ``send``; ms until its GPIO shows the new level."""
    loop = asyncio.get_running_loop()
    gpio = member.device.gpio
    wanted = 0 if gpio.output_level(RELAY_GPIO) else 1
    switched: asyncio.Future[float] = loop.create_future()

    def watch(pin: int, level: int) -> None:
        if pin == RELAY_GPIO and level == wanted and not switched.done():
            switched.set_result(time.perf_counter())

    gpio.watch_outputs(watch)
    try:
        sent = time.perf_counter()
        await send(bool(wanted))
        return (await asyncio.wait_for(switched, 10) - sent) * 1000
    finally:
        gpio.unwatch_outputs(watch)


class RestClient:
    """Kept-alive HTTPS connections to the REST API (one per thread), as the operator."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.port, self.context = port, context
        self._local = threading.local()

    def post(self, thing: str, on: bool) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection("localhost", self.port, context=self.context)
            self._local.conn = conn
        body = json.dumps({"state": {"desired": {"output": on}}})
        conn.request("POST", f"/things/{thing}/shadow", body=body)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"REST POST {thing}: HTTP {response.status}")
