"""Several processes starting on a fresh $JUMPSTART_HOME at once agree on one CA."""

from __future__ import annotations

import http.client
import os
import re
import ssl
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

JUMPSTART = str(Path(sys.executable).parent / "jumpstart")
# Each process loads jumpstart, then waits for the start signal (a file), so that all of them
# reach the fresh home within a millisecond of each other rather than one by one.
AT_THE_SIGNAL = """
import os, sys, time
from jumpstart.cli import main
while not os.path.exists(sys.argv[1]):
    time.sleep(0.0005)
sys.exit(main(sys.argv[2:]))
"""


def _start_together(
    tmp_path: Path, env: dict[str, str], commands: list[list[str]], server: list[str] | None = None
) -> list:
    signal = tmp_path / "go"
    serving = None
    if server is not None:
        serving = subprocess.Popen(
            [sys.executable, "-c", AT_THE_SIGNAL, str(signal), *server],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", AT_THE_SIGNAL, str(signal), *command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    time.sleep(1.5)  # every interpreter is up and waiting
    signal.touch()
    results: list = []
    for process in processes:
        _, err = process.communicate(timeout=60)
        results.append((process.returncode, err))
    if serving is not None:
        results.append(serving)
    return results


def _chains_to(cert_pem: bytes, ca: x509.Certificate) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    if cert.issuer != ca.subject:
        return False
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _rest_port(server: subprocess.Popen[str]) -> int:
    assert server.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        found = re.search(r"https://localhost:(\d+)", line)
        if found:
            return int(found[1])
        if not line:
            break
    raise AssertionError(f"cloud serve did not start (exit {server.poll()})")


def test_five_processes_initialise_one_cloud_home(tmp_path: Path) -> None:
    root = tmp_path / "home"
    env = {**os.environ, "JUMPSTART_HOME": str(root)}
    commands = [
        ["cloud", "thing", "create", f"race{n}", "-o", str(tmp_path / f"cfg{n}")] for n in range(4)
    ]
    ports = [
        "--mqtt-port",
        "0",
        "--rest-port",
        "0",
        "--firmware-port",
        "0",
        "--dashboard-port",
        "0",
    ]
    *results, server = _start_together(tmp_path, env, commands, ["cloud", "serve", *ports])
    try:
        for code, err in results:
            assert code == 0, err
        rest_port = _rest_port(server)
        # Every new thing's certificate is accepted by the server that started beside it.
        for n in range(4):
            cfg = tmp_path / f"cfg{n}"
            context = ssl.create_default_context(cafile=str(cfg / "server.cert"))
            context.load_cert_chain(str(cfg / "device.cert"), str(cfg / "device.key"))
            conn = http.client.HTTPSConnection("localhost", rest_port, context=context, timeout=10)
            try:
                conn.request("GET", f"/things/race{n}/shadow")
                assert conn.getresponse().status == 404  # no shadow yet: TLS and auth passed
            finally:
                conn.close()
    finally:
        server.terminate()
        server.communicate(timeout=20)
    cloud = root / "cloud"
    ca = x509.load_pem_x509_certificate((cloud / "ca.pem").read_bytes())
    assert _chains_to((cloud / "server.pem").read_bytes(), ca)
    for n in range(4):
        assert _chains_to((tmp_path / f"cfg{n}" / "device.cert").read_bytes(), ca)
        assert (tmp_path / f"cfg{n}" / "server.cert").read_bytes() == (
            cloud / "ca.pem"
        ).read_bytes()
    listed = subprocess.run(
        [JUMPSTART, "cloud", "thing", "list"], env=env, capture_output=True, text=True, check=True
    )
    assert all(f"race{n}" in listed.stdout for n in range(4))
    assert not [p.name for p in cloud.iterdir() if p.name.startswith(".") and p.name != ".lock"]


def test_two_processes_creating_devices_get_distinct_macs(tmp_path: Path) -> None:
    env = {**os.environ, "JUMPSTART_HOME": str(tmp_path / "home")}
    commands = [["device", "create", f"d{n}", "--mac", "24:0a:c4:00:00:01"] for n in range(2)]
    results = _start_together(tmp_path, env, commands)
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results  # one took the MAC, the other was told it is used
    assert any("already used" in err for _, err in results)
