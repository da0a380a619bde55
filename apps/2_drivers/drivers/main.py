"""2_drivers: a power outlet without connectivity."""

from jumpstart.idf.app_context import AppContext

from ..app_driver import AppDriver


async def app_main(ctx: AppContext) -> None:
    AppDriver(ctx)
