"""ota_agent: firmware upgrades the guide's way (an ``ota_url`` in the shadow) and as jobs.

A desired ``ota_url`` (or an AWS IoT job ``{"operation": "ota", "url": ...}``) starts an
esp_https_ota download into the passive slot, validated against the embedded server CA. The
outlet reports ``ota_status``: ``downloading N%``, ``verifying``, ``rebooting``, or
``failed: <reason>``; on success it clears ``ota_url`` in reported and desired (as the
guide's firmware does) and restarts. The new app confirms itself once it has synced with the
cloud; if it does not within ``ota_confirm_s`` it rolls back, and if it crashes before that
the bootloader rolls back at the next boot. The previous app then reports the rollback.
"""

import json
import uuid
from typing import Any, Protocol

from jumpstart.formats.aws_iot import jobs_prefix
from jumpstart.formats.otadata import OtaImgState
from jumpstart.idf.app_context import AppContext
from jumpstart.idf.esp_err import EspError
from jumpstart.idf.https_ota import HttpsOta, HttpsOtaConfig
from jumpstart.idf.mqtt import MqttEvent, MqttEventData
from jumpstart.idf.nvs import NvsError

from ..outlet_cloud import OutletCloud

TAG = "ota"
PROGRESS_STEP = 10  # report every 10 percent
REBOOT_REPORT_WAIT_S = 3.0  # let the "rebooting" report reach the cloud first
OTA_NAMESPACE = "ota"
JOB_KEY = "job_id"  # the job whose image we are running or installing
SLOT_KEY = "job_slot"  # the slot that job installed into
JOB_OPERATION = "ota"


class JobReports(Protocol):
    def progress(self, job_id: str, percent: int) -> None: ...
    def failed(self, job_id: str, reason: str) -> None: ...


class OtaAgent:
    """Starts, reports and confirms upgrades for one boot of the outlet."""

    def __init__(self, ctx: AppContext, cloud: OutletCloud) -> None:
        assert ctx.ota is not None, "the partition table has no OTA slots"
        self.ctx = ctx
        self.ota = ctx.ota
        self.cloud = cloud
        self.busy = False
        self.jobs: JobReports | None = None
        self.confirm_s = float(ctx.config.get("ota_confirm_s", 60))
        self.pending = self._running_state() == OtaImgState.PENDING_VERIFY
        self._timer = ctx.timers.create(self._not_confirmed, "ota_confirm")
        if self.pending:
            ctx.log.i(
                TAG,
                f"New firmware {ctx.app.version}: confirming once in sync with the cloud "
                f"(rollback after {self.confirm_s:g} s)",
            )
            self._timer.start_once(int(self.confirm_s * 1_000_000))
        cloud.on_synced.append(self.synced)
        cloud.on_delta.append(self.delta)

    def _running_state(self) -> int | None:
        try:
            return self.ota.get_state_partition(self.ota.get_running_partition())
        except EspError:
            return None

    # -- confirmation and rollback ---------------------------------------------------------
    def _not_confirmed(self) -> None:
        self.ctx.log.e(TAG, f"No cloud within {self.confirm_s:g} s: rolling back")
        try:
            self.ota.mark_app_invalid_rollback_and_reboot()
        except EspError as err:
            self.ctx.log.e(TAG, f"rollback impossible ({err.detail}); keeping this firmware")

    def synced(self, _document: dict[str, Any] | None) -> None:
        if self.pending:
            self.pending = False
            self._timer.stop()
            self.ota.mark_app_valid_cancel_rollback()
            self.ctx.log.i(TAG, f"Firmware {self.ctx.app.version} confirmed")
            self.cloud.report({"ota_status": f"updated to {self.ctx.app.version}"})
            return
        invalid = self.ota.get_last_invalid_partition()
        if invalid is not None:
            failed = self.ota.get_partition_description(invalid)
            self.cloud.report(
                {
                    "ota_status": f"rolled back: {failed.project_name} {failed.version} "
                    "did not confirm itself"
                }
            )

    # -- starting an upgrade -----------------------------------------------------------------
    def delta(self, state: dict[str, Any]) -> None:
        url = state.get("ota_url")
        if isinstance(url, str) and url:
            self.start(url)

    def start(self, url: str, job_id: str | None = None) -> bool:
        """Begin an upgrade from ``url`` unless one is running; False if refused."""
        if self.busy:
            self.ctx.log.w(TAG, f"upgrade already running; {url} ignored")
            return False
        if self.pending:
            self._fail("this firmware has not confirmed itself yet", job_id)
            return False
        self.busy = True
        self.ctx.create_task(self._upgrade(url, job_id), "ota_task")
        return True

    def _status(self, status: str, **fields: Any) -> int:
        self.ctx.log.i(TAG, f"OTA {status}")
        return self.cloud.report({"ota_status": status, **fields})

    def _fail(self, reason: str, job_id: str | None) -> None:
        self.ctx.log.e(TAG, f"OTA failed: {reason}")
        # Clearing desired ota_url too: a failed URL must not be retried at every reconnect.
        self.cloud.report({"ota_status": f"failed: {reason}", "ota_url": ""}, {"ota_url": None})
        if job_id is not None and self.jobs is not None:
            self.jobs.failed(job_id, reason)

    async def _upgrade(self, url: str, job_id: str | None) -> None:
        log = self.ctx.log
        cert = self.cloud.credentials.server_cert
        try:
            # ota_url is not echoed in reported while downloading: the delta stays, so an
            # upgrade cut short (power, reboot) starts again at the next sync.
            self._status("downloading 0%")
            session = await HttpsOta.begin(self.ota, HttpsOtaConfig(url, cert), log)
            try:
                description = await session.get_img_desc()
                log.i(TAG, f"Image: {description.project_name} {description.version}")
                reported = 0
                while not await session.perform():
                    if session.image_size:
                        percent = session.image_len_read * 100 // session.image_size
                        if percent >= reported + PROGRESS_STEP:
                            reported = percent - percent % PROGRESS_STEP
                            self._status(f"downloading {reported}%")
                            if job_id is not None and self.jobs is not None:
                                self.jobs.progress(job_id, reported)
                self._status("verifying")
                verified = await session.finish()
            except BaseException:
                await session.abort()
                raise
        except EspError as err:
            self.busy = False
            self._fail(err.detail or str(err), job_id)
            return
        if job_id is not None:
            self._remember_job(job_id, verified.partition.label)
        log.i(TAG, "OTA rebooting")
        msg_id = self.cloud.report({"ota_status": "rebooting", "ota_url": ""}, {"ota_url": None})
        await self.cloud.wait_published(msg_id, REBOOT_REPORT_WAIT_S)
        log.i(TAG, "Prepare to restart system!")
        self.ctx.restart()

    # -- the job in progress across the reboot ---------------------------------------------
    def _remember_job(self, job_id: str, slot: str) -> None:
        with self.ctx.nvs.open(OTA_NAMESPACE) as nvs:
            nvs.set_str(JOB_KEY, job_id)
            nvs.set_str(SLOT_KEY, slot)
            nvs.commit()

    def job_outcome(self, job_id: str) -> bool | None:
        """For a job this device installed before its last reboot: True if it runs the new
        image (confirmed), False if it rolled back, None if the job is not ours."""
        try:
            with self.ctx.nvs.open(OTA_NAMESPACE) as nvs:
                if nvs.get_str(JOB_KEY) != job_id:
                    return None
                slot = nvs.get_str(SLOT_KEY)
                nvs.erase_all()
                nvs.commit()
        except NvsError:
            return None
        return slot == self.ota.get_running_partition().label


class OtaJobs:
    """AWS IoT jobs for the outlet: ``{"operation": "ota", "url": ...}`` runs an upgrade."""

    def __init__(self, ctx: AppContext, cloud: OutletCloud, agent: OtaAgent) -> None:
        self.ctx = ctx
        self.cloud = cloud
        self.agent = agent
        agent.jobs = self
        self.prefix = jobs_prefix(cloud.credentials.thing)
        self._topics = {
            f"{self.prefix}/notify-next": self._notify_next,
            f"{self.prefix}/start-next/accepted": self._started,
        }
        for topic in [*self._topics, f"{self.prefix}/start-next/rejected"]:
            cloud.mqtt.subscribe(topic, 1)
        ctx.events.register(MqttEvent.DATA, self._on_data)
        cloud.on_synced.append(lambda _doc: self._start_next())

    def _publish(self, topic: str, document: dict[str, Any]) -> None:
        document["clientToken"] = uuid.uuid4().hex[:16]
        self.cloud.mqtt.publish(topic, json.dumps(document, separators=(",", ":")), qos=1)

    def _start_next(self) -> None:
        self._publish(f"{self.prefix}/start-next", {})

    def _update(self, job_id: str, status: str, details: dict[str, str]) -> None:
        self.ctx.log.i(TAG, f"job {job_id}: {status} {details}")
        self._publish(
            f"{self.prefix}/{job_id}/update", {"status": status, "statusDetails": details}
        )

    def progress(self, job_id: str, percent: int) -> None:
        self._update(job_id, "IN_PROGRESS", {"progress": f"{percent}%"})

    def failed(self, job_id: str, reason: str) -> None:
        self._update(job_id, "FAILED", {"reason": reason[:256]})

    def _on_data(self, _event: Any, data: Any) -> None:
        assert isinstance(data, MqttEventData)
        handler = self._topics.get(data.topic)
        document = data.json_object()
        if handler is not None and document is not None:
            handler(document)

    def _notify_next(self, document: dict[str, Any]) -> None:
        if isinstance(document.get("execution"), dict) and not self.agent.busy:
            self._start_next()

    def _started(self, document: dict[str, Any]) -> None:
        execution = document.get("execution")
        if not isinstance(execution, dict):
            return  # nothing queued
        job_id = str(execution.get("jobId", ""))
        job = execution.get("jobDocument")
        if not job_id:
            return
        outcome = self.agent.job_outcome(job_id)
        if outcome is True:
            self._update(job_id, "SUCCEEDED", {"firmware": self.ctx.app.version})
            return
        if outcome is False:
            self._update(
                job_id, "FAILED", {"reason": "rolled back: the new firmware did not confirm itself"}
            )
            return
        url = job.get("url") if isinstance(job, dict) else None
        if (
            not isinstance(job, dict)
            or job.get("operation") != JOB_OPERATION
            or not isinstance(url, str)
        ):
            self._update(job_id, "REJECTED", {"reason": "not an ota job with a url"})
            return
        self.agent.start(url, job_id)
