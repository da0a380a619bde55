"""The jobs service, transport-free: the device-side API of spec/cloud.md 3 over SQLite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jumpstart.cloud.jobs.model import ExecutionStatus, JobsError, JobStatus
from jumpstart.cloud.jobs.service import JobsReply, JobsService
from jumpstart.cloud.jobs.store import JobExistsError, JobStore, SqliteJobStore
from jumpstart.cloud.messages import Message
from jumpstart.cloud.postgres import PostgresJobStore
from jumpstart.cloud.topics import parse_jobs_topic
from tests.postgres_cluster import fresh_schema

T0 = 1_700_000_000
DOC = json.dumps({"operation": "ota", "url": "https://localhost/fw.bin"})


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgresql"])
def jobs(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[JobsService]:
    """The service on each store backend: the same suite must pass on both."""
    store: JobStore
    if request.param == "sqlite":
        store = SqliteJobStore(tmp_path / "jobs.db")
    else:
        store = PostgresJobStore(fresh_schema(request.getfixturevalue("postgres_url")))
    yield JobsService(store, clock)
    store.close()


def call(jobs: JobsService, thing: str, op: str, body: Any = None) -> tuple[str, dict[str, Any]]:
    """Publish one request; the reply's outcome (accepted/rejected) and body."""
    topic = f"$aws/things/{thing}/jobs/{op}"
    request = parse_jobs_topic(topic)
    assert request is not None
    payload = b"" if body is None else json.dumps(body).encode()
    reply = jobs.handle(request, payload)
    assert reply.reply.topic.startswith(topic + "/")
    return reply.reply.topic.rsplit("/", 1)[1], json.loads(reply.reply.payload)


def notes(messages: tuple[Message, ...] | JobsReply) -> dict[str, dict[str, Any]]:
    found = messages.notifications if isinstance(messages, JobsReply) else messages
    return {m.topic: json.loads(m.payload) for m in found}


def test_create_queues_an_execution_per_thing_and_notifies(jobs: JobsService) -> None:
    job, messages = jobs.create_job("ota-1", DOC, ["a", "b", "a"])
    assert job.things == ("a", "b")  # duplicates collapse
    sent = notes(messages)
    assert set(sent) == {
        f"$aws/things/{t}/jobs/{n}" for t in "ab" for n in ("notify", "notify-next")
    }
    nxt = sent["$aws/things/a/jobs/notify-next"]["execution"]
    assert nxt["jobId"] == "ota-1"
    assert nxt["status"] == "QUEUED"
    assert nxt["jobDocument"] == json.loads(DOC)
    assert nxt["versionNumber"] == 1
    assert nxt["executionNumber"] == 1
    assert sent["$aws/things/b/jobs/notify"]["jobs"]["QUEUED"][0]["jobId"] == "ota-1"
    with pytest.raises(JobExistsError):
        jobs.create_job("ota-1", DOC, ["a"])


def test_timestamps_are_epoch_seconds(jobs: JobsService) -> None:
    jobs.create_job("j", DOC, ["a"])
    _, body = call(jobs, "a", "start-next", {"clientToken": "t"})
    execution = body["execution"]
    for key in ("queuedAt", "startedAt", "lastUpdatedAt"):
        assert execution[key] == T0
    assert body["timestamp"] == T0


def test_full_lifecycle_get_start_update_complete(jobs: JobsService, clock: Clock) -> None:
    jobs.create_job("j1", DOC, ["a"])
    outcome, pending = call(jobs, "a", "get", {"clientToken": "c1"})
    assert outcome == "accepted"
    assert pending["clientToken"] == "c1"
    assert [s["jobId"] for s in pending["queuedJobs"]] == ["j1"]
    assert pending["inProgressJobs"] == []

    clock.now += 5
    outcome, started = call(jobs, "a", "start-next", {"statusDetails": {"step": "download"}})
    assert outcome == "accepted"
    execution = started["execution"]
    assert execution["status"] == "IN_PROGRESS"
    assert execution["versionNumber"] == 2
    assert execution["statusDetails"] == {"step": "download"}
    assert execution["startedAt"] == T0 + 5

    outcome, updated = call(
        jobs,
        "a",
        "j1/update",
        {"status": "SUCCEEDED", "expectedVersion": 2, "includeJobExecutionState": True},
    )
    assert outcome == "accepted"
    assert updated["executionState"] == {
        "status": "SUCCEEDED",
        "statusDetails": {"step": "download"},
        "versionNumber": 3,
    }
    assert "jobDocument" not in updated
    assert jobs.job("j1").status is JobStatus.COMPLETED
    assert jobs.job("j1").completed_at == T0 + 5
    outcome, pending = call(jobs, "a", "get")
    assert pending["queuedJobs"] == []
    assert pending["inProgressJobs"] == []


def test_start_next_serves_in_progress_first_then_oldest_queued(jobs: JobsService) -> None:
    for job_id in ("first", "second", "third"):
        jobs.create_job(job_id, DOC, ["a"])
    call(jobs, "a", "second/update", {"status": "IN_PROGRESS"})
    _, body = call(jobs, "a", "start-next")
    assert body["execution"]["jobId"] == "second"  # already IN_PROGRESS: returned unchanged
    assert body["execution"]["versionNumber"] == 2
    call(jobs, "a", "second/update", {"status": "FAILED"})
    _, body = call(jobs, "a", "start-next")
    assert body["execution"]["jobId"] == "first"
    _, body = call(jobs, "a", "$next/get")
    assert body["execution"]["jobId"] == "first"


def test_start_next_with_nothing_pending_has_no_execution(jobs: JobsService) -> None:
    outcome, body = call(jobs, "a", "start-next", {"clientToken": "x"})
    assert outcome == "accepted"
    assert "execution" not in body
    assert body["clientToken"] == "x"
    outcome, body = call(jobs, "a", "$next/get")
    assert outcome == "accepted"
    assert "execution" not in body


def test_describe_execution_with_and_without_document(jobs: JobsService) -> None:
    jobs.create_job("j", DOC, ["a"])
    _, body = call(jobs, "a", "j/get")
    assert body["execution"]["jobDocument"] == json.loads(DOC)  # included by default
    _, body = call(jobs, "a", "j/get", {"includeJobDocument": False})
    assert "jobDocument" not in body["execution"]
    outcome, body = call(jobs, "a", "j/get", {"executionNumber": 7, "clientToken": "n"})
    assert (outcome, body["code"], body["clientToken"]) == ("rejected", "ResourceNotFound", "n")


def test_version_mismatch_carries_the_execution_state(jobs: JobsService) -> None:
    jobs.create_job("j", DOC, ["a"])
    outcome, body = call(jobs, "a", "j/update", {"status": "IN_PROGRESS", "expectedVersion": 5})
    assert outcome == "rejected"
    assert body["code"] == "VersionMismatch"
    assert body["executionState"] == {"status": "QUEUED", "statusDetails": {}, "versionNumber": 1}
    assert jobs.execution("j", "a").version == 1  # nothing changed


def test_terminal_executions_cannot_move(jobs: JobsService) -> None:
    jobs.create_job("j", DOC, ["a"])
    call(jobs, "a", "j/update", {"status": "REJECTED"})
    outcome, body = call(jobs, "a", "j/update", {"status": "IN_PROGRESS"})
    assert outcome == "rejected"
    assert body["code"] == "InvalidStateTransition"
    assert body["executionState"]["status"] == "REJECTED"


@pytest.mark.parametrize(
    ("op", "body", "code"),
    [
        ("j/update", {"status": "QUEUED"}, "InvalidRequest"),  # the service's state
        ("j/update", {"status": "CANCELED"}, "InvalidRequest"),
        ("j/update", {}, "InvalidRequest"),  # status is required
        ("j/update", {"status": "DONE"}, "InvalidRequest"),
        ("j/update", {"status": "IN_PROGRESS", "expectedVersion": "1"}, "InvalidRequest"),
        ("j/update", {"status": "IN_PROGRESS", "expectedVersion": True}, "InvalidRequest"),
        ("j/update", {"status": "IN_PROGRESS", "statusDetails": {"k": 1}}, "InvalidRequest"),
        ("j/update", {"status": "IN_PROGRESS", "stepTimeoutInMinutes": 0}, "InvalidRequest"),
        ("j/update", {"status": "IN_PROGRESS", "stepTimeoutInMinutes": 10081}, "InvalidRequest"),
        ("start-next", {"statusDetails": []}, "InvalidRequest"),
        ("get", {"clientToken": "x" * 65}, "InvalidRequest"),
        ("nope/update", {"status": "IN_PROGRESS"}, "ResourceNotFound"),
        ("j/frobnicate", {}, "InvalidTopic"),
        ("j/update/extra", {}, "InvalidTopic"),
        ("stuff", {}, "InvalidTopic"),
    ],
)
def test_bad_requests_are_rejected_and_change_nothing(
    jobs: JobsService, op: str, body: dict[str, Any], code: str
) -> None:
    jobs.create_job("j", DOC, ["a"])
    outcome, reply = call(jobs, "a", op, body)
    assert (outcome, reply["code"]) == ("rejected", code)
    assert reply["timestamp"] == T0
    assert reply["message"]
    assert jobs.execution("j", "a").version == 1


@pytest.mark.parametrize("payload", [b"{", b"[1]", b"\xff\xfe", b'"text"'])
def test_malformed_payloads_are_invalid_json(jobs: JobsService, payload: bytes) -> None:
    request = parse_jobs_topic("$aws/things/a/jobs/get")
    assert request is not None
    reply = jobs.handle(request, payload)
    assert reply.reply.topic.endswith("/get/rejected")
    assert json.loads(reply.reply.payload)["code"] == "InvalidJson"


def test_client_token_is_echoed_in_rejections(jobs: JobsService) -> None:
    _, body = call(jobs, "a", "missing/get", {"clientToken": "tok"})
    assert body["clientToken"] == "tok"


def test_step_timeout_times_the_execution_out(jobs: JobsService, clock: Clock) -> None:
    jobs.create_job("slow", DOC, ["a"])
    jobs.create_job("next", DOC, ["a"])
    call(jobs, "a", "start-next", {"stepTimeoutInMinutes": 1})
    clock.now += 59
    assert jobs.expire_timeouts() == ()
    clock.now += 1
    sent = notes(jobs.expire_timeouts())
    assert jobs.execution("slow", "a").status is ExecutionStatus.TIMED_OUT
    assert sent["$aws/things/a/jobs/notify-next"]["execution"]["jobId"] == "next"
    outcome, body = call(jobs, "a", "slow/update", {"status": "SUCCEEDED"})
    assert outcome == "rejected"
    assert body["executionState"]["status"] == "TIMED_OUT"


def test_an_overdue_execution_times_out_before_the_next_request(
    jobs: JobsService, clock: Clock
) -> None:
    jobs.create_job("slow", DOC, ["a"])
    call(jobs, "a", "start-next", {"stepTimeoutInMinutes": 1})
    clock.now += 120
    _, body = call(jobs, "a", "slow/get")  # no sweep ran, the request sees the timeout
    assert body["execution"]["status"] == "TIMED_OUT"


def test_update_resets_the_step_timer(jobs: JobsService, clock: Clock) -> None:
    jobs.create_job("j", DOC, ["a"])
    call(jobs, "a", "start-next", {"stepTimeoutInMinutes": 1})
    clock.now += 50
    call(jobs, "a", "j/update", {"status": "IN_PROGRESS", "stepTimeoutInMinutes": 2})
    clock.now += 60
    jobs.expire_timeouts()
    assert jobs.execution("j", "a").status is ExecutionStatus.IN_PROGRESS


def test_update_notifies_only_the_thing_it_touched(jobs: JobsService) -> None:
    jobs.create_job("j", DOC, ["a", "b"])
    reply = jobs.handle(
        parse_jobs_topic("$aws/things/a/jobs/j/update"),  # type: ignore[arg-type]
        json.dumps({"status": "SUCCEEDED"}).encode(),
    )
    sent = notes(reply)
    assert set(sent) == {"$aws/things/a/jobs/notify", "$aws/things/a/jobs/notify-next"}
    assert sent["$aws/things/a/jobs/notify"]["jobs"] == {}
    assert "execution" not in sent["$aws/things/a/jobs/notify-next"]
    assert jobs.job("j").status is JobStatus.IN_PROGRESS  # b is still queued


def test_reads_send_no_notifications(jobs: JobsService) -> None:
    jobs.create_job("j", DOC, ["a"])
    for op in ("get", "j/get", "$next/get"):
        reply = jobs.handle(parse_jobs_topic(f"$aws/things/a/jobs/{op}"), b"{}")  # type: ignore[arg-type]
        assert reply.notifications == ()


def test_cancel_moves_queued_executions_and_force_moves_started_ones(jobs: JobsService) -> None:
    jobs.create_job("j", DOC, ["a", "b"])
    call(jobs, "a", "start-next")
    job, messages = jobs.cancel_job("j")
    assert job.status is JobStatus.CANCELED
    assert jobs.execution("j", "b").status is ExecutionStatus.CANCELED
    assert jobs.execution("j", "a").status is ExecutionStatus.IN_PROGRESS
    assert {m.topic.split("/")[2] for m in messages} == {"b"}
    with pytest.raises(JobsError):
        jobs.cancel_job("j")  # already canceled

    jobs.create_job("k", DOC, ["a"])
    call(jobs, "a", "k/update", {"status": "IN_PROGRESS"})
    jobs.cancel_job("k", force=True)
    assert jobs.execution("k", "a").status is ExecutionStatus.CANCELED


@pytest.mark.parametrize(
    ("job_id", "document", "things"),
    [
        ("bad id", DOC, ["a"]),
        ("x" * 65, DOC, ["a"]),
        ("j", "not json", ["a"]),
        ("j", "[1, 2]", ["a"]),
        ("j", json.dumps({"blob": "x" * 33_000}), ["a"]),
        ("j", DOC, []),
    ],
)
def test_create_rejects_bad_jobs(
    jobs: JobsService, job_id: str, document: str, things: list[str]
) -> None:
    with pytest.raises(JobsError):
        jobs.create_job(job_id, document, things)
    assert jobs.jobs() == []


def test_jobs_survive_a_reopen(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "jobs.db"
    first = JobsService(SqliteJobStore(path), clock)
    first.create_job("j", DOC, ["a"])
    call(first, "a", "start-next")
    first.store.close()
    second = JobsService(SqliteJobStore(path), clock)
    assert second.execution("j", "a").status is ExecutionStatus.IN_PROGRESS
    assert [job.job_id for job in second.jobs()] == ["j"]
