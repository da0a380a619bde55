"""``esp_secure_cert_mgr`` on the device: the certificate, key and CA of the
``esp_secure_cert`` partition (TLV format), as ``esp_secure_cert_get_device_cert`` and its
siblings return them: the stored value, PEM with its NUL."""

from __future__ import annotations

from jumpstart.formats.esp_secure_cert import (
    PARTITION_LABEL,
    PARTITION_TYPE,
    SecureCertEntry,
    TlvType,
    find_entry,
    parse_partition,
)
from jumpstart.idf.esp_err import EspErr, EspError
from jumpstart.idf.partition import PartitionMap

__all__ = ["EspSecureCert"]


class EspSecureCert:
    """The parsed partition (found by label and type, any subtype, as the component does)."""

    def __init__(self, entries: list[SecureCertEntry]) -> None:
        self.entries = entries

    @classmethod
    def find(cls, partitions: PartitionMap) -> EspSecureCert | None:
        """The partition's entries, or None when the table has no esp_secure_cert partition.
        A partition that does not parse is ESP_FAIL, as a failed CRC check is there."""
        found = partitions.find(PARTITION_TYPE, None, PARTITION_LABEL)
        if not found:
            return None
        partition = found[0]
        try:
            entries = parse_partition(partition.read(0, partition.size))
        except ValueError as err:
            raise EspError(EspErr.ESP_FAIL, str(err)) from None
        return cls(entries)

    def _get(self, kind: TlvType) -> bytes:
        value = find_entry(self.entries, kind)
        if value is None:
            raise EspError(EspErr.ESP_ERR_NOT_FOUND, f"no {kind.name} in esp_secure_cert")
        return value

    def device_cert(self) -> bytes:
        """``esp_secure_cert_get_device_cert``."""
        return self._get(TlvType.DEV_CERT)

    def priv_key(self) -> bytes:
        """``esp_secure_cert_get_priv_key``."""
        return self._get(TlvType.PRIV_KEY)

    def ca_cert(self) -> bytes:
        """``esp_secure_cert_get_ca_cert``."""
        return self._get(TlvType.CA_CERT)
