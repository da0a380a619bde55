"""Topic names and filters: validation and matching (MQTT 5 section 4.7, 3.1.1 section 4.7)."""

from __future__ import annotations

from jumpstart.errors import InputError

__all__ = [
    "TopicError",
    "is_shared",
    "topic_matches",
    "validate_topic_filter",
    "validate_topic_name",
]

# Section 1.5.4: a UTF-8 string holds at most 65,535 bytes.
MAX_TOPIC_BYTES = 0xFFFF


class TopicError(InputError):
    """A topic name or filter breaks section 4.7."""


def validate_topic_name(topic: str, *, allow_empty: bool = False) -> None:
    """A PUBLISH topic: no wildcards, not empty (unless a topic alias stands in for it)."""
    if not topic and not allow_empty:
        raise TopicError("topic name is empty")
    if "+" in topic or "#" in topic:
        raise TopicError(f"topic name {topic!r} contains a wildcard")
    if len(topic.encode()) > MAX_TOPIC_BYTES:
        raise TopicError("topic name is longer than 65,535 bytes")


def validate_topic_filter(topic_filter: str) -> None:
    """A SUBSCRIBE filter: '#' only alone as the last level, '+' only as a whole level."""
    if not topic_filter:
        raise TopicError("topic filter is empty")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise TopicError(f"'#' must be the whole last level in {topic_filter!r}")
        if "+" in level and level != "+":
            raise TopicError(f"'+' must be a whole level in {topic_filter!r}")
    if is_shared(topic_filter) and (len(levels) < 3 or not levels[1]):
        raise TopicError(f"shared subscription {topic_filter!r} needs a share name and a filter")


def is_shared(topic_filter: str) -> bool:
    return topic_filter.startswith("$share/")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Does ``topic`` match ``topic_filter``? Wildcards at the first level do not match topics
    starting with '$' (section 4.7.2); 'a/#' matches 'a' too (section 4.7.1.2)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)
