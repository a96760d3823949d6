"""Looking at a live node without disturbing it: actor info, process rows, the tree.

Everything here reads the process records directly, on the node's loop: no
message is sent, so a busy or stuck actor (or supervisor) does not delay the
answer, and nothing an actor does is changed. The results are frozen structs of
plain values (references as their printed form), ready to cross the control socket.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

import msgspec

from .mailbox import MailboxStatistics
from .messages import ExitReason
from .process import DEAD, EXITING, STATE_NAMES, Process
from .supervisor import Child, DynamicSupervisor, Supervisor, SupervisorBase

if TYPE_CHECKING:
    from .node import Node

TaskState = Literal["idle", "scheduled", "running", "starting", "exiting", "dead"]


class ActorInfo(msgspec.Struct, frozen=True):
    """Everything the node knows about one actor.

    ``task``: ``idle`` (nothing queued), ``scheduled`` (messages wait for their
    turn), ``running`` (an async handler is in progress), ``starting``, ``exiting``
    or ``dead``. ``links``/``monitors``/``watchers``: the actors it is linked with,
    monitors it holds, and actors monitoring it. ``child_id`` and ``restarts``: its
    id in its supervisor and how often that supervisor restarted it. ``timers`` and
    ``tasks``: its pending ``send_after`` timers and running ``start_task`` tasks.
    """

    id: int
    name: str | None
    actor: str
    actor_class: str
    service: str
    state: str
    task: TaskState
    mailbox: MailboxStatistics
    trap_exits: bool
    parent: str | None
    child_id: str | None
    restarts: int
    links: list[str]
    monitors: list[str]
    watchers: list[str]
    timers: int
    traced: bool
    exit_reason: ExitReason | None
    tasks: int = 0


class ProcessRow(msgspec.Struct, frozen=True):
    """One line of ``ps``."""

    id: int
    actor: str
    name: str | None
    service: str
    task: TaskState
    mailbox: int
    handled: int
    restarts: int


class TreeNode(msgspec.Struct, frozen=True):
    """One node of the supervision tree: a service, a supervisor or a worker.

    ``label`` is the service name, the child id, or the actor for an unsupervised
    actor; ``actor`` is ``None`` for a child that is not running.
    """

    label: str
    kind: Literal["service", "supervisor", "worker"]
    actor: str | None
    status: Literal["running", "stopped", "exiting"]
    restarts: int
    children: list[TreeNode] = []


def task_state(proc: Process) -> TaskState:
    """What the actor is doing right now."""
    if proc.state == DEAD:
        return "dead"
    if proc.state == EXITING:
        return "exiting"
    if proc.state == 0:
        return "starting"
    if proc.task is not None and not proc.task.done():
        return "running"
    if proc.scheduled:
        return "scheduled"
    return "idle"


def supervisor_record(proc: Process) -> tuple[str | None, int]:
    """``(child id, restarts)`` of ``proc`` in its parent supervisor, if it has one."""
    parent = proc.parent
    if parent is None or not isinstance(parent.actor, SupervisorBase):
        return None, 0
    child = parent.actor.by_proc.get(proc)
    if child is None:
        return None, 0
    return child.spec.id, child.restarts


def actor_info(proc: Process) -> ActorInfo:
    """The :class:`ActorInfo` of one process."""
    child_id, restarts = supervisor_record(proc)
    cls = proc.actor_class
    return ActorInfo(
        id=proc.ref.id,
        name=proc.ref.name,
        actor=repr(proc.ref),
        actor_class=f"{cls.__module__}.{cls.__qualname__}",
        service=proc.service,
        state=STATE_NAMES[proc.state],
        task=task_state(proc),
        mailbox=proc.statistics(),
        trap_exits=proc.trap_exits,
        parent=repr(proc.parent.ref) if proc.parent is not None else None,
        child_id=child_id,
        restarts=restarts,
        links=sorted(repr(p.ref) for p in proc.links or ()),
        monitors=sorted(repr(m.target.ref) for m in proc.monitors or ()),
        watchers=sorted(repr(w.ref) for w in (proc.watchers or {}).values()),
        timers=len(proc.timers or ()),
        traced=proc.tracer is not None,
        exit_reason=proc.exit_reason,
        tasks=len(proc.tasks or ()),
    )


def process_row(proc: Process) -> ProcessRow:
    """The ``ps`` line of one process."""
    _, restarts = supervisor_record(proc)
    return ProcessRow(
        id=proc.ref.id,
        actor=repr(proc.ref),
        name=proc.ref.name,
        service=proc.service,
        task=task_state(proc),
        mailbox=len(proc.mailbox) if proc.mailbox else 0,
        handled=proc.handled,
        restarts=restarts,
    )


def supervision_tree(node: Node) -> list[TreeNode]:
    """The services' trees in boot order, then every other top-level actor's."""
    roots: list[TreeNode] = []
    service_procs: set[Process] = set()
    for name, service in node._services.items():
        proc = service.proc
        service_procs.add(proc)
        roots.append(
            TreeNode(
                label=name,
                kind="service",
                actor=repr(proc.ref),
                status=_status(proc),
                restarts=0,
                children=_children(proc),
            )
        )
    for proc in node._procs.values():
        if proc.parent is None and proc not in service_procs:
            roots.append(_subtree(repr(proc.ref), proc, 0))
    return roots


def _status(proc: Process) -> Literal["running", "stopped", "exiting"]:
    if proc.state == DEAD:
        return "stopped"
    return "exiting" if proc.state == EXITING else "running"


def _subtree(label: str, proc: Process, restarts: int) -> TreeNode:
    is_supervisor = isinstance(proc.actor, SupervisorBase)
    return TreeNode(
        label=label,
        kind="supervisor" if is_supervisor else "worker",
        actor=repr(proc.ref),
        status=_status(proc),
        restarts=restarts,
        children=_children(proc) if is_supervisor else [],
    )


def _children(proc: Process) -> list[TreeNode]:
    actor = proc.actor
    records: Iterable[Child]
    if isinstance(actor, Supervisor):
        records = actor.children
    elif isinstance(actor, DynamicSupervisor):
        records = actor.children.values()
    else:
        return []
    nodes: list[TreeNode] = []
    for child in records:
        if child.proc is None:
            kind: Literal["supervisor", "worker"] = (
                "supervisor" if child.spec.is_supervisor else "worker"
            )
            nodes.append(
                TreeNode(
                    label=child.spec.id,
                    kind=kind,
                    actor=None,
                    status="stopped",
                    restarts=child.restarts,
                )
            )
        else:
            nodes.append(_subtree(child.spec.id, child.proc, child.restarts))
    return nodes
