"""Check a DICOM file against its IOD with ``dciodvfy`` (Debian/Ubuntu package ``dicom3tools``).

``dciodvfy`` prints one finding a line, ``Error - ...`` or ``Warning - ...`` (and ``Abort - ...``
when it cannot read the file); errors break the standard, warnings are advice.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DCIODVFY = "dciodvfy"
INSTALL_HINT = "install it with `apt-get install dicom3tools`"


@dataclass(frozen=True)
class Verification:
    """What ``dciodvfy`` printed for one file, split into errors and warnings."""

    path: Path
    output: str
    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def dciodvfy_available() -> bool:
    return shutil.which(DCIODVFY) is not None


def parse_dciodvfy(path: Path, output: str) -> Verification:
    lines = [line.strip() for line in output.splitlines()]
    return Verification(
        path=path,
        output=output,
        errors=tuple(line for line in lines if line.startswith(("Error", "Abort"))),
        warnings=tuple(line for line in lines if line.startswith("Warning")),
    )


def verify(path: str | Path, timeout_s: float = 60) -> Verification:
    """Run ``dciodvfy`` on ``path``; FileNotFoundError when it is not installed."""
    if not dciodvfy_available():
        raise FileNotFoundError(f"{DCIODVFY} is not on PATH; {INSTALL_HINT}")
    completed = subprocess.run(
        [DCIODVFY, str(path)], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    return parse_dciodvfy(Path(path), completed.stdout + completed.stderr)
