"""Cold-boot order: a topological sort of the services by ``requires``.

Ties are broken by the layer order of Aria's services (security, data, auth,
storage, queue, shape, engine, interpret, workflow, interface, coordinate,
monitor, debugger, tune); services outside that list come after it, in the order
given. Cycles, unknown names and duplicates raise :class:`BootError` before
anything starts.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import Final

from .errors import BootError
from .specs import ServiceSpec

LAYER_ORDER: Final[tuple[str, ...]] = (
    "aria_security",
    "aria_data",
    "aria_auth",
    "aria_storage",
    "aria_queue",
    "aria_shape",
    "aria_engine",
    "aria_interpret",
    "aria_workflow",
    "aria_interface",
    "aria_coordinate",
    "aria_monitor",
    "aria_debugger",
    "aria_tune",
)
"""Aria's services in the layer order of the architecture (the tie-breaker)."""


def boot_order(
    services: Sequence[ServiceSpec], only: Iterable[str] | None = None
) -> list[ServiceSpec]:
    """The services to start, in cold-boot order.

    ``only`` selects a subset by name; what those require comes along. Stopping
    is the exact reverse of the returned order.

    Raises:
        BootError: a duplicate name, an unknown name in ``requires`` or ``only``,
            or a cycle (the message shows it, e.g. ``a -> b -> a``).
    """
    by_name: dict[str, ServiceSpec] = {}
    for spec in services:
        if spec.name in by_name:
            raise BootError(f"service {spec.name!r} is defined twice")
        by_name[spec.name] = spec
    for spec in services:
        for required in spec.requires:
            if required not in by_name:
                raise BootError(
                    f"service {spec.name!r} requires {required!r}, which is not defined "
                    f"(known: {', '.join(sorted(by_name)) or 'none'})"
                )
    wanted = _closure(by_name, only) if only is not None else set(by_name)
    _refuse_cycles(by_name, wanted)

    position = {spec.name: index for index, spec in enumerate(services)}

    def rank(name: str) -> tuple[int, int]:
        layer = LAYER_ORDER.index(name) if name in LAYER_ORDER else len(LAYER_ORDER)
        return (layer, position[name])

    waiting = {name: set(by_name[name].requires) for name in wanted}
    dependants: dict[str, list[str]] = {name: [] for name in wanted}
    for name in wanted:
        for required in waiting[name]:
            dependants[required].append(name)
    ready = [(rank(name), name) for name in wanted if not waiting[name]]
    heapq.heapify(ready)
    order: list[ServiceSpec] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(by_name[name])
        for dependant in dependants[name]:
            waiting[dependant].discard(name)
            if not waiting[dependant]:
                heapq.heappush(ready, (rank(dependant), dependant))
    return order


def _closure(by_name: dict[str, ServiceSpec], only: Iterable[str]) -> set[str]:
    wanted: set[str] = set()
    stack = list(only)
    for name in stack:
        if name not in by_name:
            raise BootError(
                f"service {name!r} was asked for but is not defined "
                f"(known: {', '.join(sorted(by_name)) or 'none'})"
            )
    while stack:
        name = stack.pop()
        if name in wanted:
            continue
        wanted.add(name)
        stack.extend(by_name[name].requires)
    return wanted


def _refuse_cycles(by_name: dict[str, ServiceSpec], wanted: set[str]) -> None:
    """Depth-first search; the first back edge found is reported as a cycle."""
    done: set[str] = set()
    for root in sorted(wanted):
        if root in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            name, index = stack.pop()
            if index == 0:
                path.append(name)
                on_path.add(name)
            requires = by_name[name].requires
            if index < len(requires):
                stack.append((name, index + 1))
                required = requires[index]
                if required in on_path:
                    cycle = [*path[path.index(required) :], required]
                    raise BootError(f"services require each other in a cycle: {' -> '.join(cycle)}")
                if required not in done:
                    stack.append((required, 0))
            else:
                path.pop()
                on_path.discard(name)
                done.add(name)
