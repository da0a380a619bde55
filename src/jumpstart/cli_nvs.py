"""``jumpstart nvs``: nvs_partition_gen's commands and arguments, plus ``parse``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from jumpstart.cli_util import command_group, parse_size
from jumpstart.errors import InputError
from jumpstart.formats.nvs import decrypt_image
from jumpstart.host import nvs_tool
from jumpstart.host.files import read_file
from jumpstart.host.nvs_parse import ParsedNvs, parse_image
from jumpstart.host.nvs_tool import KeyRequest

nvs_app = command_group(
    help="NVS partitions: generate from CSV (like nvs_partition_gen), encrypt, decrypt, parse.",
    no_args_is_help=True,
)

# CSV... OUTPUT SIZE as one list: a variadic first argument would swallow the others, and a
# missing SIZE would be reported as a missing CSV.
Positionals = Annotated[
    list[str],
    typer.Argument(
        metavar="CSV... OUTPUT SIZE",
        help="CSV file(s) (key,type,encoding,value), the image to write (under --outdir if"
        " relative) and the partition size, a multiple of 4096 (e.g. 0x6000)",
    ),
]
Output = Annotated[Path, typer.Argument(help="Image to write (under --outdir if relative)")]
Version = Annotated[int, typer.Option("--version", help="1: single-page blobs; 2: multi-page")]
Outdir = Annotated[Path | None, typer.Option("--outdir", help="Output folder (default: cwd)")]
Keyfile = Annotated[
    str | None, typer.Option("--keyfile", help="Key file name to write under <outdir>/keys/")
]
HmacFlag = Annotated[
    bool,
    typer.Option(
        "--key_protect_hmac", "--key-protect-hmac", help="Derive the keys from an HMAC key"
    ),
]
HmacKeygen = Annotated[
    bool, typer.Option("--kp_hmac_keygen", "--kp-hmac-keygen", help="Generate the HMAC key")
]
HmacKeyfile = Annotated[
    str | None,
    typer.Option("--kp_hmac_keyfile", "--kp-hmac-keyfile", help="HMAC key file name to write"),
]
HmacInput = Annotated[
    Path | None,
    typer.Option("--kp_hmac_inputkey", "--kp-hmac-inputkey", help="HMAC key file to use"),
]


def _done(message: str) -> None:
    print(message, file=sys.stderr)


def _split(command: str, values: list[str]) -> tuple[list[Path], Path, str]:
    """CSV..., OUTPUT and SIZE, or an error naming what is missing."""
    if len(values) < 3:
        if len(values) == 2 and _is_size(values[1]):
            missing = "OUTPUT (the image to write)"
        elif len(values) == 2:
            missing = "SIZE (the partition size, e.g. 0x6000)"
        else:
            missing = "OUTPUT and SIZE"
        raise InputError(f"missing {missing}: jumpstart nvs {command} CSV... OUTPUT SIZE")
    *inputs, output, size = values
    return [Path(p) for p in inputs], Path(output), size


def _is_size(text: str) -> bool:
    try:
        parse_size(text)
    except InputError:
        return False
    return True


@nvs_app.command("generate")
def generate(files: Positionals, version: Version = 2, outdir: Outdir = None) -> None:
    """Generate an NVS partition image from CSV (byte-identical to nvs_partition_gen)."""
    inputs, output, size = _split("generate", files)
    path = nvs_tool.generate(inputs, output, size, version=version, outdir=outdir)
    _done(f"created NVS binary {path}")


@nvs_app.command("encrypt")
def encrypt(
    files: Positionals,
    version: Version = 2,
    keygen: Annotated[bool, typer.Option("--keygen", help="Generate new keys")] = False,
    inputkey: Annotated[
        Path | None, typer.Option("--inputkey", help="Key file to encrypt with")
    ] = None,
    keyfile: Keyfile = None,
    key_protect_hmac: HmacFlag = False,
    kp_hmac_keygen: HmacKeygen = False,
    kp_hmac_keyfile: HmacKeyfile = None,
    kp_hmac_inputkey: HmacInput = None,
    outdir: Outdir = None,
) -> None:
    """Generate an encrypted NVS partition (XTS-AES-256 per entry)."""
    inputs, output, size = _split("encrypt", files)
    request = KeyRequest(
        keyfile, key_protect_hmac, kp_hmac_keygen, kp_hmac_keyfile, kp_hmac_inputkey
    )
    path, keys = nvs_tool.encrypt(
        inputs,
        output,
        size,
        version=version,
        keygen=request if keygen else None,
        inputkey=inputkey,
        outdir=outdir,
    )
    if keys is not None:
        _done(f"created encryption keys {keys.keyfile}")
    _done(f"created encrypted NVS binary {path}")


@nvs_app.command("decrypt")
def decrypt(
    input: Annotated[Path, typer.Argument(help="Encrypted NVS image")],
    key: Annotated[Path, typer.Argument(help="Key file (nvs_keys layout)")],
    output: Output,
    outdir: Outdir = None,
) -> None:
    """Decrypt an encrypted NVS partition image."""
    path = nvs_tool.decrypt(input, key, output, outdir=outdir)
    _done(f"created NVS decrypted binary {path}")


@nvs_app.command("generate-key")
def generate_key(
    keyfile: Keyfile = None,
    key_protect_hmac: HmacFlag = False,
    kp_hmac_keygen: HmacKeygen = False,
    kp_hmac_keyfile: HmacKeyfile = None,
    kp_hmac_inputkey: HmacInput = None,
    outdir: Outdir = None,
) -> None:
    """Generate an NVS key file (random, or derived from an HMAC key)."""
    made = nvs_tool.generate_key(
        KeyRequest(keyfile, key_protect_hmac, kp_hmac_keygen, kp_hmac_keyfile, kp_hmac_inputkey),
        outdir=outdir,
    )
    if made.hmac_keyfile is not None:
        _done(f"created HMAC key {made.hmac_keyfile}")
    _done(f"created encryption keys {made.keyfile}")


def _text_report(parsed: ParsedNvs, console: Console) -> None:
    pages = Table(title="Pages")
    for column in ("Sector", "State", "Seq", "Written", "Erased", "Empty"):
        pages.add_column(column)
    for page in parsed.pages:
        counts = page.counts
        pages.add_row(
            str(page.sector),
            page.state,
            "" if page.seq is None else str(page.seq),
            str(counts["written"]),
            str(counts["erased"]),
            str(counts["empty"]),
        )
    console.print(pages)
    values = Table(title="Values")
    for column in ("Namespace", "Key", "Type", "Value"):
        values.add_column(column)
    for (namespace, key), value in parsed.values().items():
        kind = type(value).__name__
        shown = f"{len(value)} bytes {value[:24].hex()}" if isinstance(value, bytes) else value
        values.add_row(namespace, key, kind, str(shown)[:80])
    console.print(values)


@nvs_app.command("parse")
def parse(
    file: Annotated[Path, typer.Argument(help="NVS partition image")],
    keys: Annotated[Path | None, typer.Option("--keys", help="Key file, if encrypted")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
    integrity: Annotated[
        bool, typer.Option("-i", "--integrity-check", help="Check CRCs, duplicates, blobs")
    ] = False,
) -> None:
    """Show an NVS image's pages, namespaces and values (like nvs_tool.py)."""
    if format not in ("text", "json"):
        raise InputError(f"--format must be text or json, got {format!r}")
    image = read_file(file)
    if keys is not None:
        image = decrypt_image(image, nvs_tool.read_keys(keys))
    parsed = parse_image(image)
    written = parsed.written()
    if written and not any(p.item.is_consistent(p.index) for p in written):
        # Encrypted entries (or ones decrypted with other keys) fail every item CRC.
        hint = (
            "these keys do not decrypt it (use the keys it was made with)"
            if keys is not None
            else "it looks encrypted: pass --keys KEYS.bin"
        )
        raise InputError(f"none of the {len(written)} entries of {file} checks out: {hint}")
    problems = parsed.problems() if integrity else []
    if format == "json":
        report = parsed.to_json()
        if integrity:
            report["problems"] = problems
        print(json.dumps(report, indent=2))
    else:
        console = Console(highlight=False, soft_wrap=True)
        _text_report(parsed, console)
        if integrity:
            console.print("\n".join(problems) if problems else "integrity check: no problems")
    if problems:
        raise typer.Exit(1)
