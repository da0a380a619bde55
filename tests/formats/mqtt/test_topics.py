import pytest

from jumpstart.formats.mqtt.topics import (
    TopicError,
    topic_matches,
    validate_topic_filter,
    validate_topic_name,
)

# (filter, topic, matches): MQTT 5 section 4.7 examples and the '$' rule of 4.7.2.
MATCHES = [
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "sport/tennis", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("#", "$SYS/broker", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$aws/things/+/shadow/update", "$aws/things/t1/shadow/update", True),
    ("$aws/things/+/shadow/update", "$aws/things/t1/shadow/name/n/update", False),
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCHES)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    validate_topic_filter(topic_filter)
    validate_topic_name(topic)
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize("bad", ["", "a/#/b", "a#", "a/b+", "+a", "$share/", "$share/g"])
def test_invalid_filters(bad: str) -> None:
    with pytest.raises(TopicError):
        validate_topic_filter(bad)


@pytest.mark.parametrize("bad", ["", "a/+", "#", "a/#"])
def test_invalid_names(bad: str) -> None:
    with pytest.raises(TopicError):
        validate_topic_name(bad)
