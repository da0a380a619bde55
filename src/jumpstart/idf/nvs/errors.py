"""The NVS exception family: one class, the ``ESP_ERR_NVS_*`` code says which error."""

from __future__ import annotations

from jumpstart.idf.esp_err import EspErr, EspError

__all__ = ["NvsError"]


class NvsError(EspError):
    """An nvs_flash API failed; ``code`` is the ``esp_err_t`` ESP-IDF returns in that case."""

    def __init__(self, code: EspErr, message: str = "") -> None:
        super().__init__(code, message)
