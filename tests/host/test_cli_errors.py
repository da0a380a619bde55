"""Every way the CLI can fail ends in one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from jumpstart.cli import main

REPO = Path(__file__).resolve().parents[2]
FREE = {"--mqtt-port": "0", "--rest-port": "0", "--firmware-port": "0", "--dashboard-port": "0"}


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _ports(option: str, value: int) -> list[str]:
    args = []
    for name, default in FREE.items():
        args += [name, str(value) if name == option else default]
    return args


@pytest.mark.parametrize("option", sorted(FREE))
def test_cloud_serve_on_a_busy_port_names_port_and_option(
    home: Path, busy_port: int, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cloud", "serve", *_ports(option, busy_port)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: cannot listen on port {busy_port} ({option}): ")
    assert f"choose another with {option} PORT" in line


def test_make_run_on_a_busy_port_names_run_args(
    home: Path, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--apps", str(REPO / "apps"), *_ports("--rest-port", busy_port)]
    assert main(args) == 2
    line = _one_error_line(capsys)
    assert f"port {busy_port} (--rest-port)" in line
    assert line.endswith('(make run: RUN_ARGS="--rest-port PORT")')


@pytest.mark.parametrize("command", [["cloud", "serve"], ["run", "--apps", str(REPO / "apps")]])
@pytest.mark.parametrize("value", [99999, -1])
def test_out_of_range_port_is_one_line(
    home: Path, command: list[str], value: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, *_ports("--mqtt-port", value)]) == 2
    expected = f"error: --mqtt-port {value} is not a port: use 1-65535, or 0 for any free one"
    if command[0] == "run":
        expected += ' (make run: RUN_ARGS="--mqtt-port PORT")'
    assert _one_error_line(capsys) == expected


def test_an_os_error_anywhere_is_one_line(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A folder where a file is to be written: the OSError reaches the top of the CLI.
    csv = tmp_path / "factory.csv"
    csv.write_text("key,type,encoding,value\nfctry,namespace,,\nserial_no,data,string,A1\n")
    folder = tmp_path / "out.bin"
    folder.mkdir()
    assert main(["nvs", "generate", str(csv), str(folder), "0x6000"]) == 2
    assert _one_error_line(capsys).startswith("error: ")
