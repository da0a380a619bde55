from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WifiStationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    Connected: _ClassVar[WifiStationState]
    Connecting: _ClassVar[WifiStationState]
    Disconnected: _ClassVar[WifiStationState]
    ConnectionFailed: _ClassVar[WifiStationState]

class WifiConnectFailedReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AuthError: _ClassVar[WifiConnectFailedReason]
    NetworkNotFound: _ClassVar[WifiConnectFailedReason]

class WifiAuthMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    Open: _ClassVar[WifiAuthMode]
    WEP: _ClassVar[WifiAuthMode]
    WPA_PSK: _ClassVar[WifiAuthMode]
    WPA2_PSK: _ClassVar[WifiAuthMode]
    WPA_WPA2_PSK: _ClassVar[WifiAuthMode]
    WPA2_ENTERPRISE: _ClassVar[WifiAuthMode]
    WPA3_PSK: _ClassVar[WifiAuthMode]
    WPA2_WPA3_PSK: _ClassVar[WifiAuthMode]
Connected: WifiStationState
Connecting: WifiStationState
Disconnected: WifiStationState
ConnectionFailed: WifiStationState
AuthError: WifiConnectFailedReason
NetworkNotFound: WifiConnectFailedReason
Open: WifiAuthMode
WEP: WifiAuthMode
WPA_PSK: WifiAuthMode
WPA2_PSK: WifiAuthMode
WPA_WPA2_PSK: WifiAuthMode
WPA2_ENTERPRISE: WifiAuthMode
WPA3_PSK: WifiAuthMode
WPA2_WPA3_PSK: WifiAuthMode

class WifiAttemptFailed(_message.Message):
    __slots__ = ("attempts_remaining",)
    ATTEMPTS_REMAINING_FIELD_NUMBER: _ClassVar[int]
    attempts_remaining: int
    def __init__(self, attempts_remaining: _Optional[int] = ...) -> None: ...

class WifiConnectedState(_message.Message):
    __slots__ = ("ip4_addr", "auth_mode", "ssid", "bssid", "channel")
    IP4_ADDR_FIELD_NUMBER: _ClassVar[int]
    AUTH_MODE_FIELD_NUMBER: _ClassVar[int]
    SSID_FIELD_NUMBER: _ClassVar[int]
    BSSID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ip4_addr: str
    auth_mode: WifiAuthMode
    ssid: bytes
    bssid: bytes
    channel: int
    def __init__(self, ip4_addr: _Optional[str] = ..., auth_mode: _Optional[_Union[WifiAuthMode, str]] = ..., ssid: _Optional[bytes] = ..., bssid: _Optional[bytes] = ..., channel: _Optional[int] = ...) -> None: ...
