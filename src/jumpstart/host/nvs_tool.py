"""The ``jumpstart nvs`` commands on files: nvs_partition_gen's commands and arguments.

Paths follow the generator: an output is placed under ``outdir`` unless it is absolute, key
files go to ``<outdir>/keys/``. Outputs are written through a temporary file, so an error
never leaves a partial or empty file behind (the generator leaves a 0-byte one).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jumpstart.errors import InputError
from jumpstart.formats.nvs import FormatVersion, NvsKeys, decrypt_image
from jumpstart.host.files import read_file, write_atomically
from jumpstart.host.nvs_gen import generate_partition, parse_nvs_size

__all__ = ["KeyFiles", "KeyRequest", "decrypt", "encrypt", "generate", "generate_key", "read_keys"]

KEYS_DIR = "keys"


def _version(version: int) -> FormatVersion:
    if version not in (1, 2):
        raise InputError(f"--version must be 1 or 2, got {version}")
    return FormatVersion.V1 if version == 1 else FormatVersion.V2


def _target(outdir: Path, name: str | Path) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else outdir.expanduser() / path


def _save(path: Path, data: bytes) -> None:
    # like the generator, create --outdir (and keys/) as needed
    write_atomically(path, data, make_parents=True)


def _save_key(path: Path, data: bytes, *, named: bool) -> Path:
    """Write a new key file, never over an existing one (a lost key is a lost partition).
    A default (time-stamped) name that is taken gets a ``-2``, ``-3``... suffix; a name the
    user chose that is taken is an error. O_EXCL: two runs at once cannot both take a name."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create {path.parent}: {err.strerror}") from None
    # The whole file first, under a temporary name; then linked to its name, which fails if
    # the name is taken (so nothing is ever replaced, and no half-written key appears).
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        candidate = path
        for n in range(2, 1000):
            try:
                os.link(tmp, candidate)
            except FileExistsError:
                if named:
                    raise InputError(
                        f"{candidate} exists; a key file is never overwritten: choose another name"
                    ) from None
                candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
                continue
            return candidate
        raise InputError(f"too many key files named {path.stem}-N in {path.parent}")
    except OSError as err:
        raise InputError(f"cannot write {path}: {err.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def read_keys(path: Path) -> NvsKeys:
    """An NVS key file (nvs_keys partition layout); its CRC is checked."""
    raw = read_file(path)
    try:
        return NvsKeys.from_bytes(raw)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None


def generate(
    inputs: Sequence[Path],
    output: Path,
    size: str,
    *,
    version: int = 2,
    outdir: Path | None = None,
    keys: NvsKeys | None = None,
) -> Path:
    """CSV files -> an NVS partition image; returns the path written."""
    nvs_size = parse_nvs_size(size)
    sources = []
    for path in inputs:
        try:
            sources.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"cannot read CSV {path}: {err}") from None
    image = generate_partition(sources, nvs_size, version=_version(version), keys=keys)
    target = _target(outdir or Path.cwd(), output)
    _save(target, image)
    return target


@dataclass(frozen=True, slots=True)
class KeyFiles:
    """What ``generate-key`` wrote: the key file and, with ``--kp_hmac_keygen``, the HMAC key."""

    keys: NvsKeys
    keyfile: Path
    hmac_keyfile: Path | None = None


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """The keys ``generate-key`` (or ``encrypt --keygen``) is asked to make, and where."""

    keyfile: str | None = None
    key_protect_hmac: bool = False
    kp_hmac_keygen: bool = False
    kp_hmac_keyfile: str | None = None
    kp_hmac_inputkey: Path | None = None


def generate_key(request: KeyRequest, *, outdir: Path | None = None) -> KeyFiles:
    """Write an NVS key file to ``<outdir>/keys/``: random keys, or derived from an HMAC key."""
    name = request.keyfile or f"keys-{dt.datetime.now():%m-%d_%H-%M}.bin"
    keys_dir = (outdir or Path.cwd()).expanduser() / KEYS_DIR
    hmac_path: Path | None = None
    if request.key_protect_hmac:
        if request.kp_hmac_keygen:
            hmac_key = secrets.token_bytes(32)
            hmac_path = _target(keys_dir, request.kp_hmac_keyfile or f"hmac-{Path(name).name}")
        elif request.kp_hmac_inputkey is not None:
            hmac_key = read_file(request.kp_hmac_inputkey)
        else:
            raise InputError("--key_protect_hmac needs --kp_hmac_keygen or --kp_hmac_inputkey FILE")
        keys = NvsKeys.from_hmac(hmac_key)
    else:
        keys = NvsKeys(secrets.token_bytes(32), secrets.token_bytes(32))
    target_path = _target(keys_dir, name)
    if request.keyfile is not None and target_path.exists():  # refused before anything is made
        raise InputError(
            f"{target_path} exists; a key file is never overwritten: choose another name"
        )
    if hmac_path is not None:
        hmac_path = _save_key(hmac_path, hmac_key, named=request.kp_hmac_keyfile is not None)
    target = _save_key(target_path, keys.to_bytes(), named=request.keyfile is not None)
    return KeyFiles(keys, target, hmac_path)


def encrypt(
    inputs: Sequence[Path],
    output: Path,
    size: str,
    *,
    version: int = 2,
    keygen: KeyRequest | None = None,
    inputkey: Path | None = None,
    outdir: Path | None = None,
) -> tuple[Path, KeyFiles | None]:
    """CSV files -> an encrypted NVS image, with keys from ``inputkey`` or made per ``keygen``."""
    parse_nvs_size(size)
    if inputkey is not None and keygen is None:
        image = generate(
            inputs, output, size, version=version, outdir=outdir, keys=read_keys(inputkey)
        )
        return image, None
    if keygen is None or inputkey is not None:
        raise InputError("give exactly one of --keygen and --inputkey FILE")
    made = generate_key(keygen, outdir=outdir)
    try:
        image = generate(inputs, output, size, version=version, outdir=outdir, keys=made.keys)
    except InputError:
        made.keyfile.unlink(missing_ok=True)
        if made.hmac_keyfile is not None:
            made.hmac_keyfile.unlink(missing_ok=True)
        raise
    return image, made


def decrypt(input: Path, key: Path, output: Path, *, outdir: Path | None = None) -> Path:
    """An encrypted NVS image -> the plain image (same layout, entries decrypted)."""
    plain = decrypt_image(read_file(input), read_keys(key))
    target = _target(outdir or Path.cwd(), output)
    _save(target, plain)
    return target
