"""5_cloud: the outlet on the network, its state in the cloud's Device Shadow.

Provisioning as in 4_network_config; then a mutual-TLS MQTT connection with the credentials
embedded from cloud_cfg/, and the output kept in sync with the thing's shadow.
"""

from jumpstart.idf.app_context import AppContext

from ..app_driver import AppDriver
from ..network import Network
from ..outlet_cloud import CloudCredentials, OutletCloud


async def app_main(ctx: AppContext) -> None:
    ctx.nvs.init()
    network = Network(ctx)
    driver = AppDriver(ctx, on_long_press=network.reset_to_factory)
    cloud = OutletCloud(ctx, driver, CloudCredentials.embedded(ctx))
    await network.start()
    cloud.start()
