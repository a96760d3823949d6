"""Where the shipped data lives: ``supervisors/`` and ``config/``.

An installed wheel carries them inside the package (``aria_actors/_data/``); a
source checkout (an editable install, or running from the tree) has them at the
repository root. Both are found without configuration.
"""

from __future__ import annotations

from pathlib import Path

from ._runtime.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(kind: str) -> Path:
    """The directory ``kind`` (``"supervisors"`` or ``"config"``).

    Raises:
        ConfigError: neither the packaged nor the source-tree copy exists (a broken
            install); the message says where it looked.
    """
    candidates = (PACKAGE_DIR / "_data" / kind, PACKAGE_DIR.parent / kind)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise ConfigError(
        f"no {kind}/ directory found (looked in {candidates[0]} and {candidates[1]}); "
        "reinstall aria-actors or pass the path explicitly"
    )


def supervisors_dir() -> Path:
    """The shipped ``supervisors/`` directory (one TOML file per service)."""
    return data_dir("supervisors")


def config_dir() -> Path:
    """The shipped ``config/`` directory (node configuration and service-manager units)."""
    return data_dir("config")
