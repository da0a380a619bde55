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
from jumpstart.idf.wifi_prov.scheme import ProvScheme, SchemeBle, SchemeSoftAP

__all__ = [
    "ConnectedInfo",
    "FailReason",
    "ProvConfig",
    "ProvScheme",
    "ProvState",
    "SchemeBle",
    "SchemeSoftAP",
    "StaState",
    "WifiProvEvent",
    "WifiProvManager",
]
