"""``jumpstart fleet run``: 200 outlets for 60 s with a power cut a second, as CI runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jumpstart.errors import InputError
from jumpstart.fleet.runner import parse_rate

REPO = Path(__file__).resolve().parents[2]


def test_two_hundred_outlets_with_churn_all_end_in_sync() -> None:
    command = [sys.executable, "-m", "jumpstart.cli", "fleet", "run", "--devices", "200"]
    command += ["--duration", "60", "--churn", "1/s", "--json"]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(report)
    assert report["devices"] == report["in_sync"] == report["connected"] == 200
    assert report["churn_events"] >= 30  # about one a second for a minute
    assert report["connects"] >= 200 + report["churn_events"] * 0.9  # each cut reconnected
    assert report["nvs_intact"] == 200  # no committed NVS write lost to a cut
    assert report["own_flash_kib_per_device"] < 64


@pytest.mark.parametrize(
    ("text", "per_s"), [("1/s", 1.0), ("0.5/s", 0.5), ("30/min", 0.5), ("0", 0.0)]
)
def test_rates(text: str, per_s: float) -> None:
    assert parse_rate(text) == per_s


@pytest.mark.parametrize("text", ["fast", "1/h", "-1/s", "/s"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(InputError, match="like 1/s"):
        parse_rate(text)
