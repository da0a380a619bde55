import asyncio

import pytest

from jumpstart.errors import UsageError
from jumpstart.idf.timer import TimerService


def test_one_shot_and_periodic_timers_fire_and_stop() -> None:
    fired: list[str] = []

    async def main() -> None:
        timers = TimerService(asyncio.get_running_loop())
        once = timers.create(lambda: fired.append("once"))
        tick = timers.create(lambda: fired.append("tick"))
        once.start_once(10_000)
        tick.start_periodic(20_000)
        with pytest.raises(UsageError, match="already running"):
            once.start_once(1)
        await asyncio.sleep(0.075)
        tick.stop()
        count = fired.count("tick")
        await asyncio.sleep(0.05)
        assert fired.count("tick") == count
        assert not once.active
        assert not tick.active

    asyncio.run(main())
    assert fired.count("once") == 1
    assert 2 <= fired.count("tick") <= 4


def test_restart_postpones_and_stop_all_cancels() -> None:
    fired: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        timers = TimerService(loop)
        start = loop.time()
        timer = timers.create(lambda: fired.append(loop.time() - start))
        timer.start_once(30_000)
        await asyncio.sleep(0.02)
        timer.restart(30_000)  # now due at ~50 ms
        await asyncio.sleep(0.06)
        other = timers.create(lambda: fired.append(-1))
        other.start_once(10_000)
        timers.stop_all()
        await asyncio.sleep(0.03)

    asyncio.run(main())
    assert len(fired) == 1
    assert fired[0] >= 0.045


def test_a_failing_callback_is_reported_not_fatal() -> None:
    errors: list[BaseException] = []

    async def main() -> None:
        timers = TimerService(asyncio.get_running_loop(), on_error=lambda t, e: errors.append(e))
        timers.create(lambda: int("not a number")).start_once(1000)
        await asyncio.sleep(0.01)

    asyncio.run(main())
    assert [type(e) for e in errors] == [ValueError]
