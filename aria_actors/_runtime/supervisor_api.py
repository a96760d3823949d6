"""The supervisor API as callers see it: ``SupervisorRef`` and what it returns.

``SupervisorRef`` is an :class:`ActorRef` whose methods send the supervisor its
requests (the tagged structs below) and turn refused requests into exceptions.
The supervisor actors themselves live in ``supervisor.py``.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import msgspec

from .errors import AriaError
from .ref import ActorRef
from .specs import ChildSpec

DEFAULT_SUPERVISOR_TIMEOUT = 60.0


class ChildInfo(msgspec.Struct, frozen=True):
    """One child as ``which_children`` reports it.

    ``actor`` is ``None`` while the child is not running; ``restarts`` counts the
    supervisor's automatic restarts of it.
    """

    id: str
    actor: ActorRef | None
    type: Literal["worker", "supervisor"]
    restart: str
    restarts: int


class ChildCounts(msgspec.Struct, frozen=True):
    """``count_children``: child specs, running children, and how many are supervisors/workers."""

    specs: int
    active: int
    supervisors: int
    workers: int


# -- requests (internal message types) ---------------------------------------------------


class WhichChildren(msgspec.Struct, frozen=True, tag=True):
    """Request: the children, in start order."""


class CountChildren(msgspec.Struct, frozen=True, tag=True):
    """Request: child counts."""


class StartChild(msgspec.Struct, frozen=True, tag=True):
    """Request: add and start a child."""

    spec: ChildSpec


class TerminateChild(msgspec.Struct, frozen=True, tag=True):
    """Request: stop a child (by id, or by reference for a dynamic supervisor)."""

    child: Any


class RestartChild(msgspec.Struct, frozen=True, tag=True):
    """Request: start a stopped child again."""

    id: str


class DeleteChild(msgspec.Struct, frozen=True, tag=True):
    """Request: remove a stopped child's spec."""

    id: str


class RestartRunning(msgspec.Struct, frozen=True, tag=True):
    """Request: stop a child by its shutdown spec and start it again in place."""

    child: Any


class TryAgainRestart(msgspec.Struct, frozen=True, tag=True):
    """Internal: retry a restart whose start failed (counts against the intensity)."""

    ids: tuple[str, ...]
    token: int


class SupervisorRef(ActorRef):
    """The reference of a supervisor: an :class:`ActorRef` with the supervisor API.

    Every method waits for the supervisor (which may be busy restarting children)
    up to ``timeout`` seconds.
    """

    __slots__ = ()

    async def _request(self, request: object, timeout: float) -> Any:
        result = await self.call(request, timeout=timeout)
        if isinstance(result, AriaError):
            raise result
        return result

    async def which_children(self, timeout: float = DEFAULT_SUPERVISOR_TIMEOUT) -> list[ChildInfo]:
        """The children in start order."""
        return cast(list[ChildInfo], await self._request(WhichChildren(), timeout))

    async def count_children(self, timeout: float = DEFAULT_SUPERVISOR_TIMEOUT) -> ChildCounts:
        """Counts of child specs, running children, supervisors and workers."""
        return cast(ChildCounts, await self._request(CountChildren(), timeout))

    async def start_child(
        self, spec: ChildSpec, timeout: float = DEFAULT_SUPERVISOR_TIMEOUT
    ) -> ActorRef:
        """Add ``spec`` and start it; return the new child's reference.

        Raises:
            StartError: the child failed to start (its spec is not kept) or, for a
                dynamic supervisor, ``max_children`` are running.
            SupervisorError: a static supervisor already has a child with that id.
        """
        return cast(ActorRef, await self._request(StartChild(spec), timeout))

    async def terminate_child(
        self, child: str | ActorRef, timeout: float = DEFAULT_SUPERVISOR_TIMEOUT
    ) -> None:
        """Stop a child by its shutdown spec. Static: by id, the spec is kept (not for
        temporary children). Dynamic: by reference, the child is forgotten.

        Raises:
            SupervisorError: no such child.
        """
        await self._request(TerminateChild(child), timeout)

    async def restart_child(
        self, child_id: str, timeout: float = DEFAULT_SUPERVISOR_TIMEOUT
    ) -> ActorRef:
        """Start a stopped child of a static supervisor again.

        Raises:
            SupervisorError: no such child, or it is running.
            StartError: it failed to start.
        """
        return cast(ActorRef, await self._request(RestartChild(child_id), timeout))

    async def restart(
        self, child: str | ActorRef, timeout: float = DEFAULT_SUPERVISOR_TIMEOUT
    ) -> ActorRef:
        """Stop a running child (by its shutdown spec) and start it again, in place.

        By id for a static supervisor, by reference for a dynamic one. The restart
        is asked for, so it does not count against the restart intensity.

        Raises:
            SupervisorError: no such running child.
            StartError: it failed to start again (a static child's spec is kept).
        """
        return cast(ActorRef, await self._request(RestartRunning(child), timeout))

    async def delete_child(
        self, child_id: str, timeout: float = DEFAULT_SUPERVISOR_TIMEOUT
    ) -> None:
        """Remove the spec of a stopped child of a static supervisor.

        Raises:
            SupervisorError: no such child, or it is running.
        """
        await self._request(DeleteChild(child_id), timeout)
