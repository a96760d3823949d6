"""Fixtures of the security tests: a real SoftHSM2 token in a temp directory.

``hsm_token`` initialises a fresh token (``softhsm2-util --init-token --free``) in a
temp token directory named by a temp ``SOFTHSM2_CONF``, and reinitialises
python-pkcs11's module so that SoftHSM reads that configuration (it does so only when
the module is initialised). Without SoftHSM2 or python-pkcs11 the test is skipped,
except in CI (``CI=true``), where a missing component fails the run.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)


@dataclass(frozen=True)
class HsmToken:
    """An initialised SoftHSM2 token: its module, label and PINs."""

    module: str
    label: str
    pin: str
    so_pin: str
    conf: Path


def missing(what: str) -> NoReturn:
    """Skip, or fail in CI (``CI=true``): a missing component is never skipped there."""
    message = f"{what} is missing (Debian: apt-get install -y softhsm2; pip install -e '.[dev]')"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def find_module() -> str | None:
    """SoftHSM2's PKCS#11 module (``$ARIA_SOFTHSM2_MODULE`` first), if installed."""
    candidates = (os.environ.get("ARIA_SOFTHSM2_MODULE", ""), *MODULES)
    return next((path for path in candidates if path and os.path.isfile(path)), None)


@pytest.fixture
def hsm_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HsmToken]:
    """A fresh SoftHSM2 token labelled ``aria-test`` (user PIN 1234, SO PIN 5678)."""
    try:
        import pkcs11
    except ImportError:
        missing("python-pkcs11")
    util = shutil.which("softhsm2-util")
    module = find_module()
    if util is None or module is None:
        missing("SoftHSM2 (softhsm2-util and libsofthsm2.so)")
    base = tmp_path / "hsm"
    (base / "tokens").mkdir(parents=True)
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    token = HsmToken(module=module, label="aria-test", pin="1234", so_pin="5678", conf=conf)
    argv = [util, "--init-token", "--free", "--label", token.label]
    argv += ["--pin", token.pin, "--so-pin", token.so_pin]
    subprocess.run(
        argv,
        check=True,
        capture_output=True,
        timeout=60,
    )
    pkcs11.lib(module).reinitialize()  # read this SOFTHSM2_CONF
    yield token
    pkcs11.lib(module).reinitialize()  # drop this token's sessions


# Small synchronous file helpers: async tests call these rather than doing blocking
# pathlib calls inline (ruff's ASYNC240); the files are tiny and local.


def read(path: Path) -> bytes:
    """The bytes of ``path``."""
    return path.read_bytes()


def write(path: Path, data: bytes) -> None:
    """Replace ``path``'s content (creating its directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def exists(path: Path) -> bool:
    return path.exists()


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


def names(directory: Path) -> list[str]:
    """The sorted names in ``directory`` (temp files included)."""
    return sorted(entry.name for entry in directory.iterdir())
