"""Argument parsing shared by the CLI modules."""

from __future__ import annotations

from jumpstart.errors import InputError

__all__ = ["parse_size"]


def parse_size(text: str) -> int:
    """4MB, 0x400000, 4096K ... (a bad value is an input error, exit 2)."""
    lowered = text.strip().lower().removesuffix("b")
    try:
        for suffix, multiplier in (("k", 1024), ("m", 1024 * 1024)):
            if lowered.endswith(suffix):
                return int(lowered[:-1], 0) * multiplier
        return int(lowered, 0)
    except ValueError:
        raise InputError(f"'{text}' is not a size (use 0x8000, 32K or 4MB)") from None
