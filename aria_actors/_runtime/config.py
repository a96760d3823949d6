"""The runtime's configuration: typed, frozen, validated when built.

The node daemon reads these from TOML (``config/*.toml``) with environment
overrides; an embedding app builds them directly:
``Node(config=NodeConfig(runtime=RuntimeConfig(mailbox_size=64)))``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, get_origin

import msgspec

from .errors import ConfigError
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


def _check_number(
    key: str, value: object, *, minimum: float, integer: bool = False, section: str = "runtime"
) -> None:
    """Raise ``ValueError`` naming ``section.key`` unless ``value`` is a number >= minimum."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        expected = "an integer" if integer else "a number"
        raise ValueError(f"{section}.{key} must be {expected}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{section}.{key} must be >= {minimum:g}, got {value!r}")


class NodeSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[node]``: who the node is and where it keeps things.

    ``name``: the node's name (in every reference, and how a console finds it).
    ``services``: boot only these services and what they require (empty: all defined).
    ``supervisors``: the directory of service files (empty: the shipped ``supervisors/``).
    ``state_dir`` / ``runtime_dir``: where the cookie and node file, and the control
    socket, live (empty: ``$STATE_DIRECTORY`` / ``$RUNTIME_DIRECTORY`` under systemd,
    else the platform's convention; see ``aria_actors.daemon.paths``).
    """

    name: str = "aria"
    services: tuple[str, ...] = ()
    supervisors: str = ""
    state_dir: str = ""
    runtime_dir: str = ""

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"node.name must be a plain non-empty name, got {self.name!r}")


class ConsoleSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[console]``: the control socket that ``aria-console`` attaches to.

    ``enabled``: listen on the control socket at all. ``eval``: allow running Python
    in the node (off in production). ``max_frame``: the largest request frame
    accepted, in bytes. ``log_buffer``: recent log events kept for ``logs``.
    """

    enabled: bool = True
    eval: bool = True
    max_frame: int = 1 << 20
    log_buffer: int = 10_000

    def __post_init__(self) -> None:
        _check_number("max_frame", self.max_frame, minimum=64, integer=True, section="console")
        _check_number("log_buffer", self.log_buffer, minimum=0, integer=True, section="console")


LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class LogSection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[log]``: ``format`` (``auto``: JSON lines unless stdout is a terminal) and ``level``."""

    format: LogFormat = "auto"
    level: LogLevel = "info"


class NodeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A node's configuration: ``[node]``, ``[runtime]``, ``[console]``, ``[log]``,
    ``[services.<name>]``.

    An embedding application usually needs only ``runtime``; the other sections are
    read by the daemon (``aria-node``).
    """

    node: NodeSection = msgspec.field(default_factory=NodeSection)
    runtime: RuntimeConfig = msgspec.field(default_factory=RuntimeConfig)
    console: ConsoleSection = msgspec.field(default_factory=ConsoleSection)
    log: LogSection = msgspec.field(default_factory=LogSection)
    services: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    """``[services.<name>]``: each service's own settings, checked by that service."""


ENV_PREFIX = "ARIA_"
HINTS: Final = {
    "format": "one of: auto, json, console",
    "level": "one of: debug, info, warning, error, critical",
    "event_loop": "one of: auto, asyncio, uvloop",
}
"""What the enumerated keys accept, added to their error messages."""


def load_node_config(path: str | Path, environ: Mapping[str, str] | None = None) -> NodeConfig:
    """Read a node configuration TOML file, then apply environment overrides.

    An override is ``ARIA_<SECTION>__<KEY>=<value>`` (``ARIA_RUNTIME__MAILBOX_SIZE=64``);
    the value is read as a TOML value (``64``, ``true``, ``["a", "b"]``, ``"text"``)
    and, if it is not one, as a plain string. ``environ`` defaults to ``os.environ``.

    Raises:
        ConfigError: the file is unreadable, not TOML, or a key is unknown or has a
            bad value; the message names the file and the key
            (``runtime.mailbox_size``), or the environment variable it came from.
    """
    file = Path(path)
    raw = read_toml(file)
    overridden = apply_environment(raw, os.environ if environ is None else environ)
    try:
        return convert(raw, NodeConfig, file, HINTS)
    except ConfigError as exc:
        for variable, key in overridden.items():
            if key in str(exc):
                raise ConfigError(f"{exc} (set by the environment variable {variable})") from exc
        raise


def apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Merge ``ARIA_<SECTION>__<KEY>`` variables into ``raw``; which variable set which key.

    Raises:
        ConfigError: a variable names a section or key the configuration does not have.
    """
    sections = {field.name: field.type for field in msgspec.structs.fields(NodeConfig)}
    applied: dict[str, str] = {}
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or "__" not in variable:
            continue
        section, _, key = variable.removeprefix(ENV_PREFIX).partition("__")
        section, key = section.lower(), key.lower()
        if section == "services":
            applied[variable] = _service_override(raw, variable, key, environ[variable])
            continue
        section_type = sections.get(section)
        if section_type is None:
            raise ConfigError(
                f"{variable}: unknown section {section!r} (expected one of: {', '.join(sections)})"
            )
        keys = {field.name for field in msgspec.structs.fields(section_type)}
        if key not in keys:
            raise ConfigError(
                f"{variable}: unknown key {section}.{key} (expected one of: "
                f"{', '.join(sorted(keys))})"
            )
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{variable}: [{section}] in the file is not a table")
        field_type = next(
            field.type for field in msgspec.structs.fields(section_type) if field.name == key
        )
        table[key] = parse_value(environ[variable], field_type)
        applied[variable] = f"{section}.{key}"
    return applied


def _service_override(raw: dict[str, Any], variable: str, key: str, text: str) -> str:
    """``ARIA_SERVICES__<SERVICE>__<KEY>[__<KEY>...]``: a service's own setting.

    The service checks the value; here it is read as TOML, or kept as text.
    """
    parts = [part for part in key.split("__") if part]
    if len(parts) < 2:
        raise ConfigError(f"{variable}: expected ARIA_SERVICES__<SERVICE>__<KEY>")
    table = raw.setdefault("services", {})
    for part in parts[:-1]:
        if not isinstance(table, dict):
            raise ConfigError(f"{variable}: services.{'.'.join(parts)} is not a table")
        table = table.setdefault(part, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{variable}: services.{'.'.join(parts)} is not a table")
    table[parts[-1]] = parse_value(text)
    return "services." + ".".join(parts)


TRUE: Final = frozenset({"true", "yes", "on", "1"})
FALSE: Final = frozenset({"false", "no", "off", "0"})


def parse_value(text: str, field_type: object = None) -> Any:
    """The value of an environment override, read for the field it sets.

    A text field takes the text as it is (``ARIA_NODE__NAME=12`` is the name "12");
    a boolean takes true/false, yes/no, on/off, 1/0 in any case; anything else is
    read as a TOML value (``64``, ``2.5``, ``["a", "b"]``), or else kept as text so
    the error names the key.
    """
    if field_type is str or get_origin(field_type) is Literal:
        return text
    if field_type is bool:
        word = text.strip().lower()
        if word in TRUE:
            return True
        if word in FALSE:
            return False
        return text
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text
