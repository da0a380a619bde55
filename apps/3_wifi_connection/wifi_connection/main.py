"""3_wifi_connection: the outlet on a hard-coded Wi-Fi network."""

from enum import Enum
from typing import Any

from jumpstart.idf.app_context import AppContext
from jumpstart.idf.wifi import GotIp, IpEvent, StaConfig, WifiEvent, WifiMode

from ..app_driver import AppDriver

TAG = "app_main"


async def app_main(ctx: AppContext) -> None:
    ctx.nvs.init()  # nvs_flash_init: the Wi-Fi driver keeps its settings there
    AppDriver(ctx)
    wifi = ctx.wifi
    assert wifi is not None

    def event_handler(event: Enum, data: Any) -> None:
        if event is WifiEvent.STA_START:
            wifi.connect()
        elif event is IpEvent.STA_GOT_IP:
            assert isinstance(data, GotIp)
            ctx.log.i(TAG, f"Connected with IP Address:{data.ip}")
        elif event is WifiEvent.STA_DISCONNECTED:
            ctx.log.i(TAG, f"Disconnected (reason {data.reason.value} {data.reason.name})")
            wifi.connect()

    ctx.events.register(WifiEvent, event_handler)
    ctx.events.register(IpEvent, event_handler)
    wifi.set_mode(WifiMode.STA)
    wifi.set_config(StaConfig(ctx.config["wifi_ssid"], ctx.config["wifi_password"]))
    wifi.start()
