"""``iot_button``: a push button on a GPIO, with glitch filtering and hold-time callbacks.

Callbacks the guide uses: on release (``BUTTON_CB_RELEASE``), on press (``BUTTON_CB_PUSH``),
and after a hold of N seconds, either while still held (``iot_button_add_on_press_cb``) or on
the release that ends such a hold (``iot_button_add_on_release_cb``). A level change counts only
once it has been stable for the glitch filter time (esp-iot-solution's
``CONFIG_IO_GLITCH_FILTER_TIME_MS``, 50 ms by default). Debouncing *presses* (the guide's
300 ms) is the application's business, as in the guide.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from jumpstart.idf.gpio import Gpio, GpioIntrType, GpioMode, GpioPull
from jumpstart.idf.timer import EspTimer, TimerService

__all__ = ["GLITCH_FILTER_MS", "Button"]

GLITCH_FILTER_MS = 50

Callback = Callable[[], None]


@dataclass(slots=True)
class _HoldCallback:
    seconds: float
    callback: Callback
    on_release: bool
    timer: EspTimer | None = None
    reached: bool = False


class Button:
    """A button on ``pin``; ``active_level`` is the level while pressed (0 for GPIO0 boot)."""

    def __init__(
        self,
        gpio: Gpio,
        timers: TimerService,
        pin: int,
        active_level: int = 0,
        *,
        glitch_filter_ms: int = GLITCH_FILTER_MS,
    ) -> None:
        self._gpio = gpio
        self._timers = timers
        self.pin = pin
        self.active_level = active_level
        self._filter_us = glitch_filter_ms * 1000
        self._press: list[Callback] = []
        self._release: list[Callback] = []
        self._holds: list[_HoldCallback] = []
        pull = GpioPull.PULLUP if active_level == 0 else GpioPull.PULLDOWN
        gpio.config(pin, GpioMode.INPUT, pull, GpioIntrType.ANYEDGE)
        self.pressed = gpio.get_level(pin) == active_level
        self._settle = timers.create(self._settled, f"button{pin}")
        gpio.isr_handler_add(pin, self._edge)

    def on_press(self, callback: Callback) -> None:
        self._press.append(callback)

    def on_release(self, callback: Callback) -> None:
        self._release.append(callback)

    def on_held(self, seconds: float, callback: Callback) -> None:
        """Call ``callback`` once the button has been held ``seconds``, while still held."""
        self._holds.append(_HoldCallback(seconds, callback, on_release=False))

    def on_released_after(self, seconds: float, callback: Callback) -> None:
        """Call ``callback`` on a release that ends a hold of at least ``seconds``."""
        self._holds.append(_HoldCallback(seconds, callback, on_release=True))

    def delete(self) -> None:
        self._gpio.isr_handler_remove(self.pin)
        self._settle.delete()
        for hold in self._holds:
            if hold.timer is not None:
                hold.timer.delete()

    def _edge(self, _pin: int) -> None:
        # Every edge restarts the filter: the level is read once it has been quiet long enough.
        self._settle.restart(self._filter_us)

    def _settled(self) -> None:
        pressed = self._gpio.get_level(self.pin) == self.active_level
        if pressed == self.pressed:
            return
        self.pressed = pressed
        if pressed:
            for hold in self._holds:
                hold.reached = False
                if hold.timer is None:
                    hold.timer = self._timers.create(
                        functools.partial(self._held, hold), f"button{self.pin}_hold"
                    )
                hold.timer.stop()
                hold.timer.start_once(max(0, int(hold.seconds * 1e6) - self._filter_us))
            for callback in list(self._press):
                callback()
        else:
            for callback in list(self._release):
                callback()
            for hold in self._holds:
                if hold.timer is not None:
                    hold.timer.stop()
                if hold.reached and hold.on_release:
                    hold.callback()
                hold.reached = False

    def _held(self, hold: _HoldCallback) -> None:
        hold.reached = True
        if not hold.on_release:
            hold.callback()
