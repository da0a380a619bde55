"""Jobs end to end: the control plane over REST (our admin calls, boto3 ``iot``, the CLI)
and the device-side MQTT API with paho and awsiotsdk's IotJobsClient (spec/cloud.md 3)."""

from __future__ import annotations

import datetime
import json
import queue
import time
from pathlib import Path
from typing import Any

import pytest
from awscrt import mqtt, mqtt_request_response
from awsiot import (
    ServiceStreamOptions,
    V2ServiceException,
    iotjobs,
)
from botocore.exceptions import ClientError

from jumpstart.cli import main
from jumpstart.cloud.admin import job_create_request, rest_request
from tests.cloud.conftest import Credentials, RunningCloud
from tests.cloud.mqtt_helpers import PahoDevice, boto_client, mqtt5_client, mqtt311_connection

DOC = json.dumps({"operation": "ota", "url": "https://localhost:8070/outlet.bin"})


def create(cloud: RunningCloud, job_id: str, *things: str, all_things: bool = False) -> None:
    reply = job_create_request(
        cloud.service.home, job_id, DOC, list(things), all_things, port=cloud.rest_port
    )
    assert reply.status == 200, reply.document


def test_jobs_replies_reach_the_requester_without_a_subscription(cloud: RunningCloud) -> None:
    device = PahoDevice(cloud, cloud.creds["outlet1"], client_id="outlet1-replies")
    watcher = PahoDevice(cloud, cloud.creds["app"], client_id="watcher")
    device.connect()
    watcher.connect()
    replies = (
        "$aws/things/outlet1/jobs/start-next/accepted",
        "$aws/things/outlet1/jobs/replies/update/accepted",
    )
    try:
        # The app listens on the device's reply topic: AWS does not route jobs replies
        # through the broker, so it must see nothing.
        assert watcher.subscribe("$aws/things/outlet1/jobs/#") == [1]
        create(cloud, "replies", "outlet1")
        assert watcher.expect("$aws/things/outlet1/jobs/notify-next")["execution"]["jobId"]
        device.publish("$aws/things/outlet1/jobs/start-next", {"clientToken": "s1"})
        # An external broker routes replies like any message (README, "External broker"):
        # every subscriber gets them, a requester without a subscription nothing.
        receiver = watcher if cloud.external else device
        reply = receiver.expect(replies[0])
        assert reply["clientToken"] == "s1"
        assert reply["execution"]["jobId"] == "replies"
        device.publish("$aws/things/outlet1/jobs/replies/update", {"status": "SUCCEEDED"})
        assert receiver.expect(replies[1]) is not None
        if cloud.external:
            assert device.nothing(0.5) == []
            return
        seen = [topic for topic, _ in watcher.nothing(0.5)]
        assert "$aws/things/outlet1/jobs/notify" in seen  # notifications are routed
        assert not [t for t in seen if t.endswith(("/accepted", "/rejected"))]
    finally:
        device.close()
        watcher.close()


def test_subscribed_requester_gets_one_reply(cloud: RunningCloud) -> None:
    device = PahoDevice(cloud, cloud.creds["outlet2"], client_id="outlet2-sub")
    device.connect()
    try:
        device.subscribe("$aws/things/outlet2/jobs/get/accepted")
        device.publish("$aws/things/outlet2/jobs/get", {"clientToken": "once"})
        assert device.expect("$aws/things/outlet2/jobs/get/accepted")["clientToken"] == "once"
        assert device.nothing(0.5) == []
    finally:
        device.close()


def test_a_device_cannot_reach_another_things_jobs(cloud: RunningCloud) -> None:
    nosy = PahoDevice(cloud, cloud.creds["outlet2"], client_id="outlet2-nosy")
    owner = PahoDevice(cloud, cloud.creds["outlet1"], client_id="outlet1-owner")
    nosy.connect()
    owner.connect()
    jobs = "$aws/things/outlet1/jobs"
    try:
        # AWS (and NATS) refuse the filter; mosquitto grants it and then delivers nothing.
        expected = [1] if cloud.on_mosquitto else [0x80]
        assert nosy.subscribe(f"{jobs}/notify-next", f"{jobs}/get/accepted") == expected * 2
        owner.subscribe(f"{jobs}/notify-next", f"{jobs}/get/accepted")
        create(cloud, "nosy", "outlet1")
        assert owner.expect(f"{jobs}/notify-next")["execution"]["jobId"] == "nosy"
        assert nosy.nothing() == []
        nosy.client.publish(f"{jobs}/get", b"{}", qos=1)
        if not cloud.keeps_violators:
            nosy.disconnected.get(timeout=5)  # a forbidden publish disconnects, as on AWS
        assert owner.nothing() == []  # the request never reached the service
    finally:
        nosy.close()
        owner.close()
        rest_request(cloud.service.home, "PUT", "/jobs/nosy/cancel", port=cloud.rest_port)


def _events(client: iotjobs.IotJobsClient, thing: str) -> queue.Queue[tuple[str, Any]]:
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    qos = mqtt.QoS.AT_LEAST_ONCE
    subscriptions = [
        client.subscribe_to_next_job_execution_changed_events(
            iotjobs.NextJobExecutionChangedSubscriptionRequest(thing_name=thing),
            qos,
            lambda e: events.put(("next", e)),
        ),
        client.subscribe_to_start_next_pending_job_execution_accepted(
            iotjobs.StartNextPendingJobExecutionSubscriptionRequest(thing_name=thing),
            qos,
            lambda r: events.put(("started", r)),
        ),
        client.subscribe_to_update_job_execution_accepted(
            iotjobs.UpdateJobExecutionSubscriptionRequest(thing_name=thing, job_id="+"),
            qos,
            lambda r: events.put(("updated", r)),
        ),
        client.subscribe_to_update_job_execution_rejected(
            iotjobs.UpdateJobExecutionSubscriptionRequest(thing_name=thing, job_id="+"),
            qos,
            lambda e: events.put(("update-rejected", e)),
        ),
    ]
    for future, _topic in subscriptions:
        future.result(5)
    return events


def _wait(events: queue.Queue[tuple[str, Any]], kind: str) -> Any:
    while True:
        got, value = events.get(timeout=5)
        if got == kind:
            return value


@pytest.mark.interop
def test_awsiotsdk_jobs_client_runs_an_ota_job(cloud: RunningCloud) -> None:
    creds: Credentials = cloud.creds["outlet2"]
    with mqtt311_connection(cloud, creds, "outlet2") as connection:
        jobs = iotjobs.IotJobsClient(connection)
        events = _events(jobs, "outlet2")
        create(cloud, "sdk-ota", "outlet2")
        changed = _wait(events, "next")
        assert changed.execution.job_id == "sdk-ota"
        # The SDK parses timestamps as epoch seconds: milliseconds would land in year 55000.
        assert isinstance(changed.timestamp, datetime.datetime)
        assert abs(changed.timestamp.timestamp() - datetime.datetime.now().timestamp()) < 60

        jobs.publish_start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(
                thing_name="outlet2", client_token="sdk-1", step_timeout_in_minutes=5
            ),
            mqtt.QoS.AT_LEAST_ONCE,
        ).result(5)
        started = _wait(events, "started")
        assert started.client_token == "sdk-1"
        assert started.execution.status == "IN_PROGRESS"
        assert started.execution.job_document == json.loads(DOC)
        version = started.execution.version_number

        jobs.publish_update_job_execution(
            iotjobs.UpdateJobExecutionRequest(
                thing_name="outlet2",
                job_id="sdk-ota",
                status="SUCCEEDED",
                expected_version=version + 5,
                client_token="stale",
            ),
            mqtt.QoS.AT_LEAST_ONCE,
        ).result(5)
        rejected = _wait(events, "update-rejected")
        assert rejected.code == "VersionMismatch"
        assert rejected.execution_state.version_number == version

        jobs.publish_update_job_execution(
            iotjobs.UpdateJobExecutionRequest(
                thing_name="outlet2",
                job_id="sdk-ota",
                status="SUCCEEDED",
                expected_version=version,
                status_details={"firmware": "1.1"},
                include_job_execution_state=True,
            ),
            mqtt.QoS.AT_LEAST_ONCE,
        ).result(5)
        updated = _wait(events, "updated")
        assert updated.execution_state.status == "SUCCEEDED"
        assert _wait(events, "next").execution is None  # the queue is empty now
    job = rest_request(cloud.service.home, "GET", "/jobs/sdk-ota", port=cloud.rest_port)
    assert job.document["job"]["status"] == "COMPLETED"
    assert job.document["job"]["jobProcessDetails"]["numberOfSucceededThings"] == 1


@pytest.mark.interop
def test_awsiotsdk_jobs_client_v2_over_mqtt5(cloud: RunningCloud) -> None:
    """The request-response jobs client correlates by clientToken on .../+ subscriptions."""
    cloud.skip_mqtt5()
    creds: Credentials = cloud.creds["outlet1"]
    thing = "outlet1"
    with mqtt5_client(cloud, creds, "outlet1-v2") as client:
        jobs = iotjobs.IotJobsClientV2(
            client,
            mqtt_request_response.ClientOptions(
                max_request_response_subscriptions=4,
                max_streaming_subscriptions=2,
                operation_timeout_in_seconds=5,
            ),
        )
        changes: queue.Queue[Any] = queue.Queue()
        stream = jobs.create_next_job_execution_changed_stream(
            iotjobs.NextJobExecutionChangedSubscriptionRequest(thing_name=thing),
            ServiceStreamOptions(incoming_event_listener=changes.put),
        )
        stream.open()
        time.sleep(0.3)  # the stream's SUBSCRIBE is on its way
        create(cloud, "sdk5-ota", thing)
        assert changes.get(timeout=5).execution.job_id == "sdk5-ota"
        pending = jobs.get_pending_job_executions(
            iotjobs.GetPendingJobExecutionsRequest(thing_name=thing)
        ).result(10)
        assert [j.job_id for j in pending.queued_jobs] == ["sdk5-ota"]
        started = jobs.start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(thing_name=thing)
        ).result(10)
        assert started.execution.status == "IN_PROGRESS"
        assert started.execution.job_document == json.loads(DOC)
        version = started.execution.version_number
        with pytest.raises(V2ServiceException) as caught:
            jobs.update_job_execution(
                iotjobs.UpdateJobExecutionRequest(
                    thing_name=thing,
                    job_id="sdk5-ota",
                    status="SUCCEEDED",
                    expected_version=version + 1,
                )
            ).result(10)
        error = caught.value.modeled_error
        assert error.code == "VersionMismatch"
        assert error.execution_state.version_number == version
        jobs.update_job_execution(
            iotjobs.UpdateJobExecutionRequest(
                thing_name=thing, job_id="sdk5-ota", status="SUCCEEDED", expected_version=version
            )
        ).result(10)
        described = jobs.describe_job_execution(
            iotjobs.DescribeJobExecutionRequest(thing_name=thing, job_id="sdk5-ota")
        ).result(10)
        assert described.execution.status == "SUCCEEDED"


@pytest.mark.interop
def test_boto3_iot_control_plane(cloud: RunningCloud) -> None:
    iot = boto_client(cloud, cloud.creds["admin"], "iot")
    created = iot.create_job(
        jobId="boto-job",
        targets=["arn:aws:iot:us-east-1:123456789012:thing/outlet1"],
        document=DOC,
        description="firmware 1.1",
    )
    assert created["jobId"] == "boto-job"
    assert created["jobArn"].endswith(":job/boto-job")
    described = iot.describe_job(jobId="boto-job")["job"]
    assert described["status"] == "IN_PROGRESS"
    assert described["jobProcessDetails"]["numberOfQueuedThings"] == 1
    assert isinstance(described["createdAt"], datetime.datetime)
    assert iot.get_job_document(jobId="boto-job")["document"] == DOC
    listed = iot.list_job_executions_for_job(jobId="boto-job")["executionSummaries"]
    assert [s["jobExecutionSummary"]["status"] for s in listed] == ["QUEUED"]
    execution = iot.describe_job_execution(jobId="boto-job", thingName="outlet1")["execution"]
    assert execution["status"] == "QUEUED"
    assert execution["versionNumber"] == 1
    assert "boto-job" in [j["jobId"] for j in iot.list_jobs()["jobs"]]
    iot.cancel_job(jobId="boto-job")
    assert iot.describe_job(jobId="boto-job")["job"]["status"] == "CANCELED"

    with pytest.raises(ClientError) as conflict:
        iot.create_job(jobId="boto-job", targets=["outlet1"], document=DOC)
    assert conflict.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as missing:
        iot.describe_job(jobId="no-such-job")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as unknown:
        iot.create_job(jobId="ghost", targets=["thing-that-is-not"], document=DOC)
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.interop
@pytest.mark.parametrize(("who", "status"), [("app", 403), ("outlet1", 403)])
def test_only_operators_create_jobs(cloud: RunningCloud, who: str, status: int) -> None:
    iot = boto_client(cloud, cloud.creds[who], "iot")
    with pytest.raises(ClientError) as denied:
        iot.create_job(jobId=f"by-{who}", targets=["outlet1"], document=DOC)
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    if who == "app":
        assert isinstance(iot.list_jobs()["jobs"], list)  # apps may read


def test_job_commands_against_running_cloud(
    cloud: RunningCloud,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("JUMPSTART_HOME", str(cloud.service.home.path.parent))
    port = str(cloud.rest_port)
    document = tmp_path / "ota.json"
    document.write_text(DOC)
    assert main(["cloud", "job", "create", "cli-all", "--all", "--document", str(document),
                 "--port", port]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["cloud", "job", "list", "--port", port]) == 0
    assert "cli-all" in capsys.readouterr().out
    assert main(["cloud", "job", "describe", "cli-all", "--port", port]) == 0
    out = capsys.readouterr().out
    # Every registered thing got an execution: the two outlets and the revoked one.
    for thing in ("outlet1", "outlet2", "revoked1"):
        assert thing in out
    assert "https://localhost:8070/outlet.bin" in out
    assert main(["cloud", "job", "create", "none", "--document", str(document),
                 "--port", port]) == 2  # fmt: skip
    assert "--thing" in capsys.readouterr().err
    assert main(["cloud", "job", "create", "x", "--thing", "outlet1", "--document",
                 str(tmp_path / "missing.json"), "--port", port]) == 2  # fmt: skip
    assert main(["cloud", "job", "describe", "nope", "--port", port]) == 2
    assert main(["cloud", "job", "cancel", "cli-all", "--port", port]) == 0
