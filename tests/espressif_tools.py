"""espefuse and espsecure (esptool 5.6, PyPI) as the oracles of the eFuse and secure boot tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["espefuse", "espefuse_summary", "espsecure_flash_data", "sbv2_key_and_digest"]


def espefuse(path: Path, *args: str) -> str:
    """``espefuse --chip esp32 --virt --path-efuse-file PATH ARGS``; its stdout."""
    command = [sys.executable, "-m", "espefuse", "--chip", "esp32", "--virt"]
    command += ["--path-efuse-file", str(path), "--do-not-confirm", *args]
    env = {**os.environ, "COLUMNS": "200"}  # rich-click wraps at 80 columns otherwise
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def espefuse_summary(path: Path) -> dict[str, dict[str, object]]:
    """``summary --format json``, each field by name."""
    out = espefuse(path, "summary", "--format", "json")
    return dict(json.loads(out[out.index("{") :]))


def _espsecure(*args: str) -> None:
    command = [sys.executable, "-m", "espsecure", *args]
    subprocess.run(command, capture_output=True, check=True, timeout=60)


def sbv2_key_and_digest(folder: Path) -> tuple[Path, bytes]:
    """A new Secure Boot V2 RSA-3072 signing key, and its digest as espsecure computes it."""
    key, digest = folder / "sbv2.pem", folder / "sbv2_digest.bin"
    _espsecure("generate-signing-key", "--version", "2", "--scheme", "rsa3072", str(key))
    _espsecure("digest-sbv2-public-key", "--keyfile", str(key), "-o", str(digest))
    return key, digest.read_bytes()


def espsecure_flash_data(
    folder: Path, operation: str, key: bytes, address: int, data: bytes, crypt_conf: int = 0xF
) -> bytes:
    """``espsecure encrypt-flash-data`` / ``decrypt-flash-data`` (ESP32 scheme) on bytes."""
    key_path, src, out = folder / "fe_key.bin", folder / "fe_in.bin", folder / "fe_out.bin"
    key_path.write_bytes(key)
    src.write_bytes(data)
    _espsecure(
        f"{operation}-flash-data",
        "--keyfile",
        str(key_path),
        "--address",
        hex(address),
        "--flash-crypt-conf",
        hex(crypt_conf),
        "-o",
        str(out),
        str(src),
    )
    return out.read_bytes()
