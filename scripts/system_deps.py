"""The system packages the tests need, installed in one step (``make test`` and ``.ci/run``).

Standard library only: it runs before the project's venv exists. As root with apt-get it
installs what is missing; otherwise it stops at once (exit 2) with the one command to run.
Nothing is done when everything is present.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

EXIT_MISSING = 2


@dataclass(frozen=True)
class Requirement:
    """A Debian package and the files or commands that show it is installed."""

    package: str
    why: str
    commands: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # glob patterns; any match counts


REQUIREMENTS: tuple[Requirement, ...] = (
    # Playwright (PyPI) drives it; no browser is downloaded.
    Requirement("chromium", "the dashboard's browser tests", ("chromium",)),
    Requirement("curl", "runs the guide's REST lines against the local cloud", ("curl",)),
    Requirement(
        "gcc", "builds the test ELF esptool's elf2image turns into an ESP8266 image", ("gcc", "ld")
    ),
    # Debian starts mosquitto as a service on install; the tests run instances of their own.
    Requirement("mosquitto", "the external broker mode", files=("/usr/sbin/mosquitto",)),
    Requirement("mosquitto-clients", "mosquitto_pub/_sub with a thing's files", ("mosquitto_pub",)),
    # A single binary; the tests run their own servers and clusters from generated configs.
    Requirement("nats-server", "the NATS cluster mode", files=("/usr/sbin/nats-server",)),
    # The front of a local NATS cluster (`cloud serve --broker nats --nodes 3`): devices
    # connect through it and fail over when a node dies.
    Requirement("haproxy", "the NATS cluster's front", files=("/usr/sbin/haproxy",)),
    # The tests start a throwaway cluster (initdb), so the packaged service need not run.
    Requirement(
        "postgresql", "the shared store's backend", files=("/usr/lib/postgresql/*/bin/initdb",)
    ),
)


def _present(req: Requirement, which: Callable[[str], str | None], root: str) -> bool:
    if any(which(command) is None for command in req.commands):
        return False
    return all(glob.glob(root + pattern) for pattern in req.files)


def missing(
    requirements: Sequence[Requirement] = REQUIREMENTS,
    which: Callable[[str], str | None] = shutil.which,
    root: str = "",
) -> list[Requirement]:
    """The requirements not installed on this machine (``root`` prefixes file probes)."""
    return [req for req in requirements if not _present(req, which, root)]


def install_command(packages: Sequence[str], as_root: bool) -> str:
    prefix = "" if as_root else "sudo "
    return (
        f"{prefix}apt-get update && {prefix}env DEBIAN_FRONTEND=noninteractive "
        f"apt-get install -y {' '.join(packages)}"
    )


def main(environ: Mapping[str, str] = os.environ) -> int:
    # JUMPSTART_SYSTEM_ROOT lets a test point the file probes at an empty tree.
    root = environ.get("JUMPSTART_SYSTEM_ROOT", "")
    needed = missing(root=root)
    if not needed:
        return 0
    packages = [req.package for req in needed]
    is_root = os.geteuid() == 0
    if not is_root or shutil.which("apt-get") is None:
        reasons = "; ".join(f"{req.package}: {req.why}" for req in needed)
        print(
            f"error: the tests need system packages ({reasons}); "
            f"install them with: {install_command(packages, as_root=is_root)}",
            file=sys.stderr,
        )
        return EXIT_MISSING
    print(f"installing system packages for the tests: {' '.join(packages)}", flush=True)
    env = {**environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", *packages],
    ):
        if subprocess.run(command, env=env, check=False).returncode != 0:
            print(
                f"error: {' '.join(command)} failed; run it by hand, then make test again",
                file=sys.stderr,
            )
            return EXIT_MISSING
    still = missing(root=root)
    if still:
        print(
            f"error: still missing after apt-get: {' '.join(r.package for r in still)}",
            file=sys.stderr,
        )
        return EXIT_MISSING
    return 0


if __name__ == "__main__":
    sys.exit(main())
