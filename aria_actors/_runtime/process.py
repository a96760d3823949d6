"""The process: one actor's record, its mailbox loop, and its exit.

An idle actor owns no task, no coroutine and no queue: a process record, the actor
instance and its reference. When a message arrives at an idle actor, the loop is
asked to run :meth:`Process.drain` soon. ``drain`` handles messages with plain
(synchronous) handlers inline; the first coroutine handler moves the rest of the
batch into a task (:meth:`Process.run_async`), which goes on until the mailbox is
empty and then ends. That is what lets a node hold a million idle actors.

Lifecycle (``state``): ``STARTING`` (``init`` runs in the spawner's task) →
``RUNNING`` → ``EXITING`` (``terminate`` runs) → ``DEAD`` (:meth:`finalize` has
told callers, links and monitors). ``finalize`` runs exactly once.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .errors import ActorExited, NoProcess, UnhandledMessage
from .mailbox import Mailbox
from .messages import KILLED, NOPROC, Down, Exit, ExitReason
from .ref import Envelope, MonitorRef

if TYPE_CHECKING:
    from .actor import Actor, DeferredReply, HandlerEntry, TimerRef
    from .node import Node
    from .specs import Shutdown

T = TypeVar("T")

STARTING: Final = 0
RUNNING: Final = 1
EXITING: Final = 2
DEAD: Final = 3
STATE_NAMES: Final = ("starting", "running", "exiting", "dead")


class Process(Mailbox):
    """One actor's record. Owned by its node; reached through :class:`ActorRef`.

    Invariants: ``actor`` is ``None`` exactly when ``state == DEAD``; ``task`` is
    the runner or exit task while one exists; ``links`` is symmetric (``b in
    a.links`` ⇔ ``a in b.links``) while both are alive; ``watchers`` holds the
    monitors set *on* this actor, ``monitors`` the ones this actor set on others.
    """

    __slots__ = (
        "actor",
        "actor_class",
        "context",
        "current",
        "deferred",
        "exit_future",
        "exit_reason",
        "handlers",
        "links",
        "logger",
        "loop",
        "monitors",
        "node",
        "parent",
        "service",
        "shutdown",
        "stop_reason",
        "task",
        "tasks",
        "timers",
        "tracer",
        "trap_exits",
        "watchers",
    )

    def __init__(
        self,
        node: Node,
        actor_class: type[Actor],
        id: int,
        name: str | None,
        mailbox_size: int,
        shutdown: Shutdown,
        service: str,
        parent: Process | None,
    ) -> None:
        self.node = node
        self.loop = node.loop
        self.actor_class = actor_class
        self.handlers: dict[type, HandlerEntry] = actor_class.__aria_handlers__
        self.ref = actor_class.ref_class(self, id, name)
        self.actor: Actor | None = None
        self.service = service
        self.state = STARTING
        self.task: asyncio.Task[None] | None = None
        self.context = contextvars.Context()
        self.links: set[Process] | None = None
        self.watchers: dict[MonitorRef, Process] | None = None
        self.monitors: set[MonitorRef] | None = None
        self.trap_exits = False
        self.parent = parent
        self.timers: set[TimerRef] | None = None
        self.tasks: set[asyncio.Task[Any]] | None = None  # Actor.start_task's
        self.deferred: set[DeferredReply] | None = None
        self.current: object = None
        self.stop_reason: ExitReason | None = None
        self.exit_reason: ExitReason | None = None
        self.exit_future: asyncio.Future[ExitReason] | None = None
        self.shutdown: Shutdown = shutdown
        self.logger: Any = None
        self.tracer: bool | None = None  # True while traced (``Node.trace``)
        self.mailbox = None
        self.mailbox_size = mailbox_size
        self.putters = None
        self.scheduled = False
        self.handled = 0

    def __repr__(self) -> str:
        return f"<process {self.ref!r} {STATE_NAMES[self.state]}>"

    # ======================================================================================
    # Scheduling and the mailbox loop
    # ======================================================================================

    def schedule(self) -> None:
        """Messages wait and nothing handles them: ask the loop to run :meth:`drain`."""
        self.scheduled = True
        if self.state == RUNNING:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not self.loop:
                self.scheduled = False
                raise RuntimeError(
                    f"{self.ref!r} was sent a message from outside its node's event loop; "
                    "from another thread use NodeThread.cast/call (aria_actors.NodeThread)"
                )
            self.loop.call_soon(self.drain, context=self.context)

    # drain() and run_async() are the same loop, once as a plain callback and once in a
    # task; they are written out twice on purpose: this is the message path, and a shared
    # helper call per message costs about 45 ns, some 15% of the cast throughput.

    def drain(self) -> None:
        """Handle waiting messages inline until the mailbox is empty or an async handler comes."""
        if self.state != RUNNING:
            return  # an exit took over since this was scheduled
        mailbox = self.mailbox
        actor = self.actor
        handlers = self.handlers
        count = 0
        try:
            while mailbox and self.stop_reason is None:
                item = mailbox.popleft()
                if self.putters:
                    self.wake_putter()
                message = item.message if type(item) is Envelope else item
                entry = handlers.get(type(message))
                if entry is None:
                    entry = self.resolve_handler(item, message)
                    if entry is None:
                        continue
                self.current = item
                if self.tracer is not None:
                    self.node._trace_in(self, item)
                result = entry[0](actor, message)
                if entry[1]:
                    self.handled += count
                    self.node.handled += count
                    self.task = self.loop.create_task(
                        self.run_async(result, item), context=self.context
                    )
                    return
                if item is not message and not item.deferred:
                    future = item.future
                    if not future.done():
                        future.set_result(result)
                count += 1
        except Exception as exc:
            self.handled += count
            self.node.handled += count
            self.begin_exit(ExitReason.from_exception(exc))
            return
        self.handled += count
        self.node.handled += count
        if self.stop_reason is not None:
            self.begin_exit(self.stop_reason)
            return
        self.current = None
        self.mailbox = None
        self.scheduled = False

    async def run_async(self, pending: Any, item: Any) -> None:
        """Continue the batch in a task: await ``pending`` (the handler of ``item``), and on."""
        actor = self.actor
        handlers = self.handlers
        count = 0
        try:
            while True:
                if pending is not None:
                    result = await pending
                    pending = None
                    if type(item) is Envelope and not item.deferred:
                        future = item.future
                        if not future.done():
                            future.set_result(result)
                    count += 1
                mailbox = self.mailbox
                if self.stop_reason is not None:
                    break
                if not mailbox:
                    # Linger for one turn of the loop: a caller woken by the reply just
                    # sent usually calls again at once, and finds this task still here.
                    await asyncio.sleep(0)
                    mailbox = self.mailbox
                    if not mailbox or self.stop_reason is not None:
                        break
                item = mailbox.popleft()
                if self.putters:
                    self.wake_putter()
                message = item.message if type(item) is Envelope else item
                entry = handlers.get(type(message))
                if entry is None:
                    entry = self.resolve_handler(item, message)
                    if entry is None:
                        continue
                self.current = item
                if self.tracer is not None:
                    self.node._trace_in(self, item)
                result = entry[0](actor, message)
                if entry[1]:
                    pending = result
                    continue
                if item is not message and not item.deferred:
                    future = item.future
                    if not future.done():
                        future.set_result(result)
                count += 1
        except asyncio.CancelledError:
            if self.state != DEAD:
                self.finalize(KILLED)
            raise
        except Exception as exc:
            self.handled += count
            self.node.handled += count
            await self.exit(ExitReason.from_exception(exc))
            return
        self.handled += count
        self.node.handled += count
        if self.stop_reason is not None:
            await self.exit(self.stop_reason)
            return
        self.task = None
        self.current = None
        self.mailbox = None
        self.scheduled = False

    def call_inline(self, function: Callable[[Any, Any], Any], envelope: Envelope) -> None:
        """Handle a call at once, in the caller's turn of the loop.

        Only for an idle (nothing queued, nothing running), running actor whose
        handler for the message is a plain function: then no other message can come
        first, so running it now keeps every ordering guarantee, and saves the two
        turns of the loop a queued call costs. The handler runs in the actor's own
        context, as from the mailbox loop; messages that arrive meanwhile queue up
        and are drained afterwards. The outcome lands in ``envelope.future`` exactly
        as from the mailbox loop: the reply, or (crash, exit) ``ActorExited``; a
        deferred reply leaves it pending. ``ActorRef.call`` goes through the loop
        once every :data:`INLINE_BUDGET` inline calls, so a caller calling in a tight
        loop cannot starve the other tasks.
        """
        node = self.node
        node.inline_budget -= 1
        self.scheduled = True
        self.current = envelope
        if self.tracer is not None:
            node._trace_in(self, envelope)
        try:
            result = self.context.run(function, self.actor, envelope.message)
        except Exception as exc:
            self.handled += 1
            node.handled += 1
            self.begin_exit(ExitReason.from_exception(exc))
            return
        self.handled += 1
        node.handled += 1
        future = envelope.future
        if not envelope.deferred and not future.done():
            future.set_result(result)
        if self.state != RUNNING:
            return  # the handler brought its actor down; finalize settled the call
        if self.stop_reason is not None:
            self.begin_exit(self.stop_reason)
        elif self.mailbox:
            self.loop.call_soon(self.drain, context=self.context)
        else:
            self.current = None
            self.mailbox = None
            self.scheduled = False

    def resolve_handler(self, item: Any, message: object) -> HandlerEntry | None:
        """The handler for a message whose exact type has none: the nearest base type's.

        With no handler at all: a call fails with :class:`UnhandledMessage`, a cast
        becomes a dead letter. Neither crashes the actor.
        """
        for base in type(message).__mro__[1:]:
            entry = self.handlers.get(base)
            if entry is not None:
                self.handlers[type(message)] = entry
                return entry
        if type(item) is Envelope:
            if not item.future.done():
                item.future.set_exception(UnhandledMessage(self.ref, message))
        else:
            self.node._dead_letter(self.ref, message, unhandled=True)
        return None

    # ======================================================================================
    # Stopping and exiting
    # ======================================================================================

    def request_stop(self, reason: ExitReason) -> None:
        """Stop after the handler in progress, if any; ``terminate(reason)`` runs.

        An idle actor starts exiting at once. Otherwise the mailbox loop sees the
        request before its next message (a drain that is merely pending handles
        nothing more) and exits; an actor still in ``init`` exits right after it.
        """
        if self.state >= EXITING:
            return
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.state == RUNNING and not self.scheduled:
            self.begin_exit(self.stop_reason)

    def begin_exit(self, reason: ExitReason) -> None:
        """Start the exit: in a task of its own when ``terminate`` must run, else at once."""
        if self.state == DEAD:
            return  # killed meanwhile (a handler can bring its own actor down through a link)
        if not self.actor_class.__aria_has_terminate__:
            self.finalize(reason)
            return
        self.state = EXITING
        self.scheduled = True
        self.task = self.loop.create_task(self.exit(reason), context=self.context)

    async def exit(self, reason: ExitReason) -> None:
        """Run ``terminate(reason)`` within the shutdown bound, then :meth:`finalize`."""
        if self.state == DEAD:
            return
        self.state = EXITING
        actor = self.actor
        if actor is not None and self.actor_class.__aria_has_terminate__:
            limit = self.terminate_limit()
            try:
                async with asyncio.timeout(limit):
                    await actor.terminate(reason)
            except TimeoutError:
                self.node._log_terminate_timeout(self, limit)
                reason = KILLED if reason.is_quiet else reason
            except Exception as exc:
                after = "in terminate" if reason.is_quiet else f"in terminate, after {reason}"
                reason = ExitReason.from_exception(exc, detail=after)
        self.finalize(reason)

    def terminate_limit(self) -> float | None:
        """Seconds ``terminate`` may take: the child's shutdown time (``None``: no limit)."""
        shutdown = self.shutdown
        if shutdown == "infinity":
            return None
        if shutdown == "brutal_kill":
            return self.node.config.runtime.shutdown
        return float(shutdown)

    async def shutdown_with(self, reason: ExitReason, shutdown: Shutdown) -> ExitReason:
        """Stop this actor as a supervisor or node does, and wait until it has exited.

        ``brutal_kill``: cancel at once, no ``terminate``. Seconds: let the handler
        in progress finish and ``terminate`` run, then cancel when the time is up
        (reason ``killed``). ``infinity``: wait as long as it takes.
        """
        if self.state == DEAD:
            assert self.exit_reason is not None
            return self.exit_reason
        if shutdown == "brutal_kill":
            self.kill(KILLED, report=False)  # asked for: no crash report, as in OTP
            return KILLED
        self.request_stop(reason)
        limit = None if shutdown == "infinity" else float(shutdown)
        try:
            return await self.wait_exit(limit)
        except TimeoutError:
            self.kill(KILLED)
            return KILLED

    def kill(
        self, reason: ExitReason = KILLED, via: Process | None = None, *, report: bool = True
    ) -> None:
        """Exit at once with ``reason``: the running handler or ``terminate`` is cancelled.

        ``report=False`` skips the crash report (a ``brutal_kill`` shutdown).
        """
        if self.state == DEAD:
            return
        task = self.task
        self.finalize(reason, via, report=report)
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    def finalize(
        self, reason: ExitReason, via: Process | None = None, *, report: bool = True
    ) -> None:
        """Record the exit and tell everyone concerned. Runs exactly once.

        An abnormal ``reason`` logs the crash report unless ``report`` is False.
        """
        if self.state == DEAD:
            return
        self.state = DEAD
        self.exit_reason = reason
        node = self.node
        current = self.current
        if report and not reason.is_quiet:
            node._report_exit(self, reason, current, via)
        self.current = None
        self.stop_reason = reason  # a mailbox loop still on the stack sees it and stops
        self.task = None
        self.scheduled = True  # nothing will ever be scheduled again
        exited = None
        if type(current) is Envelope and not current.deferred and not current.future.done():
            exited = ActorExited(self.ref, reason)
            current.future.set_exception(exited)
        mailbox = self.mailbox
        self.mailbox = None
        if mailbox:
            lost = 0
            for item in mailbox:
                if type(item) is Envelope:
                    if not item.future.done():
                        exited = exited or ActorExited(self.ref, reason)
                        item.future.set_exception(exited)
                else:
                    lost += 1
            if lost:
                node._dead_letters_on_exit(self.ref, lost)
        if self.putters:
            self.wake_all_putters()
        if self.deferred:
            deferred = self.deferred
            self.deferred = None
            for reply in list(deferred):
                reply.fail(exited or ActorExited(self.ref, reason))
        if self.timers:
            timers = self.timers
            self.timers = None
            for timer in timers:
                timer.cancel()
        if self.tasks:
            tasks = self.tasks
            self.tasks = None
            for owned in tasks:
                owned.cancel()  # the running one too (it killed its actor): at its next await
        node._forget(self)
        if self.monitors:
            for monitor in self.monitors:
                if monitor.target.watchers is not None:
                    monitor.target.watchers.pop(monitor, None)
            self.monitors = None
        watchers = self.watchers
        self.watchers = None
        if watchers:
            for monitor, watcher in watchers.items():
                if watcher.monitors is not None:
                    watcher.monitors.discard(monitor)
                watcher.put_unbounded(Down(monitor=monitor, actor=self.ref, reason=reason))
        links = self.links
        self.links = None
        if links:
            for other in links:
                if other.links is not None:
                    other.links.discard(self)
            node._send_exit_signals(self, links, reason)
        if self.exit_future is not None and not self.exit_future.done():
            self.exit_future.set_result(reason)
        self.actor = None

    def start_task(self, coroutine: Coroutine[Any, Any, T], name: str | None) -> asyncio.Task[T]:
        """Run ``coroutine`` as a task this actor owns (see ``Actor.start_task``)."""
        if self.state >= EXITING:
            coroutine.close()
            raise ActorExited(self.ref, self.exit_reason or self.stop_reason or KILLED)
        # A copy: the task runs beside the handlers, so context variables it sets (a
        # database transaction in progress, say) must not leak into theirs.
        task = self.loop.create_task(coroutine, name=name, context=self.context.copy())
        if self.tasks is None:
            self.tasks = set()
        self.tasks.add(task)
        task.add_done_callback(self.task_done)
        return task

    def task_done(self, task: asyncio.Task[Any]) -> None:
        """An owned task ended: forget it; an exception it raised crashes the actor."""
        if self.tasks is not None:
            self.tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()  # retrieved in every case: never "never retrieved"
        if error is not None and self.state < EXITING:
            self.request_stop(ExitReason.from_exception(error, detail=f"in task {task.get_name()}"))

    def exit_signal(self, sender: Process, reason: ExitReason) -> None:
        """A linked actor exited with ``reason`` (see the actor module for the rules)."""
        if self.state == DEAD:
            return
        if self.trap_exits:
            if sender is self.parent:
                self.request_stop(reason)
            else:
                self.put_unbounded(Exit(actor=sender.ref, reason=reason))
        elif not reason.is_normal:
            self.kill(reason, via=sender)

    async def wait_exit(self, timeout: float | None) -> ExitReason:
        """The exit reason, once the actor has exited."""
        if self.state == DEAD:
            assert self.exit_reason is not None
            return self.exit_reason
        future = self.exit_future
        if future is None:
            future = self.exit_future = self.loop.create_future()
        async with asyncio.timeout(timeout):
            return await asyncio.shield(future)

    # ======================================================================================
    # Links and monitors
    # ======================================================================================

    def link(self, other: Process) -> None:
        """Link with ``other``; see :meth:`Actor.link`."""
        if other is self:
            return
        if other.state == DEAD:
            if self.trap_exits:
                self.put_unbounded(Exit(actor=other.ref, reason=NOPROC))
                return
            raise NoProcess(other.ref, "cannot link to an actor that has exited")
        if self.links is None:
            self.links = set()
        if other.links is None:
            other.links = set()
        self.links.add(other)
        other.links.add(self)

    def unlink(self, other: Process) -> None:
        """Remove the link with ``other`` (both directions), if any."""
        if self.links is not None:
            self.links.discard(other)
        if other.links is not None:
            other.links.discard(self)

    def monitor(self, target: Process) -> MonitorRef:
        """Set a monitor on ``target``; ``Down`` arrives once (``noproc`` if already dead)."""
        monitor = MonitorRef(self.node._next_monitor_id(), self, target)
        if target.state == DEAD:
            self.put_unbounded(Down(monitor=monitor, actor=target.ref, reason=NOPROC))
            return monitor
        if target.watchers is None:
            target.watchers = {}
        target.watchers[monitor] = self
        if self.monitors is None:
            self.monitors = set()
        self.monitors.add(monitor)
        return monitor

    def demonitor(self, monitor: MonitorRef) -> bool:
        """Remove ``monitor`` and flush its queued ``Down``; True if it was still active."""
        active = False
        watchers = monitor.target.watchers
        if watchers is not None and watchers.pop(monitor, None) is not None:
            active = True
        if self.monitors is not None:
            self.monitors.discard(monitor)
        mailbox = self.mailbox
        if mailbox:
            for item in list(mailbox):
                if type(item) is Down and item.monitor == monitor:
                    mailbox.remove(item)
        return active
