"""Running Debian's casync, the reference implementation, from tests.

``casync`` (the fixture) is the binary's path. Without it a test is skipped, except in
CI (``CI=true``), where a missing reference fails the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def find_casync() -> str:
    path = shutil.which("casync")
    if path is None:
        message = "casync is not installed (Debian: apt-get install casync; make test does it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def casync() -> str:
    return find_casync()


def run_casync(casync: str, *args: str | Path, cwd: Path | None = None) -> str:
    """Run casync; its stdout, or an AssertionError with its stderr."""
    done = subprocess.run(
        [casync, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    assert done.returncode == 0, f"casync {' '.join(map(str, args))} failed: {done.stderr}"
    return done.stdout
