"""The runtime's configuration: typed, frozen, validated when built.

The node daemon reads these from TOML (section ``[runtime]``); an embedding app
builds them directly: ``Node(config=NodeConfig(runtime=RuntimeConfig(mailbox_size=64)))``.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from .loops import EventLoopKind
from .specs import DEFAULTS
from .tomlfile import convert, read_toml


class RuntimeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Node-wide defaults of the actor runtime.

    ``mailbox_size``: the bound of a mailbox when a spawn or child spec gives none.
    ``shutdown``: seconds ``terminate`` may take for an actor spawned without a
    child spec, and the bound of ``terminate`` after a crash.
    ``loop_lag_interval``: how often the event-loop lag probe runs (seconds; 0 disables it).
    ``dead_letter_logs_per_second``: dead letters logged one by one per second; the
    rest are counted and summarised.
    ``event_loop``: the loop a node builds where Aria owns it (``aria-node``,
    ``NodeThread``): ``auto`` (uvloop when installed), ``asyncio`` or ``uvloop``.
    """

    mailbox_size: int = DEFAULTS.mailbox_size
    shutdown: float = 5.0
    loop_lag_interval: float = 0.25
    dead_letter_logs_per_second: int = 10
    event_loop: EventLoopKind = "auto"

    def __post_init__(self) -> None:
        _check_number("mailbox_size", self.mailbox_size, minimum=1, integer=True)
        _check_number("shutdown", self.shutdown, minimum=0)
        _check_number("loop_lag_interval", self.loop_lag_interval, minimum=0)
        _check_number(
            "dead_letter_logs_per_second", self.dead_letter_logs_per_second, minimum=0, integer=True
        )
        if self.event_loop not in ("auto", "asyncio", "uvloop"):
            raise ValueError(
                f"runtime.event_loop must be 'auto', 'asyncio' or 'uvloop', got {self.event_loop!r}"
            )


def _check_number(key: str, value: object, *, minimum: float, integer: bool = False) -> None:
    """Raise ``ValueError`` naming ``runtime.<key>`` unless ``value`` is a number >= minimum."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        expected = "an integer" if integer else "a number"
        raise ValueError(f"runtime.{key} must be {expected}, got {value!r}")
    if value < minimum:
        raise ValueError(f"runtime.{key} must be >= {minimum:g}, got {value!r}")


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
    return convert(read_toml(file), NodeConfig, file)
