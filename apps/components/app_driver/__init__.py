"""app_driver: the outlet's button and output, shared by the guide's apps (2_drivers on).

Isolated so a product can replace it with its own peripheral, as the guide says.
"""

from collections.abc import Callable

from jumpstart.idf.app_context import AppContext
from jumpstart.idf.gpio import GpioMode

TAG = "app_driver"


class AppDriver:
    def __init__(
        self,
        ctx: AppContext,
        on_long_press: Callable[[], None] | None = None,
        on_toggle: Callable[[bool], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self._on_long_press = on_long_press
        self.on_toggle = on_toggle
        """Called with the new state after a button press switched the output."""
        self.output_gpio = int(ctx.config["output_gpio"])
        self.debounce_ms = int(ctx.config["debounce_ms"])
        self.state = False
        self._previous: int | None = None
        ctx.gpio.config(self.output_gpio, GpioMode.OUTPUT)
        ctx.gpio.set_level(self.output_gpio, 0)
        button = ctx.button(int(ctx.config["button_gpio"]), int(ctx.config["button_active_level"]))
        button.on_release(self._push_btn_cb)
        button.on_released_after(3, self._long_press_cb)

    def _push_btn_cb(self) -> None:
        # Absorb every release within DEBOUNCE_TIME of the last one: one toggle per press.
        current = self.ctx.tick_ms()
        if self._previous is None or current - self._previous > self.debounce_ms:
            self._previous = current
            self.toggle_state()
            if self.on_toggle is not None:
                self.on_toggle(self.state)

    def _long_press_cb(self) -> None:
        self.ctx.log.i(TAG, "Button held for 3 s and released")
        if self._on_long_press is not None:
            self._on_long_press()

    def toggle_state(self) -> None:
        self.set_state(not self.state)

    def set_state(self, on: bool) -> None:
        self.state = on
        self.ctx.gpio.set_level(self.output_gpio, 1 if on else 0)
        self.ctx.log.i(TAG, f"Output {'on' if on else 'off'}")
