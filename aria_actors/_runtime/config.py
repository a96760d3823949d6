"""The runtime's configuration: typed, frozen, validated when built.

The node daemon reads these from TOML (section ``[runtime]``); an embedding app
builds them directly: ``Node(config=NodeConfig(runtime=RuntimeConfig(mailbox_size=64)))``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec

from .errors import ConfigError
from .specs import DEFAULTS


class RuntimeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Node-wide defaults of the actor runtime.

    ``mailbox_size``: the bound of a mailbox when a spawn or child spec gives none.
    ``shutdown``: seconds ``terminate`` may take for an actor spawned without a
    child spec, and the bound of ``terminate`` after a crash.
    ``loop_lag_interval``: how often the event-loop lag probe runs (seconds; 0 disables it).
    ``dead_letter_logs_per_second``: dead letters logged one by one per second; the
    rest are counted and summarised.
    """

    mailbox_size: int = DEFAULTS.mailbox_size
    shutdown: float = 5.0
    loop_lag_interval: float = 0.25
    dead_letter_logs_per_second: int = 10

    def __post_init__(self) -> None:
        if isinstance(self.mailbox_size, bool) or self.mailbox_size < 1:
            raise ValueError(f"runtime.mailbox_size must be >= 1, got {self.mailbox_size!r}")
        if self.shutdown < 0:
            raise ValueError(f"runtime.shutdown must be >= 0 seconds, got {self.shutdown!r}")
        if self.loop_lag_interval < 0:
            raise ValueError(
                f"runtime.loop_lag_interval must be >= 0 seconds, got {self.loop_lag_interval!r}"
            )
        if self.dead_letter_logs_per_second < 0:
            raise ValueError("runtime.dead_letter_logs_per_second must be >= 0")


class NodeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A node's configuration. Later sections (services, control socket) extend it."""

    runtime: RuntimeConfig = msgspec.field(default_factory=RuntimeConfig)


def load_node_config(path: str | Path) -> NodeConfig:
    """Read a node configuration TOML file.

    Raises:
        ConfigError: the file is unreadable, not TOML, or a key is unknown or has a
            bad value; the message names the file and the key (``runtime.mailbox_size``).
    """
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from exc
    try:
        return msgspec.convert(raw, NodeConfig)
    except msgspec.ValidationError as exc:
        text, sep, where = str(exc).rpartition(" - at `")
        key = where.rstrip("`").removeprefix("$").removeprefix(".") if sep else ""
        raise ConfigError(f"{file}: {key or '(top level)'}: {text if sep else exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"{file}: {exc}") from exc
