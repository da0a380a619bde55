"""AWS IoT Jobs records: jobs, job executions, their states and the device-side wire shapes
(spec/cloud.md section 3). Timestamps are integer epoch seconds: awsiotsdk parses every jobs
timestamp with ``datetime.fromtimestamp`` and fails on milliseconds."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from jumpstart.errors import InputError

__all__ = [
    "ALL_THINGS_GROUP",
    "JOB_ID",
    "ExecutionStatus",
    "Job",
    "JobExecution",
    "JobStatus",
    "JobsError",
    "JobsErrorCode",
    "execution_counts",
    "group_arn",
    "job_arn",
    "parse_target",
    "thing_arn",
]

# jobs-api: jobId is 1-64 of [a-zA-Z0-9_-].
JOB_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")

Json = Any


class ExecutionStatus(Enum):
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    TIMED_OUT = "TIMED_OUT"
    REMOVED = "REMOVED"
    CANCELED = "CANCELED"

    @property
    def terminal(self) -> bool:
        return self not in (ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS)


# The states a device may report with UpdateJobExecution (jobs-mqtt-api); the others are
# the service's.
DEVICE_SETTABLE = frozenset(
    {
        ExecutionStatus.IN_PROGRESS,
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.REJECTED,
    }
)


class JobStatus(Enum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"
    DELETION_IN_PROGRESS = "DELETION_IN_PROGRESS"


class JobsErrorCode(Enum):
    INVALID_TOPIC = "InvalidTopic"
    INVALID_JSON = "InvalidJson"
    INVALID_REQUEST = "InvalidRequest"
    INVALID_STATE_TRANSITION = "InvalidStateTransition"
    RESOURCE_NOT_FOUND = "ResourceNotFound"
    VERSION_MISMATCH = "VersionMismatch"
    INTERNAL_ERROR = "InternalError"
    REQUEST_THROTTLED = "RequestThrottled"
    TERMINAL_STATE_REACHED = "TerminalStateReached"


class JobsError(InputError):
    """A request answered on ``.../rejected``; some carry the execution's current state."""

    def __init__(
        self,
        code: JobsErrorCode,
        message: str,
        client_token: str | None = None,
        execution: JobExecution | None = None,
    ) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.client_token = client_token
        self.execution = execution

    def document(self, now: int) -> dict[str, Json]:
        doc: dict[str, Json] = {"code": self.code.value, "message": self.message}
        if self.client_token is not None:
            doc["clientToken"] = self.client_token
        doc["timestamp"] = now
        if self.execution is not None:
            doc["executionState"] = self.execution.state()
        return doc


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    document: str  # the job document as sent (UTF-8 JSON text)
    things: tuple[str, ...]
    description: str = ""
    status: JobStatus = JobStatus.IN_PROGRESS
    created_at: int = 0
    last_updated_at: int = 0
    completed_at: int | None = None
    sequence: int = 0  # creation order; start-next serves older jobs first

    def document_json(self) -> Json:
        return json.loads(self.document)


@dataclass(frozen=True, slots=True)
class JobExecution:
    job_id: str
    thing: str
    status: ExecutionStatus = ExecutionStatus.QUEUED
    status_details: dict[str, str] = field(default_factory=dict)
    queued_at: int = 0
    started_at: int | None = None
    last_updated_at: int = 0
    version: int = 1
    execution_number: int = 1
    timeout_at: int | None = None  # step timeout of an IN_PROGRESS execution
    sequence: int = 0  # the job's creation order

    def moved(
        self,
        status: ExecutionStatus,
        now: int,
        details: dict[str, str] | None = None,
        timeout_at: int | None = None,
    ) -> JobExecution:
        """This execution after one change (version + 1)."""
        started = self.started_at
        if started is None and status is not ExecutionStatus.QUEUED:
            started = now
        return replace(
            self,
            status=status,
            status_details=self.status_details if details is None else details,
            started_at=started,
            last_updated_at=now,
            version=self.version + 1,
            timeout_at=timeout_at if status is ExecutionStatus.IN_PROGRESS else None,
        )

    # --- wire shapes of the device-side API (awsiotsdk iotjobs) ---------------------------

    def state(self) -> dict[str, Json]:
        """JobExecutionState."""
        return {
            "status": self.status.value,
            "statusDetails": dict(self.status_details),
            "versionNumber": self.version,
        }

    def _timing(self) -> dict[str, Json]:
        """queuedAt, startedAt (once started), lastUpdatedAt, versionNumber, executionNumber:
        the tail JobExecutionSummary and JobExecutionData share."""
        doc: dict[str, Json] = {"queuedAt": self.queued_at}
        if self.started_at is not None:
            doc["startedAt"] = self.started_at
        doc.update(
            lastUpdatedAt=self.last_updated_at,
            versionNumber=self.version,
            executionNumber=self.execution_number,
        )
        return doc

    def summary(self) -> dict[str, Json]:
        """JobExecutionSummary."""
        return {"jobId": self.job_id, **self._timing()}

    def data(self, job_document: Json | None) -> dict[str, Json]:
        """JobExecutionData (the document only when asked for)."""
        doc: dict[str, Json] = {
            "jobId": self.job_id,
            "thingName": self.thing,
            "status": self.status.value,
            "statusDetails": dict(self.status_details),
            **self._timing(),
        }
        if job_document is not None:
            doc["jobDocument"] = job_document
        return doc


# ARNs in the control plane's shapes; the local cloud is one account in one region.
ARN_PREFIX = "arn:aws:iot:local:000000000000"
ALL_THINGS_GROUP = "all"  # the built-in thing group of every registered thing


def thing_arn(thing: str) -> str:
    return f"{ARN_PREFIX}:thing/{thing}"


def job_arn(job_id: str) -> str:
    return f"{ARN_PREFIX}:job/{job_id}"


def group_arn(group: str) -> str:
    return f"{ARN_PREFIX}:thinggroup/{group}"


def parse_target(target: str) -> tuple[str, str]:
    """``("thing", name)`` or ``("thinggroup", name)`` of a CreateJob target: an ARN of
    any region and account, or a bare thing name."""
    if not target.startswith("arn:"):
        return "thing", target
    resource = target.split(":", 5)[-1]
    kind, _, name = resource.partition("/")
    if kind not in ("thing", "thinggroup") or not name:
        raise JobsError(JobsErrorCode.INVALID_REQUEST, f"Unsupported job target {target}")
    return kind, name


def execution_counts(executions: list[JobExecution]) -> dict[str, int]:
    """DescribeJob's ``jobProcessDetails``."""
    names = {
        ExecutionStatus.CANCELED: "numberOfCanceledThings",
        ExecutionStatus.SUCCEEDED: "numberOfSucceededThings",
        ExecutionStatus.FAILED: "numberOfFailedThings",
        ExecutionStatus.REJECTED: "numberOfRejectedThings",
        ExecutionStatus.QUEUED: "numberOfQueuedThings",
        ExecutionStatus.IN_PROGRESS: "numberOfInProgressThings",
        ExecutionStatus.REMOVED: "numberOfRemovedThings",
        ExecutionStatus.TIMED_OUT: "numberOfTimedOutThings",
    }
    counts = dict.fromkeys(names.values(), 0)
    for execution in executions:
        counts[names[execution.status]] += 1
    return counts
