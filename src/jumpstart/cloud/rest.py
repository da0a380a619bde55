"""The REST data endpoint (AWS IoT "iot-data", port 8443, mutual TLS), on h11.

Routes (spec/cloud.md 2.9)::

    GET|POST|DELETE /things/{thing}/shadow[?name={shadow}]
    GET  /api/things/shadow/ListNamedShadowsForThing/{thing}[?nextToken=&pageSize=]
    POST /topics/{topic}[?qos=0|1&retain=true|false]
    GET  /health

and the jobs control plane (AWS "iot" paths, so boto3's ``iot`` client works)::

    PUT  /jobs/{jobId}                  CreateJob {targets, document, description}
    GET  /jobs                          ListJobs
    GET  /jobs/{jobId}                  DescribeJob
    PUT  /jobs/{jobId}/cancel[?force=]  CancelJob
    GET  /jobs/{jobId}/job-document     GetJobDocument
    GET  /jobs/{jobId}/things           ListJobExecutionsForJob
    GET  /things/{thing}/jobs           ListJobExecutionsForThing
    GET  /things/{thing}/jobs/{jobId}   DescribeJobExecution

Content-Type is ignored (the guide's ``curl -d`` sends form encoding). Errors carry the
``x-amzn-ErrorType`` header botocore reads first, and the shadow error document as body.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import h11

from jumpstart.cloud import json_input
from jumpstart.cloud.https_server import (
    HttpRefusalError,
    HttpsServer,
    requests,
    send_response,
    server_connection,
)
from jumpstart.cloud.jobs.model import (
    ALL_THINGS_GROUP,
    Job,
    JobExecution,
    JobsError,
    JobsErrorCode,
    execution_counts,
    job_arn,
    parse_target,
    thing_arn,
)
from jumpstart.cloud.jobs.store import JobExistsError
from jumpstart.cloud.messages import Message
from jumpstart.cloud.policy import Principal
from jumpstart.cloud.tls import server_context
from jumpstart.cloud.topics import SHADOW_NAME, THING, ShadowOp, ShadowTopic

if TYPE_CHECKING:
    from jumpstart.cloud.service import CloudService

__all__ = ["ERROR_TYPES", "RestServer"]

# botocore's iot-data error shapes by status (spec/cloud.md 2.7).
ERROR_TYPES = {
    400: "InvalidRequestException",
    401: "UnauthorizedException",
    403: "ForbiddenException",
    404: "ResourceNotFoundException",
    405: "MethodNotAllowedException",
    409: "ConflictException",
    413: "RequestEntityTooLargeException",
    415: "UnsupportedDocumentEncodingException",
    429: "ThrottlingException",
    500: "InternalFailureException",
    503: "ServiceUnavailableException",
}
MAX_BODY = 128 * 1024  # the message broker's payload quota applies to REST publishes too
DEFAULT_PAGE_SIZE = 25
_METHODS = {"GET": ShadowOp.GET, "POST": ShadowOp.UPDATE, "DELETE": ShadowOp.DELETE}


# The jobs errors' HTTP status and botocore ``iot`` error shape.
_JOBS_ERRORS = {
    JobsErrorCode.RESOURCE_NOT_FOUND: (404, "ResourceNotFoundException"),
    JobsErrorCode.INVALID_STATE_TRANSITION: (409, "InvalidStateTransitionException"),
    JobsErrorCode.VERSION_MISMATCH: (409, "VersionConflictException"),
}


class _HttpError(HttpRefusalError):
    def __init__(self, status: int, message: str, error_type: str | None = None) -> None:
        super().__init__(status, message)
        self.error_type = error_type or ERROR_TYPES.get(status, "Exception")


Response = tuple[int, dict[str, Any]]


def _check_body_size(length: int) -> None:
    if length > MAX_BODY:
        raise _HttpError(413, "The payload exceeds the maximum size allowed")


class RestServer(HttpsServer):
    def __init__(self, cloud: CloudService) -> None:
        home = cloud.home
        super().__init__(server_context(home.server_pem, home.server_key, home.ca_pem))
        self.cloud = cloud
        # Open connections and the certificate each was opened with.
        self._certificates: dict[asyncio.Task[Any], str] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        principal = self.cloud.authenticate(der) if der else None
        task = asyncio.current_task()
        if principal is not None and task is not None:
            self._certificates[task] = principal.certificate_id
        try:
            await self._serve_requests(reader, writer, der)
        finally:
            if task is not None:
                self._certificates.pop(task, None)

    def refusal_body(self, refusal: HttpRefusalError) -> tuple[list[tuple[str, str]], bytes]:
        """AWS's error document and ``x-amzn-ErrorType``, as for any other error."""
        error_type = getattr(refusal, "error_type", None) or ERROR_TYPES.get(refusal.status)
        doc = {"code": refusal.status, "message": refusal.message, "timestamp": int(time.time())}
        headers = [("Content-Type", "application/json")]
        if error_type:
            headers.append(("x-amzn-ErrorType", error_type))
        return headers, json_input.encode(doc)

    def drop_revoked(self, revoked: set[str]) -> int:
        """End the keep-alive connections opened with a revoked certificate; how many."""
        doomed = [task for task, cert in self._certificates.items() if cert in revoked]
        for task in doomed:
            task.cancel()
        return len(doomed)

    async def _serve_requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, der: bytes | None
    ) -> None:
        conn = server_connection()
        async for request, body in requests(conn, reader, _check_body_size):
            # Checked on every request: a certificate revoked since the handshake is refused.
            principal = self.cloud.authenticate(der) if der else None
            status, doc, error_type = self.respond(principal, request, body)
            try:
                payload = json_input.encode(doc)
            except ValueError:  # a value stored before non-JSON numbers were refused
                status, error_type = 500, ERROR_TYPES[500]
                message = "the stored document holds a value JSON cannot carry"
                payload = json_input.encode({"code": 500, "message": message})
            headers = [("Content-Type", "application/json")]
            if error_type:
                headers.append(("x-amzn-ErrorType", error_type))
            headers.append(("x-amzn-RequestId", str(uuid.uuid4())))
            await send_response(conn, writer, status, headers, payload)

    # routing -----------------------------------------------------------------------------

    def respond(
        self, principal: Principal | None, request: h11.Request, body: bytes
    ) -> tuple[int, dict[str, Any], str | None]:
        """Status, JSON body and, for errors, the ``x-amzn-ErrorType``."""
        now = int(time.time())
        try:
            status, doc = self._route(principal, request, body)
        except _HttpError as err:
            doc = {"code": err.status, "message": err.message, "timestamp": now}
            return err.status, doc, err.error_type
        except JobsError as err:
            status, error_type = _JOBS_ERRORS.get(err.code, (400, "InvalidRequestException"))
            return status, {"message": err.message}, error_type
        error = ERROR_TYPES.get(status, "Exception") if status >= 400 else None
        return status, doc, error

    def _route(self, principal: Principal | None, request: h11.Request, body: bytes) -> Response:
        method = request.method.decode()
        url = urlsplit(request.target.decode("ascii", "replace"))
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        if parts == ["health"]:
            serving, details = self.cloud.bus.health()
            return (200, {"status": "ok", **details}) if serving else (503, details)
        if principal is None:
            raise _HttpError(403, "Forbidden")
        if len(parts) == 3 and parts[0] == "things" and parts[2] == "shadow":
            return self._shadow(principal, method, parts[1], query.get("name", ""), body)
        if parts[:4] == ["api", "things", "shadow", "ListNamedShadowsForThing"] and len(parts) == 5:
            if method != "GET":
                raise _HttpError(405, "Method Not Allowed")
            return self._list_named(principal, parts[4], query)
        if parts and parts[0] == "jobs":
            return self._jobs(principal, method, parts[1:], query, body)
        if len(parts) in (3, 4) and parts[0] == "things" and parts[2] == "jobs":
            return self._thing_jobs(principal, method, parts[1], parts[3:])
        if parts and parts[0] == "topics" and len(parts) >= 2:
            if method != "POST":
                raise _HttpError(405, "Method Not Allowed")
            return self._publish(principal, "/".join(parts[1:]), query, body)
        raise _HttpError(404, "Not Found")

    def _shadow(
        self, principal: Principal, method: str, thing: str, name: str, body: bytes
    ) -> Response:
        if method not in _METHODS:
            raise _HttpError(405, "Method Not Allowed")
        if not THING.fullmatch(thing) or (name and not SHADOW_NAME.fullmatch(name)):
            raise _HttpError(400, "Invalid thing or shadow name")
        if not principal.may_access_shadow(thing):
            raise _HttpError(403, "Forbidden")
        request = ShadowTopic(thing, name, _METHODS[method])
        reply = self.cloud.shadows.handle(request, body, via_mqtt=False)
        for message in reply.messages:
            self.cloud.bus.publish(message.topic, message.payload)
        return reply.status, reply.body

    def _list_named(self, principal: Principal, thing: str, query: dict[str, str]) -> Response:
        if not principal.may_access_shadow(thing):
            raise _HttpError(403, "Forbidden")
        names = self.cloud.shadows.named_shadows(thing)
        try:
            size = int(query.get("pageSize", DEFAULT_PAGE_SIZE))
            start = int(query.get("nextToken", "0") or 0)
        except ValueError:
            raise _HttpError(400, "Invalid pageSize or nextToken") from None
        if size < 1:
            raise _HttpError(400, "Invalid pageSize or nextToken")
        page = names[start : start + size]
        doc: dict[str, Any] = {"results": page, "timestamp": int(time.time())}
        if start + size < len(names):
            doc["nextToken"] = str(start + size)
        return 200, doc

    def _publish(
        self, principal: Principal, topic: str, query: dict[str, str], body: bytes
    ) -> Response:
        qos, retain = query.get("qos", "0"), query.get("retain", "false")
        if qos not in ("0", "1") or retain not in ("true", "false"):
            raise _HttpError(400, "qos must be 0 or 1, retain true or false")
        if not principal.may_publish(topic):
            raise _HttpError(403, "Forbidden")
        if retain == "true" and topic.startswith("$"):
            raise _HttpError(400, "Retained messages are not allowed on reserved topics")
        if retain == "true" and not self.cloud.bus.retains:
            raise _HttpError(
                400, "Retained messages are not available on this cloud's broker (NATS)"
            )
        self.cloud.bus.publish_request(topic, body, int(qos), retain == "true", principal)
        return 200, {"message": "OK", "traceId": str(uuid.uuid4())}

    # jobs control plane -------------------------------------------------------------------

    def _jobs(
        self,
        principal: Principal,
        method: str,
        parts: list[str],
        query: dict[str, str],
        body: bytes,
    ) -> Response:
        jobs = self.cloud.jobs
        writing = method == "PUT"
        if not (principal.may_manage_jobs() if writing else principal.may_read_jobs()):
            raise _HttpError(403, "Forbidden")
        if not parts:
            _expect(method, "GET")
            return 200, {"jobs": [_job_summary(job) for job in jobs.jobs()]}
        job_id, rest = parts[0], parts[1:]
        if not rest and method == "PUT":
            return self._create_job(job_id, body)
        if not rest:
            _expect(method, "GET")
            job = jobs.job(job_id)
            return 200, {"documentSource": None, "job": _job_detail(job, jobs.executions(job_id))}
        if rest == ["cancel"]:
            _expect(method, "PUT")
            job, messages = jobs.cancel_job(job_id, query.get("force", "false") == "true")
            self._publish_all(messages)
            return 200, {"jobArn": job_arn(job.job_id), "jobId": job.job_id}
        if rest == ["job-document"]:
            _expect(method, "GET")
            return 200, {"document": jobs.job(job_id).document}
        if rest == ["things"]:
            _expect(method, "GET")
            summaries = [
                {"thingArn": thing_arn(e.thing), "jobExecutionSummary": _execution_summary(e)}
                for e in jobs.executions(job_id)
            ]
            return 200, {"executionSummaries": summaries}
        raise _HttpError(404, "Not Found")

    def _create_job(self, job_id: str, body: bytes) -> Response:
        try:
            request = json_input.parse(body)
        except json_input.JsonInputError:
            raise _HttpError(400, "The request body is not JSON") from None
        if not isinstance(request, dict):
            raise _HttpError(400, "The request body must be a JSON object")
        targets, document = request.get("targets"), request.get("document")
        description = request.get("description", "")
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise _HttpError(400, "targets must be a list of thing or thing group ARNs")
        if not isinstance(document, str) or not isinstance(description, str):
            raise _HttpError(400, "document and description must be strings")
        with self.cloud.home.registry() as registry:
            known = [thing.name for thing in registry.things()]
        things: list[str] = []
        for target in targets:
            kind, name = parse_target(target)
            if kind == "thinggroup" and name == ALL_THINGS_GROUP:
                things.extend(known)
            elif kind == "thinggroup":
                raise _HttpError(404, f"Thing group {name} not found")
            elif name not in known:
                raise _HttpError(400, f"Thing {name} is not registered")
            else:
                things.append(name)
        try:
            job, messages = self.cloud.jobs.create_job(job_id, document, things, description)
        except JobExistsError:
            raise _HttpError(
                409, f"Job {job_id} already exists", "ResourceAlreadyExistsException"
            ) from None
        self._publish_all(messages)
        return 200, {"jobArn": job_arn(job.job_id), "jobId": job.job_id, "description": description}

    def _thing_jobs(
        self, principal: Principal, method: str, thing: str, rest: list[str]
    ) -> Response:
        _expect(method, "GET")
        if not principal.may_read_jobs():
            raise _HttpError(403, "Forbidden")
        jobs = self.cloud.jobs
        if not rest:
            summaries = [
                {"jobId": e.job_id, "jobExecutionSummary": _execution_summary(e)}
                for e in jobs.store.executions_for_thing(thing)
            ]
            return 200, {"executionSummaries": summaries}
        execution = jobs.execution(rest[0], thing)
        doc = {
            "jobId": execution.job_id,
            "thingArn": thing_arn(thing),
            "statusDetails": {"detailsMap": dict(execution.status_details)},
            **_execution_summary(execution),
            "versionNumber": execution.version,
        }
        return 200, {"execution": doc}

    def _publish_all(self, messages: Iterable[Message]) -> None:
        for message in messages:
            self.cloud.bus.publish(message.topic, message.payload)


def _expect(method: str, allowed: str) -> None:
    if method != allowed:
        raise _HttpError(405, "Method Not Allowed")


def _execution_summary(execution: JobExecution) -> dict[str, Any]:
    doc: dict[str, Any] = {"status": execution.status.value, "queuedAt": execution.queued_at}
    if execution.started_at is not None:
        doc["startedAt"] = execution.started_at
    doc["lastUpdatedAt"] = execution.last_updated_at
    doc["executionNumber"] = execution.execution_number
    return doc


def _job_summary(job: Job) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "jobArn": job_arn(job.job_id),
        "jobId": job.job_id,
        "targetSelection": "SNAPSHOT",
        "status": job.status.value,
        "createdAt": job.created_at,
        "lastUpdatedAt": job.last_updated_at,
    }
    if job.completed_at is not None:
        doc["completedAt"] = job.completed_at
    return doc


def _job_detail(job: Job, executions: list[JobExecution]) -> dict[str, Any]:
    doc = _job_summary(job)
    doc.update(
        targets=[thing_arn(thing) for thing in job.things],
        description=job.description,
        jobProcessDetails=execution_counts(executions),
    )
    return doc
