"""Specifications: what a supervisor starts, and how; what a service is.

These are plain, frozen data, validated when built (a bad value raises
``ValueError``/``TypeError`` naming the field). The defaults live in one place,
:data:`DEFAULTS`, and follow OTP's: ``one_for_one``, intensity 3 restarts in 5
seconds, ``permanent`` children, 5 seconds to shut a worker down and ``infinity``
for a supervisor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, get_args

import msgspec

from .actor import Actor

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
"""Which children a supervisor restarts when one exits and must be restarted.

- ``one_for_one``: only that child.
- ``one_for_all``: all children: the others are stopped (in reverse start order), then
  all restart in order.
- ``rest_for_one``: that child and those started after it, likewise.
"""

Restart = Literal["permanent", "transient", "temporary"]
"""When a child is restarted: ``permanent`` always; ``transient`` only after an
abnormal exit (any kind but ``normal`` and ``shutdown``); ``temporary`` never (its
spec is removed when it exits)."""

Shutdown = float | Literal["brutal_kill", "infinity"]
"""How a child is stopped: seconds for ``terminate`` before it is cancelled,
``brutal_kill`` (cancelled at once, no ``terminate``), or ``infinity`` (wait)."""

STRATEGIES: Final = frozenset(get_args(Strategy))
RESTARTS: Final = frozenset(get_args(Restart))


class Defaults(msgspec.Struct, frozen=True):
    """The default of every knob, in one place."""

    strategy: Strategy = "one_for_one"
    max_restarts: int = 3
    max_seconds: float = 5.0
    restart: Restart = "permanent"
    worker_shutdown: Shutdown = 5.0
    supervisor_shutdown: Shutdown = "infinity"
    mailbox_size: int = 1024
    call_timeout: float = 5.0


DEFAULTS: Final = Defaults()


def check_shutdown(value: object, where: str) -> None:
    """Raise ``ValueError`` unless ``value`` is a valid :data:`Shutdown`."""
    if value in ("brutal_kill", "infinity"):
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(
            f"{where}: shutdown must be seconds >= 0, 'brutal_kill' or 'infinity', got {value!r}"
        )


def _check_intensity(max_restarts: object, max_seconds: object, where: str) -> None:
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
        raise ValueError(f"{where}: max_restarts must be an integer >= 0, got {max_restarts!r}")
    if (
        isinstance(max_seconds, bool)
        or not isinstance(max_seconds, int | float)
        or max_seconds <= 0
    ):
        raise ValueError(f"{where}: max_seconds must be a number > 0, got {max_seconds!r}")


class SupervisorSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A static supervisor: a strategy, a restart intensity and ordered children."""

    strategy: Strategy = DEFAULTS.strategy
    max_restarts: int = DEFAULTS.max_restarts
    max_seconds: float = DEFAULTS.max_seconds
    children: Sequence[ChildSpec] = ()

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {self.strategy!r}")
        _check_intensity(self.max_restarts, self.max_seconds, "SupervisorSpec")
        children = tuple(self.children)
        seen: set[str] = set()
        for child in children:
            if not isinstance(child, ChildSpec):
                raise TypeError(f"SupervisorSpec children must be ChildSpec, got {child!r}")
            if child.id in seen:
                raise ValueError(f"SupervisorSpec: duplicate child id {child.id!r}")
            seen.add(child.id)
        msgspec.structs.force_setattr(self, "children", children)


class DynamicSupervisorSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A dynamic supervisor: starts with no children; ``start_child`` adds them (one_for_one).

    ``max_children``: how many children may run at once (``None``: no limit).
    """

    max_children: int | None = None
    max_restarts: int = DEFAULTS.max_restarts
    max_seconds: float = DEFAULTS.max_seconds

    def __post_init__(self) -> None:
        if self.max_children is not None and (
            isinstance(self.max_children, bool)
            or not isinstance(self.max_children, int)
            or self.max_children < 0
        ):
            raise ValueError(
                "max_children must be an integer >= 0 (or absent: no limit), "
                f"got {self.max_children!r}"
            )
        _check_intensity(self.max_restarts, self.max_seconds, "DynamicSupervisorSpec")


class ChildSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One child of a supervisor.

    ``start`` is an :class:`Actor` subclass (a worker, started with ``args``) or a
    :class:`SupervisorSpec` / :class:`DynamicSupervisorSpec` (a supervisor child).
    ``name`` registers the child under that name, across restarts. ``shutdown``
    defaults to 5 seconds for a worker and ``infinity`` for a supervisor;
    ``mailbox_size`` to the node's default.
    """

    id: str
    start: type[Actor] | SupervisorSpec | DynamicSupervisorSpec
    args: Mapping[str, Any] = msgspec.field(default_factory=dict)
    name: str | None = None
    restart: Restart = DEFAULTS.restart
    shutdown: Shutdown | None = None
    mailbox_size: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"ChildSpec id must be a non-empty string, got {self.id!r}")
        where = f"child {self.id!r}"
        start = self.start
        if not (
            isinstance(start, SupervisorSpec | DynamicSupervisorSpec)
            or (isinstance(start, type) and issubclass(start, Actor))
        ):
            raise TypeError(
                f"{where}: start must be an Actor subclass, a SupervisorSpec or a "
                f"DynamicSupervisorSpec, got {start!r}"
            )
        if not isinstance(self.args, Mapping):
            raise TypeError(f"{where}: args must be a mapping, got {type(self.args).__name__}")
        if self.args and not isinstance(start, type):
            raise ValueError(f"{where}: args are for workers; a supervisor child takes none")
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise ValueError(f"{where}: name must be a non-empty string or None")
        if self.restart not in RESTARTS:
            raise ValueError(
                f"{where}: restart must be one of {sorted(RESTARTS)}, got {self.restart!r}"
            )
        if self.shutdown is not None:
            check_shutdown(self.shutdown, where)
        if self.mailbox_size is not None and (
            isinstance(self.mailbox_size, bool)
            or not isinstance(self.mailbox_size, int)
            or self.mailbox_size < 1
        ):
            raise ValueError(f"{where}: mailbox_size must be an integer >= 1")

    @property
    def is_supervisor(self) -> bool:
        """True when this child is itself a supervisor."""
        return not isinstance(self.start, type)

    @property
    def effective_shutdown(self) -> Shutdown:
        """``shutdown``, or the default for the child's kind."""
        if self.shutdown is not None:
            return self.shutdown
        return DEFAULTS.supervisor_shutdown if self.is_supervisor else DEFAULTS.worker_shutdown


class ServiceSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A service: its name, the services it requires, its top supervisor, its restart type.

    ``restart`` is the application restart type: when the service's tree exits for
    good, ``permanent`` stops the node with a non-zero status, ``transient`` does so
    unless the exit was ``normal``, ``temporary`` only logs it.
    """

    name: str
    supervisor: SupervisorSpec
    requires: Sequence[str] = ()
    restart: Restart = DEFAULTS.restart

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"ServiceSpec name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.supervisor, SupervisorSpec):
            raise TypeError(f"service {self.name!r}: supervisor must be a SupervisorSpec")
        requires = tuple(self.requires)
        for required in requires:
            if not isinstance(required, str) or not required:
                raise ValueError(f"service {self.name!r}: requires must list service names")
        msgspec.structs.force_setattr(self, "requires", requires)
        if self.restart not in RESTARTS:
            raise ValueError(
                f"service {self.name!r}: restart must be one of {sorted(RESTARTS)}, "
                f"got {self.restart!r}"
            )
