"""Supervisors: actors that start children, watch them, and restart them by a strategy.

Semantics follow OTP's ``supervisor``:

- Children start in order; a child whose start fails makes the whole start fail
  (the children already started are stopped in reverse order) with a
  :class:`StartError` naming the child (``parent/child`` for nested trees).
- Children stop in reverse start order, each by its ``shutdown``.
- When a child exits: ``permanent`` children are restarted, ``transient`` ones
  only after an abnormal exit (not ``normal``, not ``shutdown``), ``temporary``
  ones never (their spec is removed). The strategy says which others restart with
  it (``one_for_one``, ``one_for_all``, ``rest_for_one``).
- Restart intensity: a restart at time *t* counts while ``now - t <= max_seconds``
  (OTP keeps restarts ``R >= Now - Period``).
  A restart that would make more than ``max_restarts`` count stops all children
  and makes the supervisor exit with ``shutdown`` (detail
  ``reached_max_restart_intensity``), which its own supervisor sees as the exit of
  a child: escalation.
- A restart whose start fails is retried through the supervisor's mailbox, each
  try counting against the intensity, as OTP's ``try_again_restart``.
- A registered child name follows the child across restarts.

Differences from OTP, on purpose: time is read from the node's clock (float
seconds, not whole seconds), so tests step a virtual clock; ``terminate`` of a
child runs on shutdown whether or not the child traps exits.

The supervisor traps exits. Its handlers run one at a time, so API calls wait
while it restarts children, as in OTP.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from .actor import Actor, handles
from .errors import AriaError, StartError, SupervisorError
from .messages import SHUTDOWN, Exit, ExitReason
from .ref import ActorRef
from .reports import supervisor_report
from .specs import ChildSpec, DynamicSupervisorSpec, SupervisorSpec
from .supervisor_api import (
    ChildCounts,
    ChildInfo,
    CountChildren,
    DeleteChild,
    RestartChild,
    RestartRunning,
    StartChild,
    SupervisorRef,
    TerminateChild,
    TryAgainRestart,
    WhichChildren,
)

if TYPE_CHECKING:
    from .process import Process

GAVE_UP: ExitReason = ExitReason(kind="shutdown", detail="reached_max_restart_intensity")


class Child:
    """A supervisor's record of one child.

    Invariant: ``proc`` is ``None`` exactly when the child is not running.
    """

    __slots__ = ("proc", "restarts", "spec")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.proc: Process | None = None
        self.restarts = 0

    def info(self) -> ChildInfo:
        return ChildInfo(
            id=self.spec.id,
            actor=self.proc.ref if self.proc is not None else None,
            type="supervisor" if self.spec.is_supervisor else "worker",
            restart=self.spec.restart,
            restarts=self.restarts,
        )


class SupervisorBase(Actor):
    """What static and dynamic supervisors share: starting, stopping, intensity."""

    ref_class = SupervisorRef
    max_restarts: int
    max_seconds: float
    restart_times: deque[float]
    by_proc: dict[Process, Child]
    try_token: int

    def setup(self, max_restarts: int, max_seconds: float) -> None:
        self.trap_exits = True
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds
        self.restart_times = deque()
        self.by_proc = {}
        self.try_token = 0

    # -- starting and stopping children -------------------------------------------------

    async def start_one(self, child: Child) -> ActorRef:
        """Start ``child``, linked to this supervisor.

        Raises:
            StartError: naming the child id (and the inner path for a nested tree).
        """
        spec = child.spec
        start = spec.start
        actor_class: type[Actor]
        args: dict[str, Any]
        if isinstance(start, SupervisorSpec):
            actor_class, args = Supervisor, {"spec": start}
        elif isinstance(start, DynamicSupervisorSpec):
            actor_class, args = DynamicSupervisor, {"spec": start}
        else:
            actor_class, args = start, dict(spec.args)
        proc = self._proc
        try:
            ref = await proc.node._spawn(
                actor_class,
                args,
                name=spec.name,
                mailbox_size=spec.mailbox_size,
                shutdown=spec.effective_shutdown,
                parent=proc,
                service=proc.service,
            )
        except StartError as exc:
            # An error from a nested start (a supervisor child's own child) names the
            # path below this child; prefix it, so the error reads ``outer/inner``.
            nested = isinstance(exc.__cause__, StartError)
            label = f"{spec.id}/{exc.child}" if nested else spec.id
            raise StartError(label, exc.detail) from exc
        child.proc = ref._proc
        self.by_proc[ref._proc] = child
        return ref

    async def stop_one(self, child: Child) -> None:
        """Stop a running child by its shutdown spec; no ``Exit`` from it is acted on."""
        proc = child.proc
        if proc is None:
            return
        child.proc = None
        self.by_proc.pop(proc, None)
        self._proc.unlink(proc)
        reason = await proc.shutdown_with(SHUTDOWN, child.spec.effective_shutdown)
        if not reason.is_quiet and child.spec.effective_shutdown != "brutal_kill":
            supervisor_report(
                "shutdown_error",
                supervisor=repr(self.ref),
                child=child.spec.id,
                reason=str(reason),
            )

    async def stop_all(self, children: list[Child]) -> None:
        """Stop ``children`` in reverse order."""
        for child in reversed(children):
            await self.stop_one(child)

    # -- intensity ----------------------------------------------------------------------

    def add_restart(self) -> bool:
        """Count a restart now; False when that exceeds the intensity (give up)."""
        now = self.node.clock.monotonic()
        times = self.restart_times
        while times and now - times[0] > self.max_seconds:
            times.popleft()
        times.append(now)
        return len(times) <= self.max_restarts

    async def give_up(self, children: list[Child]) -> None:
        """Stop every child and exit with ``shutdown (reached_max_restart_intensity)``."""
        supervisor_report(
            "supervisor_gave_up",
            level="error",
            supervisor=repr(self.ref),
            service=self.service,
            max_restarts=self.max_restarts,
            max_seconds=self.max_seconds,
        )
        await self.stop_all(children)
        self.stop(GAVE_UP)

    def note_exit(self, child: Child, reason: ExitReason) -> None:
        supervisor_report(
            "child_exited",
            level="info" if reason.is_quiet else "warning",
            supervisor=repr(self.ref),
            service=self.service,
            child=child.spec.id,
            restart=child.spec.restart,
            reason=str(reason),
        )

    def note_restart(self, child: Child) -> None:
        child.restarts += 1
        self.node._count_restart(self._proc, child.spec.id)

    def wants_restart(self, child: Child, reason: ExitReason) -> bool:
        """The restart type's verdict for an exit with ``reason``."""
        restart = child.spec.restart
        if restart == "permanent":
            return True
        if restart == "transient":
            return not reason.is_quiet
        return False

    def retry_later(self, ids: tuple[str, ...], error: StartError) -> None:
        supervisor_report(
            "restart_failed",
            level="error",
            supervisor=repr(self.ref),
            service=self.service,
            children=list(ids),
            error=str(error),
        )
        self.try_token += 1
        self._proc.put_unbounded(TryAgainRestart(ids=ids, token=self.try_token))


class Supervisor(SupervisorBase):
    """A static supervisor running a :class:`SupervisorSpec`."""

    spec: SupervisorSpec
    children: list[Child]

    async def init(self, spec: SupervisorSpec) -> None:
        self.setup(spec.max_restarts, spec.max_seconds)
        self.spec = spec
        self.children = [Child(child_spec) for child_spec in spec.children]
        started: list[Child] = []
        for child in self.children:
            try:
                await self.start_one(child)
            except StartError:
                await self.stop_all(started)
                raise
            started.append(child)

    async def terminate(self, reason: ExitReason) -> None:
        await self.stop_all([c for c in self.children if c.proc is not None])

    def find(self, child_id: str) -> Child | None:
        for child in self.children:
            if child.spec.id == child_id:
                return child
        return None

    # -- children exiting ---------------------------------------------------------------

    @handles(Exit)
    async def on_exit(self, message: Exit) -> None:
        child = self.by_proc.pop(message.actor._proc, None)
        if child is None:
            return  # an exit we already acted on (the child was stopped on purpose)
        child.proc = None
        self.note_exit(child, message.reason)
        if not self.wants_restart(child, message.reason):
            if child.spec.restart == "temporary":
                self.children.remove(child)
            return
        if not self.add_restart():
            await self.give_up([c for c in self.children if c.proc is not None])
            return
        await self.restart_group(self.group(child))

    def group(self, child: Child) -> list[Child]:
        """The children that restart with ``child`` under the strategy, in start order."""
        strategy = self.spec.strategy
        if strategy == "one_for_one":
            return [child]
        if strategy == "one_for_all":
            return list(self.children)
        index = self.children.index(child)
        return self.children[index:]

    async def restart_group(self, group: list[Child]) -> None:
        """Stop the running members of ``group`` (reverse order), then start them all in order.

        Temporary children that were stopped here are removed, as in OTP.
        """
        await self.stop_all([c for c in group if c.proc is not None])
        for child in [c for c in group if c.spec.restart == "temporary" and c in self.children]:
            if child.proc is None:
                self.children.remove(child)
        group = [c for c in group if c in self.children]
        for child in group:
            if child.proc is not None:
                continue
            try:
                await self.start_one(child)
            except StartError as error:
                # As OTP: the retry redoes the whole group (running members are stopped again).
                self.retry_later(tuple(c.spec.id for c in group), error)
                return
            self.note_restart(child)
            supervisor_report(
                "child_restarted",
                level="info",
                supervisor=repr(self.ref),
                service=self.service,
                child=child.spec.id,
                actor=repr(child.proc.ref) if child.proc is not None else None,
            )

    @handles(TryAgainRestart)
    async def on_try_again(self, message: TryAgainRestart) -> None:
        if message.token != self.try_token:
            return
        group = [c for c in (self.find(i) for i in message.ids) if c is not None]
        if not group:
            return
        if not self.add_restart():
            await self.give_up([c for c in self.children if c.proc is not None])
            return
        await self.restart_group(group)

    # -- the API ------------------------------------------------------------------------

    @handles(WhichChildren)
    def which_children(self, message: WhichChildren) -> list[ChildInfo]:
        return [child.info() for child in self.children]

    @handles(CountChildren)
    def count_children(self, message: CountChildren) -> ChildCounts:
        supervisors = sum(1 for c in self.children if c.spec.is_supervisor)
        return ChildCounts(
            specs=len(self.children),
            active=sum(1 for c in self.children if c.proc is not None),
            supervisors=supervisors,
            workers=len(self.children) - supervisors,
        )

    @handles(StartChild)
    async def start_child(self, message: StartChild) -> ActorRef | AriaError:
        spec = message.spec
        existing = self.find(spec.id)
        if existing is not None:
            if existing.proc is not None:
                return SupervisorError(
                    "running", spec.id, f"already started as {existing.proc.ref!r}"
                )
            return SupervisorError(
                "already_present",
                spec.id,
                "a child with this id exists; restart_child or delete_child it first",
            )
        child = Child(spec)
        try:
            ref = await self.start_one(child)
        except StartError as error:
            return error
        self.children.append(child)
        return ref

    @handles(TerminateChild)
    async def terminate_child(self, message: TerminateChild) -> AriaError | None:
        if not isinstance(message.child, str):
            return SupervisorError(
                "static", message.child, "a static supervisor names children by id"
            )
        child = self.find(message.child)
        if child is None:
            return SupervisorError("not_found", message.child, "no such child")
        await self.stop_one(child)
        if child.spec.restart == "temporary":
            self.children.remove(child)
        return None

    @handles(RestartChild)
    async def restart_child(self, message: RestartChild) -> ActorRef | AriaError:
        child = self.find(message.id)
        if child is None:
            return SupervisorError("not_found", message.id, "no such child")
        if child.proc is not None:
            return SupervisorError("running", message.id, "the child is running")
        try:
            return await self.start_one(child)
        except StartError as error:
            return error

    @handles(RestartRunning)
    async def restart_running(self, message: RestartRunning) -> ActorRef | AriaError:
        child = self.find(message.child) if isinstance(message.child, str) else None
        if child is None or child.proc is None:
            return SupervisorError("not_running", message.child, "no such running child")
        await self.stop_one(child)
        try:
            return await self.start_one(child)
        except StartError as error:
            return error

    @handles(DeleteChild)
    def delete_child(self, message: DeleteChild) -> AriaError | None:
        child = self.find(message.id)
        if child is None:
            return SupervisorError("not_found", message.id, "no such child")
        if child.proc is not None:
            return SupervisorError("running", message.id, "terminate the child before deleting it")
        self.children.remove(child)
        return None


class DynamicSupervisor(SupervisorBase):
    """A dynamic supervisor running a :class:`DynamicSupervisorSpec` (one_for_one).

    Children are added with ``start_child`` and removed with
    ``terminate_child(ref)``; a child that exits for good (temporary, or
    transient after a normal exit) is forgotten. Children stop in reverse order
    of their latest start.
    """

    spec: DynamicSupervisorSpec
    children: dict[int, Child]
    next_key: int

    async def init(self, spec: DynamicSupervisorSpec) -> None:
        self.setup(spec.max_restarts, spec.max_seconds)
        self.spec = spec
        self.children = {}
        self.next_key = 0
        self.waiting: dict[int, Child] = {}

    async def terminate(self, reason: ExitReason) -> None:
        await self.stop_all([c for c in self.children.values() if c.proc is not None])

    def running(self) -> list[Child]:
        return [c for c in self.children.values() if c.proc is not None]

    async def add(self, child: Child) -> ActorRef:
        ref = await self.start_one(child)
        self.next_key += 1
        self.children[self.next_key] = child
        return ref

    def forget(self, child: Child) -> None:
        for key, value in list(self.children.items()):
            if value is child:
                del self.children[key]

    @handles(Exit)
    async def on_exit(self, message: Exit) -> None:
        child = self.by_proc.pop(message.actor._proc, None)
        if child is None:
            return
        child.proc = None
        self.note_exit(child, message.reason)
        self.forget(child)
        if not self.wants_restart(child, message.reason):
            return
        if not self.add_restart():
            await self.give_up(self.running())
            return
        await self.restart(child)

    async def restart(self, child: Child) -> None:
        try:
            await self.add(child)
        except StartError as error:
            self.next_key += 1
            self.waiting[self.next_key] = child
            self.retry_later((str(self.next_key),), error)
            return
        self.note_restart(child)

    @handles(TryAgainRestart)
    async def on_try_again(self, message: TryAgainRestart) -> None:
        child = self.waiting.pop(int(message.ids[0]), None)
        if child is None:
            return
        if not self.add_restart():
            await self.give_up(self.running())
            return
        await self.restart(child)

    @handles(WhichChildren)
    def which_children(self, message: WhichChildren) -> list[ChildInfo]:
        return [c.info() for c in self.children.values()]

    @handles(CountChildren)
    def count_children(self, message: CountChildren) -> ChildCounts:
        children = list(self.children.values())
        supervisors = sum(1 for c in children if c.spec.is_supervisor)
        return ChildCounts(
            specs=len(children),
            active=sum(1 for c in children if c.proc is not None),
            supervisors=supervisors,
            workers=len(children) - supervisors,
        )

    @handles(StartChild)
    async def start_child(self, message: StartChild) -> ActorRef | AriaError:
        limit = self.spec.max_children
        if limit is not None and len(self.running()) >= limit:
            return StartError(message.spec.id, f"max_children ({limit}) are running")
        try:
            return await self.add(Child(message.spec))
        except StartError as error:
            return error

    @handles(TerminateChild)
    async def terminate_child(self, message: TerminateChild) -> AriaError | None:
        target = message.child
        if not isinstance(target, ActorRef):
            return SupervisorError(
                "dynamic", target, "a dynamic supervisor names children by reference"
            )
        child = self.by_proc.get(target._proc)
        if child is None:
            return SupervisorError("not_found", target, "not a running child of this supervisor")
        await self.stop_one(child)
        self.forget(child)
        return None

    @handles(RestartRunning)
    async def restart_running(self, message: RestartRunning) -> ActorRef | AriaError:
        target = message.child
        child = self.by_proc.get(target._proc) if isinstance(target, ActorRef) else None
        if child is None:
            return SupervisorError("not_running", target, "not a running child of this supervisor")
        await self.stop_one(child)
        self.forget(child)
        try:
            return await self.add(child)
        except StartError as error:
            return error

    @handles(RestartChild, DeleteChild)
    def static_only(self, message: RestartChild | DeleteChild) -> AriaError:
        return SupervisorError(
            "dynamic", message.id, "restart_child and delete_child are for static supervisors"
        )


def supervisor_class(spec: SupervisorSpec | DynamicSupervisorSpec) -> type[SupervisorBase]:
    """The actor class that runs ``spec``."""
    return Supervisor if isinstance(spec, SupervisorSpec) else DynamicSupervisor
