from jumpstart.idf.protocomm.proto import constants_pb2 as _constants_pb2
from jumpstart.idf.wifi_prov.proto import wifi_constants_pb2 as _wifi_constants_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WiFiConfigMsgType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TypeCmdGetStatus: _ClassVar[WiFiConfigMsgType]
    TypeRespGetStatus: _ClassVar[WiFiConfigMsgType]
    TypeCmdSetConfig: _ClassVar[WiFiConfigMsgType]
    TypeRespSetConfig: _ClassVar[WiFiConfigMsgType]
    TypeCmdApplyConfig: _ClassVar[WiFiConfigMsgType]
    TypeRespApplyConfig: _ClassVar[WiFiConfigMsgType]
TypeCmdGetStatus: WiFiConfigMsgType
TypeRespGetStatus: WiFiConfigMsgType
TypeCmdSetConfig: WiFiConfigMsgType
TypeRespSetConfig: WiFiConfigMsgType
TypeCmdApplyConfig: WiFiConfigMsgType
TypeRespApplyConfig: WiFiConfigMsgType

class CmdGetStatus(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RespGetStatus(_message.Message):
    __slots__ = ("status", "sta_state", "fail_reason", "connected", "attempt_failed")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STA_STATE_FIELD_NUMBER: _ClassVar[int]
    FAIL_REASON_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FAILED_FIELD_NUMBER: _ClassVar[int]
    status: _constants_pb2.Status
    sta_state: _wifi_constants_pb2.WifiStationState
    fail_reason: _wifi_constants_pb2.WifiConnectFailedReason
    connected: _wifi_constants_pb2.WifiConnectedState
    attempt_failed: _wifi_constants_pb2.WifiAttemptFailed
    def __init__(self, status: _Optional[_Union[_constants_pb2.Status, str]] = ..., sta_state: _Optional[_Union[_wifi_constants_pb2.WifiStationState, str]] = ..., fail_reason: _Optional[_Union[_wifi_constants_pb2.WifiConnectFailedReason, str]] = ..., connected: _Optional[_Union[_wifi_constants_pb2.WifiConnectedState, _Mapping]] = ..., attempt_failed: _Optional[_Union[_wifi_constants_pb2.WifiAttemptFailed, _Mapping]] = ...) -> None: ...

class CmdSetConfig(_message.Message):
    __slots__ = ("ssid", "passphrase", "bssid", "channel")
    SSID_FIELD_NUMBER: _ClassVar[int]
    PASSPHRASE_FIELD_NUMBER: _ClassVar[int]
    BSSID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ssid: bytes
    passphrase: bytes
    bssid: bytes
    channel: int
    def __init__(self, ssid: _Optional[bytes] = ..., passphrase: _Optional[bytes] = ..., bssid: _Optional[bytes] = ..., channel: _Optional[int] = ...) -> None: ...

class RespSetConfig(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: _constants_pb2.Status
    def __init__(self, status: _Optional[_Union[_constants_pb2.Status, str]] = ...) -> None: ...

class CmdApplyConfig(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RespApplyConfig(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: _constants_pb2.Status
    def __init__(self, status: _Optional[_Union[_constants_pb2.Status, str]] = ...) -> None: ...

class WiFiConfigPayload(_message.Message):
    __slots__ = ("msg", "cmd_get_status", "resp_get_status", "cmd_set_config", "resp_set_config", "cmd_apply_config", "resp_apply_config")
    MSG_FIELD_NUMBER: _ClassVar[int]
    CMD_GET_STATUS_FIELD_NUMBER: _ClassVar[int]
    RESP_GET_STATUS_FIELD_NUMBER: _ClassVar[int]
    CMD_SET_CONFIG_FIELD_NUMBER: _ClassVar[int]
    RESP_SET_CONFIG_FIELD_NUMBER: _ClassVar[int]
    CMD_APPLY_CONFIG_FIELD_NUMBER: _ClassVar[int]
    RESP_APPLY_CONFIG_FIELD_NUMBER: _ClassVar[int]
    msg: WiFiConfigMsgType
    cmd_get_status: CmdGetStatus
    resp_get_status: RespGetStatus
    cmd_set_config: CmdSetConfig
    resp_set_config: RespSetConfig
    cmd_apply_config: CmdApplyConfig
    resp_apply_config: RespApplyConfig
    def __init__(self, msg: _Optional[_Union[WiFiConfigMsgType, str]] = ..., cmd_get_status: _Optional[_Union[CmdGetStatus, _Mapping]] = ..., resp_get_status: _Optional[_Union[RespGetStatus, _Mapping]] = ..., cmd_set_config: _Optional[_Union[CmdSetConfig, _Mapping]] = ..., resp_set_config: _Optional[_Union[RespSetConfig, _Mapping]] = ..., cmd_apply_config: _Optional[_Union[CmdApplyConfig, _Mapping]] = ..., resp_apply_config: _Optional[_Union[RespApplyConfig, _Mapping]] = ...) -> None: ...
