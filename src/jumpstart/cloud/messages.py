"""What the cloud's engines emit for the message broker to route."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Message"]


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
