from jumpstart.idf.protocomm.proto import constants_pb2 as _constants_pb2
from jumpstart.idf.wifi_prov.proto import wifi_constants_pb2 as _wifi_constants_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WiFiScanMsgType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TypeCmdScanStart: _ClassVar[WiFiScanMsgType]
    TypeRespScanStart: _ClassVar[WiFiScanMsgType]
    TypeCmdScanStatus: _ClassVar[WiFiScanMsgType]
    TypeRespScanStatus: _ClassVar[WiFiScanMsgType]
    TypeCmdScanResult: _ClassVar[WiFiScanMsgType]
    TypeRespScanResult: _ClassVar[WiFiScanMsgType]
TypeCmdScanStart: WiFiScanMsgType
TypeRespScanStart: WiFiScanMsgType
TypeCmdScanStatus: WiFiScanMsgType
TypeRespScanStatus: WiFiScanMsgType
TypeCmdScanResult: WiFiScanMsgType
TypeRespScanResult: WiFiScanMsgType

class CmdScanStart(_message.Message):
    __slots__ = ("blocking", "passive", "group_channels", "period_ms")
    BLOCKING_FIELD_NUMBER: _ClassVar[int]
    PASSIVE_FIELD_NUMBER: _ClassVar[int]
    GROUP_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    PERIOD_MS_FIELD_NUMBER: _ClassVar[int]
    blocking: bool
    passive: bool
    group_channels: int
    period_ms: int
    def __init__(self, blocking: _Optional[bool] = ..., passive: _Optional[bool] = ..., group_channels: _Optional[int] = ..., period_ms: _Optional[int] = ...) -> None: ...

class RespScanStart(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CmdScanStatus(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RespScanStatus(_message.Message):
    __slots__ = ("scan_finished", "result_count")
    SCAN_FINISHED_FIELD_NUMBER: _ClassVar[int]
    RESULT_COUNT_FIELD_NUMBER: _ClassVar[int]
    scan_finished: bool
    result_count: int
    def __init__(self, scan_finished: _Optional[bool] = ..., result_count: _Optional[int] = ...) -> None: ...

class CmdScanResult(_message.Message):
    __slots__ = ("start_index", "count")
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    start_index: int
    count: int
    def __init__(self, start_index: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class WiFiScanResult(_message.Message):
    __slots__ = ("ssid", "channel", "rssi", "bssid", "auth")
    SSID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    RSSI_FIELD_NUMBER: _ClassVar[int]
    BSSID_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    ssid: bytes
    channel: int
    rssi: int
    bssid: bytes
    auth: _wifi_constants_pb2.WifiAuthMode
    def __init__(self, ssid: _Optional[bytes] = ..., channel: _Optional[int] = ..., rssi: _Optional[int] = ..., bssid: _Optional[bytes] = ..., auth: _Optional[_Union[_wifi_constants_pb2.WifiAuthMode, str]] = ...) -> None: ...

class RespScanResult(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[WiFiScanResult]
    def __init__(self, entries: _Optional[_Iterable[_Union[WiFiScanResult, _Mapping]]] = ...) -> None: ...

class WiFiScanPayload(_message.Message):
    __slots__ = ("msg", "status", "cmd_scan_start", "resp_scan_start", "cmd_scan_status", "resp_scan_status", "cmd_scan_result", "resp_scan_result")
    MSG_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CMD_SCAN_START_FIELD_NUMBER: _ClassVar[int]
    RESP_SCAN_START_FIELD_NUMBER: _ClassVar[int]
    CMD_SCAN_STATUS_FIELD_NUMBER: _ClassVar[int]
    RESP_SCAN_STATUS_FIELD_NUMBER: _ClassVar[int]
    CMD_SCAN_RESULT_FIELD_NUMBER: _ClassVar[int]
    RESP_SCAN_RESULT_FIELD_NUMBER: _ClassVar[int]
    msg: WiFiScanMsgType
    status: _constants_pb2.Status
    cmd_scan_start: CmdScanStart
    resp_scan_start: RespScanStart
    cmd_scan_status: CmdScanStatus
    resp_scan_status: RespScanStatus
    cmd_scan_result: CmdScanResult
    resp_scan_result: RespScanResult
    def __init__(self, msg: _Optional[_Union[WiFiScanMsgType, str]] = ..., status: _Optional[_Union[_constants_pb2.Status, str]] = ..., cmd_scan_start: _Optional[_Union[CmdScanStart, _Mapping]] = ..., resp_scan_start: _Optional[_Union[RespScanStart, _Mapping]] = ..., cmd_scan_status: _Optional[_Union[CmdScanStatus, _Mapping]] = ..., resp_scan_status: _Optional[_Union[RespScanStatus, _Mapping]] = ..., cmd_scan_result: _Optional[_Union[CmdScanResult, _Mapping]] = ..., resp_scan_result: _Optional[_Union[RespScanResult, _Mapping]] = ...) -> None: ...
