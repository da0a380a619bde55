"""outlet: the finished product (the guide's 7_mfg).

Everything of 6_ota, with the device's identity read from the factory NVS partition instead
of being built into the image: the proof of possession for provisioning, and the thing name,
endpoint and credentials for the cloud.
"""

from jumpstart.idf.app_context import AppContext

from ..app_driver import AppDriver
from ..network import Network, factory_string
from ..ota_agent import OtaAgent, OtaJobs
from ..outlet_cloud import CloudCredentials, OutletCloud

TAG = "app_main"


async def app_main(ctx: AppContext) -> None:
    ctx.nvs.init()
    network = Network(ctx)
    driver = AppDriver(ctx, on_long_press=network.reset_to_factory)
    serial = factory_string(ctx, "serial_no")
    if serial is not None:
        ctx.log.i(TAG, f"Serial number {serial}")
    credentials = CloudCredentials.factory(ctx)
    if credentials is None:
        ctx.log.e(
            TAG,
            "No cloud credentials in the factory partition: the outlet works offline. "
            "Write its factory data (jumpstart run does, or jumpstart mfg) and restart.",
        )
        await network.start()
        return
    cloud = OutletCloud(ctx, driver, credentials)
    agent = OtaAgent(ctx, cloud)
    OtaJobs(ctx, cloud, agent)
    await network.start()
    cloud.start()
