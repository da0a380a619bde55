"""``esp_event``: a device's default event loop, typed events, handlers run in order.

Events are posted from anywhere on the device (drivers, timers, the app) and handled one at a
time by the loop's task, in posting order, as ESP-IDF's ``sys_evt`` task does. A handler is
registered for one event, or for every event of a base (``ESP_EVENT_ANY_ID``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["EventHandler", "EventLoop", "RegisteredHandler"]

EventHandler = Callable[[Enum, Any], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class RegisteredHandler:
    """What ``register`` returns; pass it to ``unregister``."""

    base: type[Enum]
    event: Enum | None  # None: every event of ``base``
    handler: EventHandler


class EventLoop:
    """One device's event loop. ``start()`` inside the device's asyncio loop."""

    def __init__(self, on_error: Callable[[Enum, BaseException], None] | None = None) -> None:
        self._handlers: list[RegisteredHandler] = []
        self._queue: asyncio.Queue[tuple[Enum, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._on_error = on_error

    def register(self, event: Enum | type[Enum], handler: EventHandler) -> RegisteredHandler:
        """Call ``handler(event, data)`` for ``event``, or for every event of an Enum class."""
        if isinstance(event, type):
            entry = RegisteredHandler(event, None, handler)
        else:
            entry = RegisteredHandler(type(event), event, handler)
        self._handlers.append(entry)
        return entry

    def unregister(self, entry: RegisteredHandler) -> None:
        if entry in self._handlers:
            self._handlers.remove(entry)

    def post(self, event: Enum, data: Any = None) -> None:
        """Queue an event; handlers run later, on the loop's task."""
        self._queue.put_nowait((event, data))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sys_evt")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            event, data = await self._queue.get()
            await self.dispatch(event, data)

    async def dispatch(self, event: Enum, data: Any = None) -> None:
        """Run the handlers of ``event`` now, in registration order."""
        for entry in list(self._handlers):
            if entry.base is not type(event) or entry.event not in (None, event):
                continue
            try:
                result = entry.handler(event, data)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as err:
                # One failing handler must not stop the loop (ESP-IDF logs and carries on).
                if self._on_error is None:
                    raise
                self._on_error(event, err)
