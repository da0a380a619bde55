"""What ``app_main(ctx)`` receives: the ESP-IDF services of the device it runs on.

Everything the app creates through the context (tasks, timers, buttons, teardown hooks) belongs
to the current boot and is torn down by ``esp_restart``; nothing outlives it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from jumpstart.formats.app_package import AppPackage
from jumpstart.idf.button import Button
from jumpstart.idf.event import EventLoop
from jumpstart.idf.gpio import Gpio
from jumpstart.idf.log import EspLog
from jumpstart.idf.nvs import NvsFlash
from jumpstart.idf.ota import EspOta
from jumpstart.idf.partition import EspPartition, PartitionMap
from jumpstart.idf.timer import TimerService
from jumpstart.idf.wifi import Wifi
from jumpstart.targets import ESP32, ChipProfile

__all__ = ["AppContext"]


@dataclass
class AppContext:
    """The running app's view of its device."""

    device_name: str
    mac: bytes
    app: AppPackage
    running_partition: EspPartition
    partitions: PartitionMap
    log: EspLog
    events: EventLoop
    timers: TimerService
    gpio: Gpio
    nvs: NvsFlash
    restart: Callable[[], None]
    """``esp_restart``: tear down this boot and boot again."""
    tick_ms: Callable[[], int]
    """Milliseconds since boot (``xTaskGetTickCount`` at a 1 kHz tick)."""
    spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]
    wifi: Wifi | None = None
    ota: EspOta | None = None
    chip: ChipProfile = ESP32
    """What the chip can do (esp_chip_info): an app refuses what it lacks."""
    """``esp_ota_ops`` for the running app (None on a layout without OTA slots)."""
    _teardown: list[Callable[[], Any]] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        """The app's build-time configuration (its ``sdkconfig`` values)."""
        return self.app.config

    def embedded(self, name: str) -> bytes:
        """A file embedded in the image (``COMPONENT_EMBED_TXTFILES``)."""
        try:
            return self.app.embedded[name]
        except KeyError:
            raise KeyError(f"no embedded file {name!r} in app {self.app.name!r}") from None

    def button(self, pin: int, active_level: int = 0) -> Button:
        """``iot_button_create``."""
        button = Button(self.gpio, self.timers, pin, active_level)
        self._teardown.append(button.delete)
        return button

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str = "task") -> asyncio.Task[Any]:
        """``xTaskCreate``: a task that ends when the device restarts."""
        return self.spawn(coro, name)

    async def delay_ms(self, ms: int) -> None:
        """``vTaskDelay(ms / portTICK_PERIOD_MS)``."""
        await asyncio.sleep(ms / 1000)

    def on_teardown(self, hook: Callable[[], Any]) -> None:
        """Run ``hook`` when this boot ends (close servers, sockets...)."""
        self._teardown.append(hook)

    def teardown_hooks(self) -> list[Callable[[], Any]]:
        return list(reversed(self._teardown))
