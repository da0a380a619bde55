"""6_ota: 5_cloud plus firmware upgrades over the air.

An ``ota_url`` in the shadow's desired state, or an OTA job, upgrades the outlet from an HTTPS
server that the embedded server.cert vouches for; a new firmware that does not reach the cloud
is rolled back.
"""

from jumpstart.idf.app_context import AppContext

from ..app_driver import AppDriver
from ..network import Network
from ..ota_agent import OtaAgent, OtaJobs
from ..outlet_cloud import CloudCredentials, OutletCloud


async def app_main(ctx: AppContext) -> None:
    ctx.nvs.init()
    network = Network(ctx)
    driver = AppDriver(ctx, on_long_press=network.reset_to_factory)
    cloud = OutletCloud(ctx, driver, CloudCredentials.embedded(ctx))
    agent = OtaAgent(ctx, cloud)
    OtaJobs(ctx, cloud, agent)
    await network.start()
    cloud.start()
