"""Who may do what: the policy of each role (AWS IoT policies reduced to three roles).

* device (certificate CN = thing T): publish shadow/jobs requests of T; subscribe to and
  receive anything under ``$aws/things/T/``; read and change T's shadows over REST.
* app and admin: the same for every thing, any filter, plus non-reserved topics. Both read
  the jobs control plane; only admin creates and cancels jobs, and only admin subscribes to
  the lifecycle events (``$aws/events/...``).

No client publishes to a reserved topic that is not a request (``update/accepted``,
``delta``...): those are the service's.
"""

from __future__ import annotations

from dataclasses import dataclass

from jumpstart.cloud.registry import Role
from jumpstart.cloud.topics import MAX_TOPIC_SLASHES, is_request_topic, thing_of

__all__ = ["Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated peer: the certificate's common name, its role, and the certificate
    (its id, so that revoking it ends the connections it opened)."""

    name: str
    role: Role
    certificate_id: str = ""

    def may_connect_as(self, client_id: str, owner: str | None) -> bool:
        """Whether this principal may connect with ``client_id``.

        ``owner`` is the identity that ``client_id`` names when it is a registered thing or
        principal, else None. As AWS's thing policy ``iot:Connect`` on
        ``client/${iot:Connection.Thing.ThingName}``: a device connects as its thing name, or
        ``{thing}-suffix`` for a second connection; nobody connects under a name that belongs
        to another identity. Sessions are also keyed by identity (``Session.key``), so a free
        client id used by two identities never shares a session."""
        if owner is not None and owner != self.name:
            return False
        if self.role is not Role.DEVICE:
            return True
        return client_id == self.name or client_id.startswith(self.name + "-")

    def may_publish(self, topic: str) -> bool:
        if topic.count("/") > MAX_TOPIC_SLASHES:
            return False
        if topic.startswith("$"):
            if not is_request_topic(topic):
                return False
            return self.role is not Role.DEVICE or thing_of(topic) == self.name
        return self.role is not Role.DEVICE

    def may_subscribe(self, topic_filter: str) -> bool:
        if topic_filter.count("/") > MAX_TOPIC_SLASHES:
            return False
        if self.role is Role.DEVICE:
            levels = topic_filter.split("/")
            return len(levels) >= 4 and levels[:3] == ["$aws", "things", self.name]
        if topic_filter.startswith("$aws/events"):
            return self.role is Role.ADMIN  # who is online: operators only
        return True

    def may_access_shadow(self, thing: str) -> bool:
        return self.role is not Role.DEVICE or thing == self.name

    def may_read_jobs(self) -> bool:
        """The jobs control plane (list, describe): operators and apps, not devices (they
        use the device-side MQTT API)."""
        return self.role is not Role.DEVICE

    def may_manage_jobs(self) -> bool:
        """Create and cancel jobs: operators only."""
        return self.role is Role.ADMIN
