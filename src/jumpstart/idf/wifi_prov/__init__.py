"""``wifi_provisioning``: the manager that takes Wi-Fi credentials over protocomm."""

from jumpstart.idf.wifi_prov.manager import (
    ConnectedInfo,
    FailReason,
    ProvConfig,
    ProvState,
    StaState,
    WifiProvEvent,
    WifiProvManager,
)
from jumpstart.idf.wifi_prov.scheme import ProvScheme, SchemeSoftAP

__all__ = [
    "ConnectedInfo",
    "FailReason",
    "ProvConfig",
    "ProvScheme",
    "ProvState",
    "SchemeSoftAP",
    "StaState",
    "WifiProvEvent",
    "WifiProvManager",
]
