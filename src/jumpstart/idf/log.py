"""ESP-IDF style console log: ``I (1234) TAG: message``, one logger per device.

``esp_log_write`` prints a level letter, the milliseconds since boot in parentheses, the tag and
the message (``LOG_FORMAT(letter, format)`` in ``esp_log.h``). Levels filter per tag as with
``esp_log_level_set``; the default is INFO (``CONFIG_LOG_DEFAULT_LEVEL_INFO``).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

__all__ = ["EspLog", "LogLevel"]


class LogLevel(IntEnum):
    """``esp_log_level_t``; a line is printed when its level <= the tag's level."""

    NONE = 0
    ERROR = 1
    WARN = 2
    INFO = 3
    DEBUG = 4
    VERBOSE = 5

    @property
    def letter(self) -> str:
        return "-EWIDV"[self]


class EspLog:
    """A device's logger: formats lines and hands them to ``sink`` (the console)."""

    def __init__(
        self,
        clock_ms: Callable[[], int],
        sink: Callable[[str], None],
        level: LogLevel = LogLevel.INFO,
    ) -> None:
        self._clock_ms = clock_ms
        self._sink = sink
        self.default_level = level
        self._levels: dict[str, LogLevel] = {}

    def level_set(self, tag: str, level: LogLevel) -> None:
        """``esp_log_level_set``: ``"*"`` sets the default for every tag."""
        if tag == "*":
            self.default_level = level
            self._levels.clear()
        else:
            self._levels[tag] = level

    def write(self, level: LogLevel, tag: str, message: str) -> None:
        if level > self._levels.get(tag, self.default_level) or level is LogLevel.NONE:
            return
        self._sink(f"{level.letter} ({self._clock_ms()}) {tag}: {message}")

    def e(self, tag: str, message: str) -> None:
        self.write(LogLevel.ERROR, tag, message)

    def w(self, tag: str, message: str) -> None:
        self.write(LogLevel.WARN, tag, message)

    def i(self, tag: str, message: str) -> None:
        self.write(LogLevel.INFO, tag, message)

    def d(self, tag: str, message: str) -> None:
        self.write(LogLevel.DEBUG, tag, message)

    def v(self, tag: str, message: str) -> None:
        self.write(LogLevel.VERBOSE, tag, message)

    def print(self, text: str) -> None:
        """What ``printf`` does: the text as is, without level or timestamp."""
        for line in text.rstrip("\n").split("\n"):
            self._sink(line)
