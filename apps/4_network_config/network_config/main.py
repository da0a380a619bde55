"""4_network_config: the outlet takes its Wi-Fi network over unified provisioning.

The provisioning itself lives in the network component, shared with the later apps. Holding
the button for 3 s resets the outlet to factory settings: Wi-Fi credentials are erased and it
reboots.
"""

from jumpstart.idf.app_context import AppContext

from ..app_driver import AppDriver
from ..network import Network


async def app_main(ctx: AppContext) -> None:
    ctx.nvs.init()
    network = Network(ctx)
    AppDriver(ctx, on_long_press=network.reset_to_factory)
    await network.start()
