import asyncio
from enum import Enum, auto
from typing import Any

import pytest

from jumpstart.idf.event import EventLoop


class Wifi(Enum):
    STA_START = auto()
    STA_CONNECTED = auto()


class Ip(Enum):
    STA_GOT_IP = auto()


def test_handlers_run_in_post_order_for_their_events() -> None:
    seen: list[tuple[str, Enum, Any]] = []

    async def main() -> None:
        loop = EventLoop()
        loop.register(Wifi.STA_START, lambda e, d: seen.append(("start", e, d)))
        loop.register(Wifi, lambda e, d: seen.append(("any wifi", e, d)))

        async def async_handler(event: Enum, data: Any) -> None:
            await asyncio.sleep(0)
            seen.append(("ip", event, data))

        loop.register(Ip.STA_GOT_IP, async_handler)
        loop.start()
        loop.post(Wifi.STA_START)
        loop.post(Ip.STA_GOT_IP, "10.0.0.2")
        loop.post(Wifi.STA_CONNECTED, {"ssid": "home"})
        await asyncio.sleep(0.01)
        await loop.stop()

    asyncio.run(main())
    assert seen == [
        ("start", Wifi.STA_START, None),
        ("any wifi", Wifi.STA_START, None),
        ("ip", Ip.STA_GOT_IP, "10.0.0.2"),
        ("any wifi", Wifi.STA_CONNECTED, {"ssid": "home"}),
    ]


def test_unregistered_handler_is_not_called_and_errors_are_reported() -> None:
    errors: list[tuple[Enum, BaseException]] = []
    calls: list[Enum] = []

    async def main() -> None:
        loop = EventLoop(on_error=lambda e, err: errors.append((e, err)))
        entry = loop.register(Wifi, lambda e, d: calls.append(e))
        loop.register(Wifi.STA_START, lambda e, d: 1 / 0)
        await loop.dispatch(Wifi.STA_START)
        loop.unregister(entry)
        await loop.dispatch(Wifi.STA_START)

    asyncio.run(main())
    assert calls == [Wifi.STA_START]
    assert [type(err) for _, err in errors] == [ZeroDivisionError, ZeroDivisionError]


def test_without_an_error_hook_a_failing_handler_raises() -> None:
    async def main() -> None:
        loop = EventLoop()
        loop.register(Wifi.STA_START, lambda e, d: 1 / 0)
        await loop.dispatch(Wifi.STA_START)

    with pytest.raises(ZeroDivisionError):
        asyncio.run(main())
