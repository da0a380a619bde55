"""The jobs service: the device-side MQTT API (get, start-next, {jobId}/get,
{jobId}/update) and the operator's control plane (create, cancel, describe), over one store.

Transport-free. Each device request yields one reply for the requester only (AWS sends jobs
replies "without passing through the message broker", spec/cloud.md 3) and the ``notify`` /
``notify-next`` messages that subscribers of the affected things receive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from jumpstart.cloud import json_input
from jumpstart.cloud.jobs.model import (
    DEVICE_SETTABLE,
    JOB_ID,
    ExecutionStatus,
    Job,
    JobExecution,
    JobsError,
    JobsErrorCode,
    JobStatus,
)
from jumpstart.cloud.jobs.store import JobStore, StaleExecutionError
from jumpstart.cloud.messages import Message
from jumpstart.cloud.topics import JobsTopic

__all__ = ["JobsReply", "JobsService", "jobs_prefix"]

Json = Any

# jobs-api quotas: a client token is at most 64 characters; a step timeout is 1 minute to
# 7 days; a job document at most 32 KB.
MAX_CLIENT_TOKEN = 64
STEP_TIMEOUT_MINUTES = range(1, 10080 + 1)
MAX_JOB_DOCUMENT = 32 * 1024
SAVE_ATTEMPTS = 5
NEXT = "$next"  # DescribeJobExecution's alias for the next pending execution


def jobs_prefix(thing: str) -> str:
    return f"$aws/things/{thing}/jobs"


def _encode(doc: dict[str, Json]) -> bytes:
    return json_input.encode(doc)


@dataclass(frozen=True, slots=True)
class JobsReply:
    reply: Message  # for the requester only
    notifications: tuple[Message, ...] = ()  # routed to subscribers


@dataclass(frozen=True, slots=True)
class _Request:
    body: dict[str, Json]
    client_token: str | None


def _parse(payload: bytes) -> _Request:
    token = None
    try:
        body = json_input.parse(payload) if payload.strip() else {}
    except json_input.JsonInputError:
        raise JobsError(JobsErrorCode.INVALID_JSON, "Request payload is not valid JSON") from None
    if not isinstance(body, dict):
        raise JobsError(JobsErrorCode.INVALID_JSON, "Request payload must be a JSON object")
    raw = body.get("clientToken")
    if raw is not None:
        if not isinstance(raw, str) or not 0 < len(raw) <= MAX_CLIENT_TOKEN:
            raise JobsError(
                JobsErrorCode.INVALID_REQUEST,
                f"clientToken must be a string of 1-{MAX_CLIENT_TOKEN} characters",
            )
        token = raw
    return _Request(body, token)


def _field(request: _Request, name: str, kind: type, default: Any = None) -> Any:
    value = request.body.get(name, default)
    # bool is an int in Python; JSON keeps them apart, so must we.
    wrong = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
    if value is not default and wrong:
        raise JobsError(
            JobsErrorCode.INVALID_REQUEST,
            f"{name} must be a {kind.__name__}",
            request.client_token,
        )
    return value


def _status_details(request: _Request) -> dict[str, str] | None:
    details = request.body.get("statusDetails")
    if details is None:
        return None
    if not isinstance(details, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in details.items()
    ):
        raise JobsError(
            JobsErrorCode.INVALID_REQUEST,
            "statusDetails must map non-empty strings to non-empty strings",
            request.client_token,
        )
    return details


def _step_timeout(request: _Request) -> int | None:
    minutes = _field(request, "stepTimeoutInMinutes", int)
    if minutes is not None and minutes not in STEP_TIMEOUT_MINUTES:
        raise JobsError(
            JobsErrorCode.INVALID_REQUEST,
            "stepTimeoutInMinutes must be between 1 and 10080",
            request.client_token,
        )
    return minutes  # type: ignore[no-any-return]


def _pending(executions: Iterable[JobExecution]) -> list[JobExecution]:
    """Pending executions in serving order: IN_PROGRESS first, then QUEUED, oldest job first."""
    pending = [e for e in executions if not e.status.terminal]
    return sorted(pending, key=lambda e: (e.status is not ExecutionStatus.IN_PROGRESS, e.sequence))


class JobsService:
    def __init__(self, store: JobStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    # --- device side ----------------------------------------------------------------------

    def handle(self, request: JobsTopic, payload: bytes) -> JobsReply:
        now = int(self.clock())
        topic = f"{jobs_prefix(request.thing)}/{'/'.join(request.parts)}"
        token = None
        for _ in range(SAVE_ATTEMPTS):
            try:
                parsed = _parse(payload)
                token = parsed.client_token
                expired = self._expire(request.thing, now)
                body, changed = self._serve(request, parsed, now)
            except StaleExecutionError:
                continue
            except JobsError as err:
                if err.client_token is None:
                    err.client_token = token
                doc = err.document(now)
                return JobsReply(Message(f"{topic}/rejected", _encode(doc)))
            body["timestamp"] = now
            if token is not None:
                body["clientToken"] = token
            notes = self._notifications(expired | changed, now)
            return JobsReply(Message(f"{topic}/accepted", _encode(body)), notes)
        failure = JobsError(JobsErrorCode.INTERNAL_ERROR, "Internal service failure", token)
        return JobsReply(Message(f"{topic}/rejected", _encode(failure.document(now))))

    def _serve(
        self, request: JobsTopic, parsed: _Request, now: int
    ) -> tuple[dict[str, Json], set[str]]:
        """The accepted body and the things whose pending list may have changed."""
        parts = request.parts
        if parts == ("get",):
            pending = _pending(self.store.executions_for_thing(request.thing))
            return {
                "inProgressJobs": [
                    e.summary() for e in pending if e.status is ExecutionStatus.IN_PROGRESS
                ],
                "queuedJobs": [e.summary() for e in pending if e.status is ExecutionStatus.QUEUED],
            }, set()
        if parts == ("start-next",):
            return self._start_next(request.thing, parsed, now)
        if len(parts) == 2 and parts[1] == "get":
            return self._describe(request.thing, parts[0], parsed), set()
        if len(parts) == 2 and parts[1] == "update":
            return self._update(request.thing, parts[0], parsed, now)
        raise JobsError(JobsErrorCode.INVALID_TOPIC, "Topic does not map to a jobs operation")

    def _start_next(
        self, thing: str, request: _Request, now: int
    ) -> tuple[dict[str, Json], set[str]]:
        details = _status_details(request)
        minutes = _step_timeout(request)
        pending = _pending(self.store.executions_for_thing(thing))
        if not pending:
            return {}, set()
        execution = pending[0]
        if execution.status is ExecutionStatus.QUEUED:
            timeout_at = now + minutes * 60 if minutes else None
            started = execution.moved(ExecutionStatus.IN_PROGRESS, now, details, timeout_at)
            self.store.save_execution(started, execution.version)
            body = {"execution": started.data(self._document(started.job_id))}
            return body, {thing}
        return {"execution": execution.data(self._document(execution.job_id))}, set()

    def _describe(self, thing: str, job_id: str, request: _Request) -> dict[str, Json]:
        number = _field(request, "executionNumber", int)
        include = _field(request, "includeJobDocument", bool, True)
        if job_id == NEXT:
            pending = _pending(self.store.executions_for_thing(thing))
            if not pending:
                return {}
            execution: JobExecution | None = pending[0]
        else:
            execution = self._execution(job_id, thing, request)
        assert execution is not None
        if number is not None and number != execution.execution_number:
            raise JobsError(
                JobsErrorCode.RESOURCE_NOT_FOUND,
                f"Job execution {job_id} #{number} not found for {thing}",
                request.client_token,
            )
        document = self._document(execution.job_id) if include else None
        return {"execution": execution.data(document)}

    def _update(
        self, thing: str, job_id: str, request: _Request, now: int
    ) -> tuple[dict[str, Json], set[str]]:
        raw = request.body.get("status")
        try:
            status = ExecutionStatus(raw)
        except ValueError:
            raise JobsError(
                JobsErrorCode.INVALID_REQUEST,
                "status must be one of IN_PROGRESS, SUCCEEDED, FAILED, REJECTED",
                request.client_token,
            ) from None
        expected = _field(request, "expectedVersion", int)
        number = _field(request, "executionNumber", int)
        include_state = _field(request, "includeJobExecutionState", bool, False)
        include_document = _field(request, "includeJobDocument", bool, False)
        details = _status_details(request)
        minutes = _step_timeout(request)
        if status not in DEVICE_SETTABLE:
            raise JobsError(
                JobsErrorCode.INVALID_REQUEST,
                f"A device cannot set the status {status.value}",
                request.client_token,
            )
        execution = self._execution(job_id, thing, request)
        if number is not None and number != execution.execution_number:
            raise JobsError(
                JobsErrorCode.RESOURCE_NOT_FOUND,
                f"Job execution {job_id} #{number} not found for {thing}",
                request.client_token,
            )
        if expected is not None and expected != execution.version:
            raise JobsError(
                JobsErrorCode.VERSION_MISMATCH,
                "The expected version does not match the execution's version",
                request.client_token,
                execution,
            )
        if execution.status.terminal:
            raise JobsError(
                JobsErrorCode.INVALID_STATE_TRANSITION,
                f"Cannot move a {execution.status.value} job execution to {status.value}",
                request.client_token,
                execution,
            )
        timeout_at = now + minutes * 60 if minutes else execution.timeout_at
        moved = execution.moved(status, now, details, timeout_at)
        self.store.save_execution(moved, execution.version)
        if status.terminal:
            self._complete_if_done(job_id, now)
        body: dict[str, Json] = {}
        if include_state:
            body["executionState"] = moved.state()
        if include_document:
            body["jobDocument"] = self._document(job_id)
        return body, {thing}

    def _execution(self, job_id: str, thing: str, request: _Request) -> JobExecution:
        execution = self.store.execution(job_id, thing) if JOB_ID.fullmatch(job_id) else None
        if execution is None:
            raise JobsError(
                JobsErrorCode.RESOURCE_NOT_FOUND,
                f"Job execution {job_id} not found for thing {thing}",
                request.client_token,
            )
        return execution

    def _document(self, job_id: str) -> Json:
        job = self.store.job(job_id)
        return job.document_json() if job is not None else {}

    def _complete_if_done(self, job_id: str, now: int) -> None:
        job = self.store.job(job_id)
        if job is None or job.status is not JobStatus.IN_PROGRESS:
            return
        if all(e.status.terminal for e in self.store.executions_for_job(job_id)):
            self.store.save_job(
                replace(job, status=JobStatus.COMPLETED, last_updated_at=now, completed_at=now)
            )

    def _expire(self, thing: str, now: int) -> set[str]:
        changed = set()
        for execution in self.store.executions_for_thing(thing):
            due = execution.timeout_at is not None and execution.timeout_at <= now
            if due and execution.status is ExecutionStatus.IN_PROGRESS:
                self._time_out(execution, now)
                changed.add(thing)
        return changed

    def _time_out(self, execution: JobExecution, now: int) -> None:
        self.store.save_execution(
            execution.moved(ExecutionStatus.TIMED_OUT, now), execution.version
        )
        self._complete_if_done(execution.job_id, now)

    def expire_timeouts(self) -> tuple[Message, ...]:
        """Move overdue IN_PROGRESS executions to TIMED_OUT (called periodically)."""
        now = int(self.clock())
        things = set()
        for execution in self.store.due_timeouts(now):
            try:
                self._time_out(execution, now)
            except StaleExecutionError:
                continue  # it moved meanwhile; the next sweep looks again
            things.add(execution.thing)
        return self._notifications(things, now) if things else ()

    # --- notifications --------------------------------------------------------------------

    def _notifications(self, things: Iterable[str], now: int) -> tuple[Message, ...]:
        """``notify`` (the pending list) and ``notify-next`` (the next execution) of each
        thing. Sent after every change that touches the thing: a client that missed one
        catches up with the next, and the SDKs treat them as idempotent events."""
        messages = []
        for thing in sorted(things):
            pending = _pending(self.store.executions_for_thing(thing))
            jobs: dict[str, Json] = {}
            for status in (ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS):
                summaries = [e.summary() for e in pending if e.status is status]
                if summaries:
                    jobs[status.value] = summaries
            prefix = jobs_prefix(thing)
            messages.append(Message(f"{prefix}/notify", _encode({"timestamp": now, "jobs": jobs})))
            nxt: dict[str, Json] = {"timestamp": now}
            if pending:
                nxt["execution"] = pending[0].data(self._document(pending[0].job_id))
            messages.append(Message(f"{prefix}/notify-next", _encode(nxt)))
        return tuple(messages)

    # --- control plane --------------------------------------------------------------------

    def create_job(
        self, job_id: str, document: str, things: Sequence[str], description: str = ""
    ) -> tuple[Job, tuple[Message, ...]]:
        """A snapshot job for ``things``; each gets a QUEUED execution and its notifications."""
        if not JOB_ID.fullmatch(job_id):
            raise JobsError(
                JobsErrorCode.INVALID_REQUEST, "jobId must be 1-64 characters of a-z A-Z 0-9 _ -"
            )
        if len(document.encode()) > MAX_JOB_DOCUMENT:
            raise JobsError(JobsErrorCode.INVALID_REQUEST, "The job document exceeds 32 KB")
        try:
            parsed = json_input.parse(document)
        except json_input.JsonInputError:
            raise JobsError(JobsErrorCode.INVALID_JSON, "The job document is not JSON") from None
        if not isinstance(parsed, dict):
            raise JobsError(JobsErrorCode.INVALID_JSON, "The job document must be a JSON object")
        targets = tuple(dict.fromkeys(things))
        if not targets:
            raise JobsError(JobsErrorCode.INVALID_REQUEST, "A job needs at least one target")
        now = int(self.clock())
        job = Job(job_id, document, targets, description, JobStatus.IN_PROGRESS, now, now)
        executions = [
            JobExecution(job_id, thing, queued_at=now, last_updated_at=now) for thing in targets
        ]
        job = self.store.create(job, executions)  # JobExistsError for a taken id
        return job, self._notifications(targets, now)

    def cancel_job(self, job_id: str, force: bool = False) -> tuple[Job, tuple[Message, ...]]:
        """Cancel a job: its QUEUED executions (and IN_PROGRESS ones with ``force``)."""
        job = self.job(job_id)
        if job.status is not JobStatus.IN_PROGRESS:
            raise JobsError(
                JobsErrorCode.INVALID_STATE_TRANSITION, f"Job {job_id} is {job.status.value}"
            )
        now = int(self.clock())
        things = set()
        for execution in self.store.executions_for_job(job_id):
            movable = execution.status is ExecutionStatus.QUEUED or (
                force and execution.status is ExecutionStatus.IN_PROGRESS
            )
            if movable:
                self.store.save_execution(
                    execution.moved(ExecutionStatus.CANCELED, now), execution.version
                )
                things.add(execution.thing)
        job = replace(job, status=JobStatus.CANCELED, last_updated_at=now)
        self.store.save_job(job)
        return job, self._notifications(things, now)

    def job(self, job_id: str) -> Job:
        job = self.store.job(job_id) if JOB_ID.fullmatch(job_id) else None
        if job is None:
            raise JobsError(JobsErrorCode.RESOURCE_NOT_FOUND, f"Job {job_id} not found")
        return job

    def jobs(self) -> list[Job]:
        return self.store.jobs()

    def executions(self, job_id: str) -> list[JobExecution]:
        self.job(job_id)
        return self.store.executions_for_job(job_id)

    def execution(self, job_id: str, thing: str) -> JobExecution:
        execution = self.store.execution(job_id, thing) if JOB_ID.fullmatch(job_id) else None
        if execution is None:
            raise JobsError(
                JobsErrorCode.RESOURCE_NOT_FOUND, f"Job execution {job_id} not found for {thing}"
            )
        return execution
