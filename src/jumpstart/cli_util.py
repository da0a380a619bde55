"""Argument parsing shared by the CLI modules."""

from __future__ import annotations

from typing import Any

import typer

from jumpstart.errors import InputError

__all__ = ["command_group", "parse_size"]

# -h as well as --help, as ESP-IDF's tools (argparse) accept.
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


def command_group(**options: Any) -> typer.Typer:
    """A command group with the project's help: -h, and click's plain layout (options as
    ESP-IDF's tools list them; flags do not show a ``<bool>`` type)."""
    settings = {**HELP_OPTIONS, **options.pop("context_settings", {})}
    return typer.Typer(rich_markup_mode=None, context_settings=settings, **options)


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
