"""AWS IoT reserved topics: parse shadow and jobs topics, tell request topics from the ones
only the service may publish (spec/cloud.md 2.2 and 3)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from jumpstart.formats.aws_iot import ShadowOp, shadow_prefix

__all__ = [
    "REQUEST_FILTERS",
    "JobsTopic",
    "ShadowOp",
    "ShadowTopic",
    "is_reserved",
    "parse_jobs_topic",
    "parse_shadow_topic",
    "shadow_prefix",
    "thing_of",
]

# botocore iot-data model: shadow names 1-64 of [a-zA-Z0-9:_-] ('$' only for AWS's own).
SHADOW_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,64}")
THING = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
# AWS message broker quota: at most 7 forward slashes in a topic or filter.
MAX_TOPIC_SLASHES = 7


@dataclass(frozen=True, slots=True)
class ShadowTopic:
    thing: str
    name: str  # "" for the classic shadow
    op: ShadowOp


@dataclass(frozen=True, slots=True)
class JobsTopic:
    thing: str
    parts: tuple[str, ...]  # the levels after .../jobs/, e.g. ("start-next",), ("j1", "update")


def thing_of(topic: str) -> str | None:
    """The thing of a ``$aws/things/{thing}/...`` topic or filter."""
    levels = topic.split("/")
    if len(levels) >= 3 and levels[0] == "$aws" and levels[1] == "things":
        return levels[2]
    return None


def parse_shadow_topic(topic: str) -> ShadowTopic | None:
    """A client request topic (get/update/delete), or None."""
    levels = topic.split("/")
    if len(levels) < 5 or levels[:2] != ["$aws", "things"] or levels[3] != "shadow":
        return None
    thing, rest = levels[2], levels[4:]
    name = ""
    if rest[0] == "name":
        if len(rest) != 3 or not SHADOW_NAME.fullmatch(rest[1]):
            return None
        name, rest = rest[1], rest[2:]
    if len(rest) != 1 or not THING.fullmatch(thing):
        return None
    try:
        return ShadowTopic(thing, name, ShadowOp(rest[0]))
    except ValueError:
        return None


# Topics under .../jobs/ that only the service publishes.
_JOBS_SERVICE_ONLY = {"notify", "notify-next", "accepted", "rejected"}


def parse_jobs_topic(topic: str) -> JobsTopic | None:
    """A request to the jobs service: any topic under ``$aws/things/{thing}/jobs/`` but the
    service's own (notifications, replies). Those that map to no operation are still
    requests: AWS answers them with ``InvalidTopic`` on ``{topic}/rejected``."""
    levels = topic.split("/")
    if len(levels) < 5 or levels[:2] != ["$aws", "things"] or levels[3] != "jobs":
        return None
    parts = tuple(levels[4:])
    if parts[-1] in _JOBS_SERVICE_ONLY or not THING.fullmatch(levels[2]):
        return None
    return JobsTopic(levels[2], parts)


# The request topics as filters, one '+' for the thing: what the engines subscribe to on an
# external broker and what its ACL lets a device publish (with the thing filled in). Jobs
# requests on other topics (AWS's InvalidTopic) have no filter: such a broker drops them.
REQUEST_FILTERS = (
    "$aws/things/+/shadow/get",
    "$aws/things/+/shadow/update",
    "$aws/things/+/shadow/delete",
    "$aws/things/+/shadow/name/+/get",
    "$aws/things/+/shadow/name/+/update",
    "$aws/things/+/shadow/name/+/delete",
    "$aws/things/+/jobs/get",
    "$aws/things/+/jobs/start-next",
    "$aws/things/+/jobs/+/get",
    "$aws/things/+/jobs/+/update",
)


def is_reserved(topic: str) -> bool:
    return topic.startswith("$")


def is_request_topic(topic: str) -> bool:
    """May a client publish to this reserved topic? Only service requests."""
    return parse_shadow_topic(topic) is not None or parse_jobs_topic(topic) is not None
