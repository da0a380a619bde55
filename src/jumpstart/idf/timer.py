"""``esp_timer``: one-shot and periodic callbacks on the device's asyncio loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from jumpstart.errors import UsageError

__all__ = ["EspTimer", "TimerService"]


class EspTimer:
    """A timer created by :meth:`TimerService.create`; times are in microseconds as in IDF."""

    def __init__(self, service: TimerService, callback: Callable[[], None], name: str) -> None:
        self._service = service
        self._callback = callback
        self.name = name
        self._handle: asyncio.TimerHandle | None = None
        self._period_us: int | None = None

    @property
    def active(self) -> bool:
        return self._handle is not None

    def start_once(self, timeout_us: int) -> None:
        """``esp_timer_start_once``; starting a running timer is an error, as in IDF."""
        self._arm(timeout_us, None)

    def start_periodic(self, period_us: int) -> None:
        self._arm(period_us, period_us)

    def restart(self, timeout_us: int) -> None:
        """``esp_timer_restart``: stop if running, then start again with a new timeout."""
        period = self._period_us
        self.stop()
        self._arm(timeout_us, timeout_us if period is not None else None)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def delete(self) -> None:
        self.stop()
        self._service.forget(self)

    def _arm(self, delay_us: int, period_us: int | None) -> None:
        if self._handle is not None:
            raise UsageError(f"timer {self.name!r} is already running (ESP_ERR_INVALID_STATE)")
        self._period_us = period_us
        self._handle = self._service.loop.call_later(delay_us / 1e6, self._fire)

    def _fire(self) -> None:
        if self._period_us is not None:
            self._handle = self._service.loop.call_later(self._period_us / 1e6, self._fire)
        else:
            self._handle = None
        self._service.run_callback(self)

    def invoke(self) -> None:
        self._callback()


class TimerService:
    """A device's timers; ``stop_all`` on restart leaves nothing scheduled."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_error: Callable[[EspTimer, BaseException], None] | None = None,
    ) -> None:
        self.loop = loop
        self._timers: list[EspTimer] = []
        self._on_error = on_error

    def create(self, callback: Callable[[], None], name: str = "timer") -> EspTimer:
        timer = EspTimer(self, callback, name)
        self._timers.append(timer)
        return timer

    def forget(self, timer: EspTimer) -> None:
        if timer in self._timers:
            self._timers.remove(timer)

    def run_callback(self, timer: EspTimer) -> None:
        try:
            timer.invoke()
        except Exception as err:
            if self._on_error is None:
                raise
            self._on_error(timer, err)

    def stop_all(self) -> None:
        for timer in list(self._timers):
            timer.delete()
