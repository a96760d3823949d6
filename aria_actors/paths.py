"""Where a node keeps its state and its runtime files.

- **State directory** (the cookie, ``node.json``): ``node.state_dir`` if set; else
  ``$STATE_DIRECTORY`` (systemd's ``StateDirectory=``); else, on macOS,
  ``~/Library/Application Support/aria/<node>``; elsewhere
  ``$XDG_STATE_HOME/aria/<node>`` (default ``~/.local/state/aria/<node>``).
- **Runtime directory** (the control socket): ``node.runtime_dir`` if set; else
  ``$RUNTIME_DIRECTORY`` (systemd's ``RuntimeDirectory=``); else
  ``$XDG_RUNTIME_DIR/aria/<node>``; else ``$TMPDIR/aria-<uid>/<node>``.

Both are created with mode 0700 and must belong to the node's user.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ._runtime.config import NodeConfig
from ._runtime.errors import ConfigError

SOCKET_NAME = "control.sock"
COOKIE_NAME = "cookie"
NODE_FILE_NAME = "node.json"
MAX_SOCKET_PATH = 104  # the smallest sun_path among Linux (108) and macOS (104)


def state_dir(config: NodeConfig, environ: Mapping[str, str]) -> Path:
    """The node's state directory (see the module documentation)."""
    if config.node.state_dir:
        return Path(config.node.state_dir).expanduser()
    if environ.get("STATE_DIRECTORY"):
        return Path(environ["STATE_DIRECTORY"].split(":")[0])
    return default_state_dir(config.node.name, environ)


def default_state_dir(node: str, environ: Mapping[str, str]) -> Path:
    """The platform's state directory for ``node`` (no configuration, no systemd)."""
    home = Path(environ.get("HOME") or Path.home())
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "aria" / node
    base = environ.get("XDG_STATE_HOME") or str(home / ".local" / "state")
    return Path(base) / "aria" / node


def runtime_dir(config: NodeConfig, environ: Mapping[str, str]) -> Path:
    """The node's runtime directory (see the module documentation)."""
    if config.node.runtime_dir:
        return Path(config.node.runtime_dir).expanduser()
    if environ.get("RUNTIME_DIRECTORY"):
        return Path(environ["RUNTIME_DIRECTORY"].split(":")[0])
    return default_runtime_dir(config.node.name, environ)


def default_runtime_dir(node: str, environ: Mapping[str, str]) -> Path:
    """The platform's runtime directory for ``node`` (no configuration, no systemd)."""
    if environ.get("XDG_RUNTIME_DIR"):
        return Path(environ["XDG_RUNTIME_DIR"]) / "aria" / node
    base = environ.get("TMPDIR") or tempfile.gettempdir()
    return Path(base) / f"aria-{os.getuid()}" / node


def ensure_private_dir(path: Path, what: str) -> Path:
    """Create ``path`` (and parents) with mode 0700; check it is ours and private.

    Raises:
        ConfigError: it cannot be created, belongs to another user, or others can
            read or enter it.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot create it: {exc.strerror or exc}") from exc
    if info.st_uid != os.geteuid():
        raise ConfigError(f"{what} {path} belongs to uid {info.st_uid}, not to this user")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"{what} {path} is open to other users (mode {info.st_mode & 0o777:o}); "
            f"chmod 700 {path}"
        )
    return path


def socket_path(runtime: Path) -> Path:
    """The control socket in ``runtime``.

    Raises:
        ConfigError: the path is too long for a Unix socket.
    """
    path = runtime / SOCKET_NAME
    if len(os.fsencode(path)) >= MAX_SOCKET_PATH:
        raise ConfigError(
            f"control socket path {path} is too long for a Unix socket "
            f"({len(os.fsencode(path))} bytes, the limit is {MAX_SOCKET_PATH - 1}); "
            "set node.runtime_dir to a shorter directory"
        )
    return path
