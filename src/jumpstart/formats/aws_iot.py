"""AWS IoT reserved topic names, shared by the cloud (which serves them) and devices.

Device Shadow: ``$aws/things/{thing}/shadow[/name/{shadow}]/{get|update|delete}[/...]``;
Jobs: ``$aws/things/{thing}/jobs/...`` (AWS IoT developer guide, "Reserved topics").
"""

from __future__ import annotations

from enum import Enum

__all__ = ["ShadowOp", "jobs_prefix", "shadow_prefix", "shadow_topic"]


class ShadowOp(Enum):
    GET = "get"
    UPDATE = "update"
    DELETE = "delete"


def shadow_prefix(thing: str, name: str = "") -> str:
    """``$aws/things/{thing}/shadow``, or ``.../shadow/name/{name}`` for a named shadow."""
    base = f"$aws/things/{thing}/shadow"
    return f"{base}/name/{name}" if name else base


def shadow_topic(thing: str, op: ShadowOp, suffix: str = "", name: str = "") -> str:
    """A shadow topic: ``shadow_topic("t", ShadowOp.UPDATE, "delta")``."""
    topic = f"{shadow_prefix(thing, name)}/{op.value}"
    return f"{topic}/{suffix}" if suffix else topic


def jobs_prefix(thing: str) -> str:
    return f"$aws/things/{thing}/jobs"
