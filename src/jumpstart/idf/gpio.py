"""``driver/gpio``: the pins of a simulated ESP32, driven from outside like real buttons.

An input pin reads what the outside world drives it to, or its pull resistor when nothing
drives it (a floating pin reads 0). Outputs are observable, which is how a relay is "seen".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from jumpstart.idf.esp_err import EspErr, EspError

__all__ = ["Gpio", "GpioIntrType", "GpioMode", "GpioPull", "PinState"]

# ESP32 GPIOs (datasheet "Pin Overview"): 20, 24 and 28-31 do not exist; 34-39 are input only.
ESP32_PINS = frozenset([*range(0, 20), 21, 22, 23, 25, 26, 27, *range(32, 40)])
ESP32_INPUT_ONLY = frozenset(range(34, 40))


class GpioMode(Enum):
    DISABLE = "disable"
    INPUT = "input"
    OUTPUT = "output"
    INPUT_OUTPUT = "input_output"


class GpioPull(Enum):
    FLOATING = "floating"
    PULLUP = "pullup"
    PULLDOWN = "pulldown"


class GpioIntrType(Enum):
    DISABLE = "disable"
    POSEDGE = "posedge"
    NEGEDGE = "negedge"
    ANYEDGE = "anyedge"


@dataclass(slots=True)
class PinState:
    mode: GpioMode = GpioMode.DISABLE
    pull: GpioPull = GpioPull.FLOATING
    output: int = 0
    driven: int | None = None  # what the outside world drives an input to; None = nothing
    intr: GpioIntrType = GpioIntrType.DISABLE


IsrHandler = Callable[[int], None]
OutputWatcher = Callable[[int, int], None]


class Gpio:
    """One device's GPIO matrix. Interrupt handlers run on the device's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._pins: dict[int, PinState] = {}
        self._isr: dict[int, IsrHandler] = {}
        self._watchers: list[OutputWatcher] = []

    def set_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver interrupts on ``loop`` (the device's, from its first boot on)."""
        self._loop = loop

    def _pin(self, pin: int) -> PinState:
        if pin not in ESP32_PINS:
            raise EspError(EspErr.ESP_ERR_INVALID_ARG, f"GPIO{pin} does not exist on the ESP32")
        return self._pins.setdefault(pin, PinState())

    # -- the firmware side -------------------------------------------------------------
    def config(
        self,
        pin: int,
        mode: GpioMode,
        pull: GpioPull = GpioPull.FLOATING,
        intr: GpioIntrType = GpioIntrType.DISABLE,
    ) -> None:
        """``gpio_config`` for one pin."""
        state = self._pin(pin)
        if mode in (GpioMode.OUTPUT, GpioMode.INPUT_OUTPUT) and pin in ESP32_INPUT_ONLY:
            raise EspError(EspErr.ESP_ERR_INVALID_ARG, f"GPIO{pin} is input only")
        state.mode, state.pull, state.intr = mode, pull, intr

    def set_level(self, pin: int, level: int) -> None:
        state = self._pin(pin)
        if state.mode not in (GpioMode.OUTPUT, GpioMode.INPUT_OUTPUT):
            raise EspError(EspErr.ESP_ERR_INVALID_STATE, f"GPIO{pin} is not an output")
        level = 1 if level else 0
        if level != state.output:
            state.output = level
            for watcher in list(self._watchers):
                watcher(pin, level)

    def get_level(self, pin: int) -> int:
        state = self._pin(pin)
        if state.mode in (GpioMode.OUTPUT, GpioMode.INPUT_OUTPUT) and state.driven is None:
            return state.output
        if state.mode is GpioMode.OUTPUT:
            return 0  # input buffer disabled
        return self._input_level(state)

    def isr_handler_add(self, pin: int, handler: IsrHandler) -> None:
        self._pin(pin)
        self._isr[pin] = handler

    def isr_handler_remove(self, pin: int) -> None:
        self._isr.pop(pin, None)

    # -- the outside world -------------------------------------------------------------
    def drive(self, pin: int, level: int | None) -> None:
        """Drive an input to ``level`` (like a pressed button), or release it (None)."""
        state = self._pin(pin)
        before = self._input_level(state)
        state.driven = None if level is None else (1 if level else 0)
        after = self._input_level(state)
        if before != after:
            self._edge(pin, state, after)

    def output_level(self, pin: int) -> int:
        """What an output pin drives (the relay's input), 0 if it is not an output."""
        state = self._pin(pin)
        return state.output if state.mode in (GpioMode.OUTPUT, GpioMode.INPUT_OUTPUT) else 0

    def outputs(self) -> dict[int, int]:
        return {
            pin: s.output
            for pin, s in sorted(self._pins.items())
            if s.mode in (GpioMode.OUTPUT, GpioMode.INPUT_OUTPUT)
        }

    def watch_outputs(self, watcher: OutputWatcher) -> None:
        self._watchers.append(watcher)

    def unwatch_outputs(self, watcher: OutputWatcher) -> None:
        self._watchers.remove(watcher)

    def reset(self) -> None:
        """A chip reset: every pin back to its default, handlers gone; outside drives stay."""
        for state in self._pins.values():
            state.mode, state.pull, state.output = GpioMode.DISABLE, GpioPull.FLOATING, 0
            state.intr = GpioIntrType.DISABLE
        self._isr.clear()
        self._watchers.clear()

    # -- internals ---------------------------------------------------------------------
    @staticmethod
    def _input_level(state: PinState) -> int:
        if state.driven is not None:
            return state.driven
        return 1 if state.pull is GpioPull.PULLUP else 0

    def _edge(self, pin: int, state: PinState, level: int) -> None:
        handler = self._isr.get(pin)
        if handler is None or state.mode not in (GpioMode.INPUT, GpioMode.INPUT_OUTPUT):
            return
        wanted = {
            GpioIntrType.ANYEDGE: True,
            GpioIntrType.POSEDGE: level == 1,
            GpioIntrType.NEGEDGE: level == 0,
            GpioIntrType.DISABLE: False,
        }[state.intr]
        if not wanted:
            return
        if self._loop is None:
            handler(pin)
        else:
            self._loop.call_soon_threadsafe(handler, pin)
