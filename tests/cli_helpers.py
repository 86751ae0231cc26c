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


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """A user error: exit code 2 and one line ``rigstyle: error: ...`` on stderr containing ``words``."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rigstyle: error:")
    for word in words:
        assert word in lines[0]
