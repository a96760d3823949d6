"""Reading services from ``supervisors/*.toml``.

One file per service::

    [service]
    name = "aria_storage"
    requires = ["aria_security", "aria_auth"]
    restart = "permanent"              # permanent | transient | temporary

    [supervisor]
    strategy = "rest_for_one"          # one_for_one | one_for_all | rest_for_one
    max_restarts = 3
    max_seconds = 5

    [[children]]
    id = "chunk_store"
    actor = "aria_actors.services.storage.actors:ChunkStoreActor"
    name = "aria_storage.chunk_store"
    restart = "permanent"
    shutdown = 5.0                     # seconds | "brutal_kill" | "infinity"
    mailbox_size = 1024
    [children.args]
    compression_level = 3

A child is exactly one of: a worker (``actor = "module:Class"``), a supervisor
(``[children.supervisor]`` with ``strategy``, intensity and its own
``[[children.supervisor.children]]``), or a dynamic supervisor
(``[children.dynamic_supervisor]`` with ``max_children`` and intensity).

Every error is a :class:`ConfigError` naming the file and the key, e.g.
``supervisors/storage.toml: children[1].restart: Invalid enum value 'always'``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Literal

import msgspec

from .actor import Actor
from .errors import ConfigError
from .specs import (
    DEFAULTS,
    ChildSpec,
    DynamicSupervisorSpec,
    Restart,
    ServiceSpec,
    Strategy,
    SupervisorSpec,
)
from .tomlfile import convert, read_toml


class DynamicSupervisorTable(msgspec.Struct, forbid_unknown_fields=True):
    """``[children.dynamic_supervisor]``."""

    max_children: int | None = None
    max_restarts: int = DEFAULTS.max_restarts
    max_seconds: float = DEFAULTS.max_seconds


class ChildTable(msgspec.Struct, forbid_unknown_fields=True):
    """One ``[[children]]`` entry."""

    id: str
    actor: str | None = None
    supervisor: SupervisorTable | None = None
    dynamic_supervisor: DynamicSupervisorTable | None = None
    args: dict[str, Any] = {}
    name: str | None = None
    restart: Restart = DEFAULTS.restart
    shutdown: float | Literal["brutal_kill", "infinity"] | None = None
    mailbox_size: int | None = None


class SupervisorTable(msgspec.Struct, forbid_unknown_fields=True):
    """``[supervisor]`` (or a nested ``[children.supervisor]``)."""

    strategy: Strategy = DEFAULTS.strategy
    max_restarts: int = DEFAULTS.max_restarts
    max_seconds: float = DEFAULTS.max_seconds
    children: list[ChildTable] = []


class ServiceTable(msgspec.Struct, forbid_unknown_fields=True):
    """``[service]``."""

    name: str
    requires: list[str] = []
    restart: Restart = DEFAULTS.restart


class ServiceFile(msgspec.Struct, forbid_unknown_fields=True):
    """A whole ``supervisors/<service>.toml``."""

    service: ServiceTable
    supervisor: SupervisorTable = msgspec.field(default_factory=SupervisorTable)
    children: list[ChildTable] = []


def load_services(path: str | Path) -> list[ServiceSpec]:
    """Read every ``*.toml`` in the directory ``path`` (or the one file ``path``).

    Files are read in name order; the result is in that order (``Node.boot``
    computes the boot order).

    Raises:
        ConfigError: a missing path, invalid TOML, an unknown or mistyped key, an
            actor that cannot be imported or is not an ``Actor``, a child that is
            not exactly one of worker/supervisor/dynamic supervisor, or a service
            defined twice. The message names the file and the key.
    """
    root = Path(path)
    if root.is_dir():
        files = sorted(root.glob("*.toml"))
    elif root.is_file():
        files = [root]
    else:
        raise ConfigError(f"{root}: no such file or directory (expected supervisors/*.toml)")
    services: list[ServiceSpec] = []
    seen: dict[str, Path] = {}
    for file in files:
        spec = load_service_file(file)
        if spec.name in seen:
            raise ConfigError(
                f"{file}: service.name: {spec.name!r} is already defined in {seen[spec.name]}"
            )
        seen[spec.name] = file
        services.append(spec)
    return services


HINTS = {
    "restart": "one of: permanent, transient, temporary",
    "strategy": "one of: one_for_one, one_for_all, rest_for_one",
    "shutdown": "seconds, 'brutal_kill' or 'infinity'",
}
"""What the enumerated keys accept, added to their error messages."""


def load_service_file(file: Path) -> ServiceSpec:
    """Read one service file; see :func:`load_services` for the errors."""
    table = convert(read_toml(file), ServiceFile, file, HINTS)
    keyed = [(f"supervisor.children[{i}]", c) for i, c in enumerate(table.supervisor.children)]
    keyed += [(f"children[{i}]", c) for i, c in enumerate(table.children)]
    supervisor = _supervisor(file, "supervisor", table.supervisor, keyed)
    try:
        return ServiceSpec(
            name=table.service.name,
            supervisor=supervisor,
            requires=table.service.requires,
            restart=table.service.restart,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{file}: service: {exc}") from exc


def _supervisor(
    file: Path, key: str, table: SupervisorTable, children: list[tuple[str, ChildTable]]
) -> SupervisorSpec:
    """Build a supervisor spec; ``children`` pairs each child table with its key in the file."""
    seen: dict[str, str] = {}
    for child_key, child in children:
        if child.id in seen:
            raise ConfigError(
                f"{file}: {child_key}.id: duplicate child id {child.id!r} "
                f"(also at {seen[child.id]})"
            )
        seen[child.id] = child_key
    specs = [_child(file, child_key, child) for child_key, child in children]
    try:
        return SupervisorSpec(
            strategy=table.strategy,
            max_restarts=table.max_restarts,
            max_seconds=table.max_seconds,
            children=specs,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{file}: {key}: {exc}") from exc


def _child(file: Path, key: str, table: ChildTable) -> ChildSpec:
    kinds = [k for k in ("actor", "supervisor", "dynamic_supervisor") if getattr(table, k)]
    if len(kinds) != 1:
        found = " and ".join(kinds) if kinds else "none of them"
        raise ConfigError(
            f"{file}: {key}: a child needs exactly one of actor, supervisor, "
            f"dynamic_supervisor (found {found})"
        )
    start: type[Actor] | SupervisorSpec | DynamicSupervisorSpec
    if table.actor is not None:
        start = import_actor(file, f"{key}.actor", table.actor)
    elif table.supervisor is not None:
        nested = f"{key}.supervisor"
        start = _supervisor(
            file,
            nested,
            table.supervisor,
            [(f"{nested}.children[{i}]", c) for i, c in enumerate(table.supervisor.children)],
        )
    else:
        assert table.dynamic_supervisor is not None
        dynamic = table.dynamic_supervisor
        try:
            start = DynamicSupervisorSpec(
                max_children=dynamic.max_children,
                max_restarts=dynamic.max_restarts,
                max_seconds=dynamic.max_seconds,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{file}: {key}.dynamic_supervisor: {exc}") from exc
    try:
        return ChildSpec(
            id=table.id,
            start=start,
            args=table.args,
            name=table.name,
            restart=table.restart,
            shutdown=table.shutdown,
            mailbox_size=table.mailbox_size,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{file}: {key}: {exc}") from exc


def import_actor(file: Path | str, key: str, target: str) -> type[Actor]:
    """Import ``"package.module:Class"`` and check it is an :class:`Actor` subclass.

    Raises:
        ConfigError: malformed target, import failure, missing attribute, not an Actor.
    """
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"{file}: {key}: expected 'package.module:ClassName', got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"{file}: {key}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError as exc:
            raise ConfigError(f"{file}: {key}: {module_name!r} has no {attribute!r}") from exc
    if not (isinstance(value, type) and issubclass(value, Actor)):
        raise ConfigError(f"{file}: {key}: {target!r} is not an Actor subclass")
    return value
