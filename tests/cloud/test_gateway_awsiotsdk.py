"""awsiotsdk (awscrt), AWS's own device SDK, against the gateway: MQTT 3.1.1 with
IotShadowClient and MQTT 5 with IotShadowClientV2 (spec/cloud.md 5.2, 5.3)."""

from __future__ import annotations

import queue
import time
from typing import Any

import pytest
from awscrt import mqtt, mqtt_request_response
from awsiot import (
    ServiceStreamOptions,
    V2ServiceException,
    iotshadow,
)

from tests.cloud.conftest import RunningCloud
from tests.cloud.mqtt_helpers import mqtt5_client, mqtt311_connection

pytestmark = pytest.mark.interop


def test_mqtt311_shadow_client_flow(cloud: RunningCloud) -> None:
    creds = cloud.creds["outlet1"]
    with mqtt311_connection(cloud, creds, "outlet1") as connection:
        shadow = iotshadow.IotShadowClient(connection)
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        thing, name = "outlet1", "sdk311"
        qos = mqtt.QoS.AT_LEAST_ONCE
        subscriptions = [
            shadow.subscribe_to_get_named_shadow_accepted(
                iotshadow.GetNamedShadowSubscriptionRequest(thing_name=thing, shadow_name=name),
                qos,
                lambda r: events.put(("get", r)),
            ),
            shadow.subscribe_to_get_named_shadow_rejected(
                iotshadow.GetNamedShadowSubscriptionRequest(thing_name=thing, shadow_name=name),
                qos,
                lambda e: events.put(("get-rejected", e)),
            ),
            shadow.subscribe_to_update_named_shadow_accepted(
                iotshadow.UpdateNamedShadowSubscriptionRequest(thing_name=thing, shadow_name=name),
                qos,
                lambda r: events.put(("accepted", r)),
            ),
            shadow.subscribe_to_update_named_shadow_rejected(
                iotshadow.UpdateNamedShadowSubscriptionRequest(thing_name=thing, shadow_name=name),
                qos,
                lambda e: events.put(("rejected", e)),
            ),
            shadow.subscribe_to_named_shadow_delta_updated_events(
                iotshadow.NamedShadowDeltaUpdatedSubscriptionRequest(
                    thing_name=thing, shadow_name=name
                ),
                qos,
                lambda d: events.put(("delta", d)),
            ),
        ]
        for future, _topic in subscriptions:
            future.result(5)

        def wait(kind: str) -> Any:
            while True:
                got_kind, value = events.get(timeout=5)
                if got_kind == kind:
                    return value

        shadow.publish_get_named_shadow(
            iotshadow.GetNamedShadowRequest(thing_name=thing, shadow_name=name, client_token="g"),
            qos,
        ).result(5)
        assert wait("get-rejected").code == 404
        started = time.perf_counter()
        shadow.publish_update_named_shadow(
            iotshadow.UpdateNamedShadowRequest(
                thing_name=thing,
                shadow_name=name,
                client_token="r1",
                state=iotshadow.ShadowState(reported={"output": False}),
            ),
            qos,
        ).result(5)
        accepted = wait("accepted")
        round_trip = time.perf_counter() - started
        assert (accepted.version, accepted.client_token) == (1, "r1")
        # QUICKACK on the server side: no 40 ms delayed-ACK stall (spec 5.4 item 6).
        # mosquitto has no QUICKACK, so awscrt's PUBACK + PUBLISH pays it there.
        assert round_trip < (0.2 if cloud.on_mosquitto else 0.04), round_trip
        shadow.publish_update_named_shadow(
            iotshadow.UpdateNamedShadowRequest(
                thing_name=thing,
                shadow_name=name,
                state=iotshadow.ShadowState(desired={"output": True}),
            ),
            qos,
        ).result(5)
        delta = wait("delta")
        assert (delta.state, delta.version) == ({"output": True}, 2)
        shadow.publish_update_named_shadow(
            iotshadow.UpdateNamedShadowRequest(
                thing_name=thing,
                shadow_name=name,
                version=1,
                state=iotshadow.ShadowState(reported={"output": True}),
            ),
            qos,
        ).result(5)
        assert wait("rejected").code == 409


def test_mqtt5_shadow_client_v2_flow(cloud: RunningCloud) -> None:
    cloud.skip_mqtt5()
    creds = cloud.creds["outlet2"]
    with mqtt5_client(cloud, creds, "outlet2") as client:
        shadow = iotshadow.IotShadowClientV2(
            client,
            mqtt_request_response.ClientOptions(
                max_request_response_subscriptions=4,
                max_streaming_subscriptions=4,
                operation_timeout_in_seconds=5,
            ),
        )
        thing = "outlet2"
        with pytest.raises(V2ServiceException) as caught:
            shadow.get_named_shadow(
                iotshadow.GetNamedShadowRequest(thing_name=thing, shadow_name="sdk5")
            ).result(10)
        assert caught.value.modeled_error.code == 404
        deltas: queue.Queue[Any] = queue.Queue()
        stream = shadow.create_named_shadow_delta_updated_stream(
            iotshadow.NamedShadowDeltaUpdatedSubscriptionRequest(
                thing_name=thing, shadow_name="sdk5"
            ),
            ServiceStreamOptions(incoming_event_listener=deltas.put),
        )
        stream.open()
        time.sleep(0.3)
        reported = shadow.update_named_shadow(
            iotshadow.UpdateNamedShadowRequest(
                thing_name=thing,
                shadow_name="sdk5",
                state=iotshadow.ShadowState(reported={"output": False}),
            )
        ).result(10)
        assert reported.version == 1
        shadow.update_named_shadow(
            iotshadow.UpdateNamedShadowRequest(
                thing_name=thing,
                shadow_name="sdk5",
                state=iotshadow.ShadowState(desired={"output": True}),
            )
        ).result(10)
        assert deltas.get(timeout=5).state == {"output": True}
        with pytest.raises(V2ServiceException) as caught:
            shadow.update_named_shadow(
                iotshadow.UpdateNamedShadowRequest(
                    thing_name=thing,
                    shadow_name="sdk5",
                    version=1,
                    state=iotshadow.ShadowState(reported={"output": True}),
                )
            ).result(10)
        assert caught.value.modeled_error.code == 409
        got = shadow.get_named_shadow(
            iotshadow.GetNamedShadowRequest(thing_name=thing, shadow_name="sdk5")
        ).result(10)
        assert got.state.delta == {"output": True}
        classic = shadow.update_shadow(
            iotshadow.UpdateShadowRequest(
                thing_name=thing, state=iotshadow.ShadowState(reported={"v": 5})
            )
        ).result(10)
        assert classic.state.reported == {"v": 5}
