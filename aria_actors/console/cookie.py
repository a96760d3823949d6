"""The node's cookie: a shared secret in a file only the node's user can read.

As with Erlang's ``.erlang.cookie``: whoever can read the file may attach a
console, so the file must be private. The node creates it (mode 0600, 64 hex
digits from ``secrets``) on first start; both the node and ``aria-console``
refuse a cookie file that others can read.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .._runtime.errors import ConfigError

COOKIE_BYTES = 32


def load_or_create_cookie(path: Path) -> str:
    """The cookie in ``path``, created first if the file does not exist.

    Raises:
        ConfigError: the file cannot be created or read, is open to other users,
            belongs to another user, or is empty.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_cookie(path)
    except OSError as exc:
        raise ConfigError(f"cookie file {path}: cannot create it: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(secrets.token_hex(COOKIE_BYTES) + "\n")
    return read_cookie(path)


def read_cookie(path: Path) -> str:
    """Read and check the cookie file.

    Raises:
        ConfigError: missing, unreadable, open to other users (group or world
            bits set), another user's, or empty.
    """
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"cookie file {path} does not exist (is the node running, and is this its state "
            "directory?)"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cookie file {path}: {exc.strerror or exc}") from exc
    if info.st_uid != os.geteuid():
        raise ConfigError(f"cookie file {path} belongs to uid {info.st_uid}, not to this user")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"cookie file {path} can be read by other users (mode {info.st_mode & 0o777:o}); "
            f"run: chmod 600 {path}"
        )
    try:
        cookie = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cookie file {path}: cannot read it: {exc}") from exc
    if not cookie:
        raise ConfigError(f"cookie file {path} is empty")
    return cookie
