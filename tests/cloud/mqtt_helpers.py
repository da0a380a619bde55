"""paho-mqtt clients against the running cloud, collecting what they receive."""

from __future__ import annotations

import json
import queue
import socket
import ssl
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import boto3
import paho.mqtt.client as mqtt
from awsiot import mqtt5_client_builder, mqtt_connection_builder
from botocore.config import Config
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.cloud.conftest import Credentials, RunningCloud


class PahoDevice:
    def __init__(
        self,
        cloud: RunningCloud,
        creds: Credentials,
        *,
        v5: bool = False,
        client_id: str | None = None,
        clean: bool = True,
        port: int | None = None,
    ) -> None:
        protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        kwargs: dict[str, Any] = {} if v5 else {"clean_session": clean}
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or creds.name,
            protocol=protocol,
            **kwargs,
        )
        self.client.tls_set(
            ca_certs=str(cloud.ca), certfile=str(creds.cert), keyfile=str(creds.key)
        )
        self.client.on_socket_open = lambda c, u, s: s.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.suback: queue.Queue[list[int]] = queue.Queue()
        self.connack: queue.Queue[tuple[int, bool]] = queue.Queue()
        self.disconnected: queue.Queue[int] = queue.Queue()
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.suback.put(
            [int(getattr(code, "value", code)) for code in codes]
        )
        self.client.on_connect = lambda c, u, flags, rc, p: self.connack.put(
            (int(getattr(rc, "value", rc)), bool(flags.session_present))
        )
        self.client.on_disconnect = lambda c, u, flags, rc, p: self.disconnected.put(
            int(getattr(rc, "value", rc))
        )
        self.port = port or cloud.mqtt_port
        self.clean = clean
        self.v5 = v5

    def connect(self, timeout: float = 5) -> tuple[int, bool]:
        kwargs: dict[str, Any] = {}
        if self.v5:
            kwargs["clean_start"] = self.clean
            if not self.clean:  # a persistent session: MQTT 5 says so with an expiry
                properties = Properties(PacketTypes.CONNECT)
                properties.SessionExpiryInterval = 3600
                kwargs["properties"] = properties
        self.client.connect("localhost", self.port, keepalive=30, **kwargs)
        self.client.loop_start()
        return self.connack.get(timeout=timeout)

    def subscribe(self, *filters: str, qos: int = 1) -> list[int]:
        self.client.subscribe([(f, qos) for f in filters])
        return self.suback.get(timeout=5)

    def publish(self, topic: str, payload: Any = b"", qos: int = 1) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, data, qos=qos).wait_for_publish(5)

    def expect(self, topic: str, timeout: float = 5) -> Any:
        """The next message on ``topic`` (others received meanwhile are dropped)."""
        while True:
            got_topic, payload = self.messages.get(timeout=timeout)
            if got_topic == topic:
                return json.loads(payload) if payload else None

    def expect_any(self, timeout: float = 5) -> tuple[str, bytes]:
        """The next message, whatever its topic."""
        return self.messages.get(timeout=timeout)

    def nothing(self, wait: float = 0.3) -> list[tuple[str, bytes]]:
        got = []
        try:
            while True:
                got.append(self.messages.get(timeout=wait))
        except queue.Empty:
            return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def tls_context(cloud: RunningCloud, creds: Credentials | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cloud.ca))
    if creds is not None:
        context.load_cert_chain(str(creds.cert), str(creds.key))
    return context


@contextmanager
def mqtt5_client(cloud: RunningCloud, creds: Credentials, client_id: str) -> Iterator[Any]:
    """A started awscrt MQTT 5 client; stopped, and waited for, on exit (awscrt crashes the
    process when a client is collected while it is still stopping)."""
    connected: Future[None] = Future()
    stopped: Future[None] = Future()
    client = mqtt5_client_builder.mtls_from_path(
        endpoint="localhost",
        port=cloud.mqtt_port,
        cert_filepath=str(creds.cert),
        pri_key_filepath=str(creds.key),
        ca_filepath=str(cloud.ca),
        client_id=client_id,
        on_lifecycle_connection_success=lambda data: connected.set_result(None),
        on_lifecycle_stopped=lambda data: stopped.set_result(None),
    )
    client.start()
    try:
        connected.result(10)
        yield client
    finally:
        client.stop()
        stopped.result(10)


@contextmanager
def mqtt311_connection(cloud: RunningCloud, creds: Credentials, client_id: str) -> Iterator[Any]:
    """A connected awscrt MQTT 3.1.1 connection (clean session, 30 s keep-alive); it
    disconnects on exit."""
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",
        port=cloud.mqtt_port,
        cert_filepath=str(creds.cert),
        pri_key_filepath=str(creds.key),
        ca_filepath=str(cloud.ca),
        client_id=client_id,
        clean_session=True,
        keep_alive_secs=30,
    )
    connection.connect().result(10)
    try:
        yield connection
    finally:
        connection.disconnect().result(5)


def boto_client(cloud: RunningCloud, creds: Credentials, service: str) -> Any:
    """A boto3 client (``iot-data`` or ``iot``) on the cloud's REST endpoint, authenticated
    by ``creds``' certificate, without retries."""
    return boto3.client(
        service,
        endpoint_url=f"https://localhost:{cloud.rest_port}",
        region_name="us-east-1",
        aws_access_key_id="unused",
        aws_secret_access_key="unused",
        verify=str(cloud.ca),
        config=Config(client_cert=(str(creds.cert), str(creds.key)), retries={"max_attempts": 1}),
    )
