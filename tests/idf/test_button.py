"""The button against a simulated GPIO0 (active low, like the DevKitC boot button)."""

import asyncio

from jumpstart.idf.button import Button
from jumpstart.idf.gpio import Gpio
from jumpstart.idf.timer import TimerService


async def press(gpio: Gpio, hold: float, pin: int = 0) -> None:
    gpio.drive(pin, 0)
    await asyncio.sleep(hold)
    gpio.drive(pin, None)


def run(scenario) -> list[str]:  # type: ignore[no-untyped-def]
    events: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        gpio = Gpio(loop)
        button = Button(gpio, TimerService(loop), 0, active_level=0, glitch_filter_ms=20)
        button.on_press(lambda: events.append("press"))
        button.on_release(lambda: events.append("release"))
        button.on_held(0.3, lambda: events.append("held 0.3"))
        button.on_released_after(0.3, lambda: events.append("released after 0.3"))
        await scenario(gpio)
        await asyncio.sleep(0.06)

    asyncio.run(main())
    return events


def test_short_press_gives_press_then_release() -> None:
    assert run(lambda gpio: press(gpio, 0.08)) == ["press", "release"]


def test_glitches_shorter_than_the_filter_are_ignored() -> None:
    async def bounce(gpio: Gpio) -> None:
        for _ in range(5):
            gpio.drive(0, 0)
            await asyncio.sleep(0.002)
            gpio.drive(0, None)
            await asyncio.sleep(0.002)

    assert run(bounce) == []


def test_contact_bounce_around_a_press_gives_one_press() -> None:
    async def bouncy_press(gpio: Gpio) -> None:
        for _ in range(3):
            gpio.drive(0, 0)
            await asyncio.sleep(0.001)
            gpio.drive(0, None)
            await asyncio.sleep(0.001)
        await press(gpio, 0.1)

    assert run(bouncy_press) == ["press", "release"]


def test_long_hold_fires_while_held_and_on_release() -> None:
    events = run(lambda gpio: press(gpio, 0.45))
    assert events == ["press", "held 0.3", "release", "released after 0.3"]


def test_a_hold_shorter_than_the_threshold_fires_neither() -> None:
    assert run(lambda gpio: press(gpio, 0.2)) == ["press", "release"]
