"""The fleet's cloud: ``jumpstart cloud serve`` in a process of its own.

A fleet of N devices holds N client sockets and the cloud N server sockets; in one process
that is 2N open files, past what a login is allowed (often 20,000 here, and only root raises
a hard limit). In its own process the cloud also runs on the second core. It is started and
stopped like any user's cloud (the reconnect storm stops it and starts it on the same port).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from jumpstart.children import die_with_parent
from jumpstart.cloud.endpoints import parse_broker
from jumpstart.cloud.home import CloudHome, RunningEndpoints
from jumpstart.errors import InputError

__all__ = ["CloudProcess", "FleetCloud", "fleet_cloud", "rss_anon_kib"]

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class CloudProcess:
    """One ``cloud serve`` child on ``home`` with ``broker``; its output goes to ``log``."""

    def __init__(self, home: CloudHome, broker: str, log: Path) -> None:
        if home.path.name != "cloud":  # cloud serve finds it as $JUMPSTART_HOME/cloud
            raise ValueError(f"a cloud home is a folder named 'cloud', not {home.path}")
        self.home = home
        self.broker = broker
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoints: RunningEndpoints | None = None

    async def start(self, mqtt_port: int = 0) -> RunningEndpoints:
        """Start it (MQTT on ``mqtt_port``, 0: any free port) and wait until it listens."""
        command = [sys.executable, "-m", "jumpstart.cli", "cloud", "serve"]
        command += ["--mqtt-port", str(mqtt_port), "--rest-port", "0", "--firmware-port", "0"]
        command += ["--dashboard-port", "0", "--broker", self.broker]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                # COLUMNS: rich must not wrap the dashboard's address in the log.
                env={**os.environ, "JUMPSTART_HOME": str(self.home.path.parent), "COLUMNS": "400"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # noqa: PLW1509  (prctl only, before exec)
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            endpoints = self.home.running_endpoints()
            if endpoints is not None and endpoints.pid == self.process.pid:
                self.endpoints = endpoints
                return endpoints
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.1)
        await self.stop()
        tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
        raise InputError("the fleet's cloud did not start: " + " | ".join(tail))

    @property
    def dashboard(self) -> str | None:
        """The dashboard's address with its token, as ``cloud serve`` printed it."""
        for line in self.log.read_text(errors="replace").splitlines():
            if "dashboard" in line.lower() and "http://" in line:
                return line[line.index("http://") :].split()[0]
        return None

    def rss_anon_kib(self) -> int:
        """The cloud's private memory, its children's (mosquitto) included."""
        if self.process is None:
            return 0
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        return rss_anon_kib(pid) + sum(rss_anon_kib(int(child)) for child in children)

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


def rss_anon_kib(pid: int) -> int:
    """A process's private resident memory (``RssAnon``), KiB; 0 once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class FleetCloud:
    """Where a fleet's devices and its toggles go, and the names its things get."""

    home: CloudHome
    host: str
    mqtt_port: int
    rest_port: int
    prefix: str
    dashboard: str | None


@contextlib.asynccontextmanager
async def fleet_cloud(
    broker: str, workdir: Path, home_root: Path | None
) -> AsyncIterator[FleetCloud]:
    """The cloud a fleet runs against. ``embedded`` or ``mosquitto``: a new cloud in
    ``workdir``, in its own process. ``mqtts://HOST:PORT``: a broker elsewhere that trusts
    the cloud in ``home_root`` (as ``cloud serve --broker mqtts://`` requires); that cloud's
    running process is used if there is one, else one is started with its engines attached
    to the broker. Its registry gets the fleet's things under a name of this run, and loses
    them again at the end."""
    mode = parse_broker(broker)
    if mode.kind != "mqtts":
        home = CloudHome(workdir / "cloud")
        home.ensure()
        cloud = CloudProcess(home, broker, workdir / "cloud.log")
        endpoints = await cloud.start()
        try:
            yield FleetCloud(
                home,
                "localhost",
                endpoints.mqtt_port,
                endpoints.rest_port,
                "outlet",
                cloud.dashboard,
            )
        finally:
            await cloud.stop()
        return
    if home_root is None:
        raise InputError(
            f"--broker {broker} needs --home: the jumpstart home whose cloud it trusts"
        )
    home = CloudHome(home_root / "cloud")
    if not home.ca_pem.is_file():
        raise InputError(
            f"no cloud in {home_root} (no {home.ca_pem}): run `jumpstart cloud serve` there once"
        )
    prefix = f"fleet{secrets.token_hex(3)}"
    started: CloudProcess | None = None
    running = home.running_endpoints()
    if running is None:
        started = CloudProcess(home, broker, workdir / "cloud.log")
        running = await started.start()
    try:
        dashboard = started.dashboard if started is not None else None
        yield FleetCloud(home, mode.host, mode.port, running.rest_port, prefix, dashboard)
    finally:
        if started is not None:
            await started.stop()
        with home.registry() as registry:
            for thing in registry.things():
                if thing.name.startswith(prefix + "-"):
                    registry.delete_thing(thing.name)
