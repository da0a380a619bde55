"""``jumpstart fleet run`` and ``fleet bench`` as users run them: processes, JSON out, the
cloud started alongside in a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jumpstart.cloud.home import CloudHome
from jumpstart.errors import InputError
from jumpstart.fleet.runner import Churn, parse_rate
from tests.cloud.cloud_process import serve
from tests.system_tools import require

REPO = Path(__file__).resolve().parents[2]


def fleet(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "jumpstart.cli", "fleet", *args]
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


def report_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(report)
    return report


def test_two_hundred_outlets_with_churn_all_end_in_sync() -> None:
    done = fleet("run", "--devices", "200", "--duration", "60", "--churn", "1/s", "--json")
    report = report_of(done)
    assert report["devices"] == report["in_sync"] == report["connected"] == 200
    assert report["churn_events"] >= 30  # about one a second for a minute
    assert set(report["churn"]) == {kind.value for kind in Churn}  # each kind happened
    assert report["connects"] >= 200 + report["churn_events"] * 0.9  # each came back
    assert report["nvs_intact"] == 200  # no committed NVS write lost to a cut
    assert report["own_flash_kib_per_device"] < 64


def test_a_fleet_provisioned_over_softap_then_toggled() -> None:
    done = fleet(
        "run", "--devices", "8", "--duration", "20", "--provision", "--toggle-rate", "4/s",
        "--json",
    )  # fmt: skip
    report = report_of(done)
    assert report["provisioned"] == report["in_sync"] == 8
    assert report["nvs_intact"] == 8  # each keeps the home network its owner gave it
    assert report["toggles"] >= 20
    assert 0 < report["toggle_ms"]["p50"] <= report["toggle_ms"]["p99"] < 1000


def test_a_fleet_on_mosquitto_survives_churn() -> None:
    require("mosquitto")
    done = fleet(
        "run", "--devices", "30", "--duration", "15", "--churn", "2/s", "--broker", "mosquitto",
        "--json",
    )  # fmt: skip
    report = report_of(done)
    assert report["broker"] == "mosquitto"
    assert report["in_sync"] == report["nvs_intact"] == 30
    assert report["churn_events"] >= 10


def test_a_fleet_on_nats_survives_churn() -> None:
    require("nats-server")
    done = fleet(
        "run", "--devices", "30", "--duration", "10", "--churn", "1/s", "--toggle-rate", "2/s",
        "--broker", "nats", "--json",
    )  # fmt: skip
    report = report_of(done)
    assert report["broker"] == "nats"
    assert report["in_sync"] == report["nvs_intact"] == 30
    assert report["toggles"] >= 5


def test_a_fleet_joins_a_cloud_that_already_runs_on_its_broker(tmp_path: Path) -> None:
    require("mosquitto")
    server = serve(tmp_path, broker="mosquitto")  # the user's cloud, on mosquitto
    try:
        endpoint = f"mqtts://localhost:{server.mqtt_port}"
        done = fleet(
            "run", "--devices", "12", "--duration", "10", "--churn", "1/s", "--toggle-rate",
            "2/s", "--broker", endpoint, "--home", str(tmp_path), "--json",
        )  # fmt: skip
        report = report_of(done)
        assert report["in_sync"] == report["nvs_intact"] == 12
        assert report["toggles"] >= 5  # through that cloud's REST API
        with CloudHome(tmp_path / "cloud").registry() as registry:
            left = [t.name for t in registry.things() if t.name.startswith("fleet")]
        assert left == []  # the run's things are gone again
    finally:
        server.process.terminate()
        server.process.wait(30)


def test_bench_reports_what_a_cloud_team_asks() -> None:
    done = fleet("bench", "--devices", "20", "--toggles", "20", "--json", timeout=400)
    report = report_of(done)
    assert report["devices"] == report["connected"] == report["in_sync"] == 20
    for path in ("rest_to_relay_ms", "mqtt_to_relay_ms", "raw_round_trip_ms"):
        p = report[path]
        assert 0 < p["p50"] <= p["p95"] <= p["p99"] < 2000, (path, p)
    assert report["memory_per_device_kib"] > 0
    assert report["shared_kib"] > 0
    assert report["rest_toggles_per_s"] > 10
    assert report["storm"]["left_behind"] == 0
    assert 0 < report["storm"]["back_s"] < 90
    assert report["notes"] == []


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--devices", "0"],
        ["run", "--devices", "100000"],
        ["run", "--churn", "often"],
        ["run", "--toggle-rate", "-1/s"],
        ["run", "--duration", "0"],
        ["run", "--broker", "rabbitmq"],
        ["run", "--broker", "mqtts://"],
        ["run", "--broker", "mqtts://localhost:1"],  # no --home
        ["run", "--home", "/tmp"],  # --home without an external broker
        ["run", "--apps", "/nonexistent"],
        ["bench", "--devices", "-5"],
        ["bench", "--toggles", "0"],
        ["bench", "--broker", "\udcff"],
    ],
)
def test_bad_options_are_refused_in_one_line(args: list[str]) -> None:
    done = fleet(*args, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    ("text", "per_s"), [("1/s", 1.0), ("0.5/s", 0.5), ("30/min", 0.5), ("0", 0.0)]
)
def test_rates(text: str, per_s: float) -> None:
    assert parse_rate(text) == per_s


@pytest.mark.parametrize("text", ["fast", "1/h", "-1/s", "/s"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(InputError, match="like 1/s"):
        parse_rate(text)
