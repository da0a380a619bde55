"""1_hello_world: the guide's first app."""

from jumpstart.idf.app_context import AppContext


async def app_main(ctx: AppContext) -> None:
    i = 0
    while True:
        ctx.log.print(f"[{i}] Hello world!")
        i += 1
        await ctx.delay_ms(5000)
