"""Running the installed ``rigstyle`` command the way users do: a real subprocess, no stdin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RIGSTYLE = str(Path(sys.executable).parent / "rigstyle")


def run_rigstyle(*args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``rigstyle ARGS...`` with captured text output and no stdin."""
    return subprocess.run(
        [RIGSTYLE, *map(str, args)], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
