"""The node: owns the actors, the name registry and the services, inside one event loop.

::

    async with Node(name="aria") as node:          # runs inside the caller's loop
        ref = await node.spawn(Counter, name="counter", start=5)
        node.whereis("counter")                     # ActorRef | None
        await node.boot(services)                   # ServiceSpecs, in cold-boot order

Leaving the ``async with`` (or ``await node.stop()``) stops the services in the
reverse of their boot order, then every other actor, newest first.

When a ``permanent`` service's tree exits for good (its top supervisor gave up),
the node logs it, stops everything and sets ``exit_status`` to 1;
``await node.wait_stopped()`` returns that status, which the daemon uses as its
exit code so the service manager restarts it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import msgspec
import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from .actor import Actor
from .ambient import CURRENT_PROCESS
from .boot import boot_order
from .clock import Clock, SystemClock
from .config import NodeConfig, RuntimeConfig
from .errors import BootError, NoProcess, StartError
from .introspect import (
    ActorInfo,
    ProcessRow,
    TreeNode,
    actor_info,
    process_row,
    supervision_tree,
    supervisor_record,
)
from .messages import KILLED, SHUTDOWN, ExitKind, ExitReason, as_exit_reason
from .metrics import LoopLagProbe, RuntimeCollector
from .process import DEAD, RUNNING, Process
from .ref import INLINE_BUDGET, ActorRef
from .reports import DeadLetterLog, crash_report, short_repr
from .specs import DynamicSupervisorSpec, ServiceSpec, Shutdown, SupervisorSpec, check_shutdown
from .supervisor import DynamicSupervisor, supervisor_class
from .supervisor_api import SupervisorRef

if TYPE_CHECKING:
    from types import TracebackType

logger = structlog.get_logger("aria_actors")
M = TypeVar("M", bound=MetricWrapperBase)

NEW: Final = 0
UP: Final = 1
STOPPING: Final = 2
STOPPED: Final = 3


class RunningService:
    """A booted service: its spec and its top supervisor's process."""

    __slots__ = ("proc", "spec")

    def __init__(self, spec: ServiceSpec, proc: Process) -> None:
        self.spec = spec
        self.proc = proc


class Node:
    """One Aria node. See the module documentation.

    ``name`` appears in every reference (``<actor aria.17 counter>``); ``config``
    gives the runtime defaults and the services' settings; ``clock`` is where
    supervisors read time (tests pass a virtual clock); ``metrics`` is the node's
    Prometheus registry; ``state_dir`` is where services keep files (the daemon
    sets it; ``None``: services that need one refuse to start, saying so).
    """

    def __init__(
        self,
        name: str = "aria",
        config: NodeConfig | None = None,
        *,
        clock: Clock | None = None,
        metrics: CollectorRegistry | None = None,
        state_dir: Path | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"node name must be a non-empty string, got {name!r}")
        self.name = name
        self.config = config if config is not None else NodeConfig()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.state_dir = state_dir
        self._metric_objects: dict[str, Any] = {}
        self.metrics = metrics if metrics is not None else CollectorRegistry(auto_describe=True)
        self.loop: asyncio.AbstractEventLoop = cast(asyncio.AbstractEventLoop, None)
        self.exit_status: int | None = None
        self.handled = 0
        self.tracing = 0  # how many actors are traced (the send path checks this first)
        self.inline_budget = INLINE_BUDGET
        self.dead_letters = 0
        self.restart_counts: dict[tuple[str, str], int] = {}
        self.loop_lag = LoopLagProbe(self.metrics, self.config.runtime.loop_lag_interval)
        self._procs: dict[int, Process] = {}
        self._names: dict[str, Process] = {}
        self._ids = itertools.count(1)
        self._monitor_ids = itertools.count(1)
        self._services: dict[str, RunningService] = {}
        self.boot_history: list[str] = []  # every service this node booted, in order
        self._state = NEW
        self._stopped: asyncio.Event | None = None
        self._signals: deque[tuple[Process, Process, ExitReason]] = deque()
        self._delivering = False
        self._stop_task: asyncio.Task[None] | None = None
        self._stopping_callbacks: list[Callable[[], None]] = []
        self._dead_letter_log = DeadLetterLog(self.config.runtime.dead_letter_logs_per_second)
        self._collector = RuntimeCollector(self)
        self.metrics.register(self._collector)

    def __repr__(self) -> str:
        states = ("new", "up", "stopping", "stopped")
        return f"<Node {self.name} {states[self._state]} actors={len(self._procs)}>"

    # ======================================================================================
    # Starting and stopping
    # ======================================================================================

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind the node to the running event loop and start its probes.

        Raises:
            RuntimeError: the node was started before.
        """
        if self._state != NEW:
            raise RuntimeError(f"node {self.name} was already started; build a new Node")
        self.loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._state = UP
        self.loop_lag.start(self.loop)
        logger.info("node_started", node=self.name)

    @property
    def is_running(self) -> bool:
        """True between ``start`` and the beginning of ``stop``."""
        return self._state == UP

    async def stop(self) -> None:
        """Stop the services in reverse boot order, then every other actor (newest first).

        Safe to call more than once and concurrently; every caller returns once
        the node has stopped.
        """
        if self._state == NEW:
            self._state = STOPPED
            return
        assert self._stopped is not None
        if self._state != UP:
            await self._stopped.wait()
            return
        self._state = STOPPING
        logger.info("node_stopping", node=self.name, services=list(self._services))
        for callback in self._stopping_callbacks:
            callback()
        try:
            for name in reversed(list(self._services)):
                service = self._services.get(name)
                if service is None:
                    continue  # gone meanwhile (a failed boot undid it)
                await service.proc.shutdown_with(SHUTDOWN, "infinity")
                self._services.pop(name, None)
                logger.info("service_stopped", node=self.name, service=name)
            for proc in reversed(list(self._procs.values())):
                if proc.state != DEAD and proc.parent is None:
                    await proc.shutdown_with(SHUTDOWN, proc.shutdown)
            for proc in reversed(list(self._procs.values())):
                if proc.state != DEAD:
                    proc.kill(KILLED)
        finally:
            self.loop_lag.stop()
            if self.exit_status is None:
                self.exit_status = 0
            self._state = STOPPED
            self._stopped.set()
            logger.info("node_stopped", node=self.name, exit_status=self.exit_status)

    def metric(self, kind: type[M], name: str, documentation: str, **options: Any) -> M:
        """The node's Prometheus metric ``name`` of ``kind`` (``Counter``, ``Gauge``,
        ``Histogram``...), created in ``node.metrics`` on first use and shared after,
        so an actor can ask for it on every restart.

        Raises:
            TypeError: ``name`` exists with another kind.
        """
        existing = self._metric_objects.get(name)
        if existing is None:
            existing = kind(name, documentation, registry=self.metrics, **options)
            self._metric_objects[name] = existing
        if not isinstance(existing, kind):
            raise TypeError(f"metric {name} is a {type(existing).__name__}, not a {kind.__name__}")
        return existing

    def service_settings(self, service: str) -> dict[str, Any]:
        """The ``[services.<service>]`` table of the configuration (``{}`` if none)."""
        return dict(self.config.services.get(service, {}))

    def when_stopping(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when the node begins to stop (for any reason)."""
        self._stopping_callbacks.append(callback)

    def halt(self, exit_status: int) -> None:
        """Stop at once: every actor is cancelled (no ``terminate``), newest first.

        For an operator who does not want to wait (a second Ctrl-C). A ``stop`` in
        progress then finishes at once. ``exit_status`` becomes the node's, unless
        one was already set.
        """
        if self.exit_status is None:
            self.exit_status = exit_status
        logger.warning("node_halting", node=self.name, actors=len(self._procs))
        for proc in reversed(list(self._procs.values())):
            proc.kill(KILLED, report=False)

    async def wait_stopped(self) -> int:
        """Wait until the node has stopped (by ``stop`` or a failed service); its exit status."""
        if self._stopped is None:
            raise RuntimeError(f"node {self.name} was never started")
        await self._stopped.wait()
        assert self.exit_status is not None
        return self.exit_status

    # ======================================================================================
    # Actors
    # ======================================================================================

    async def spawn(
        self,
        actor_class: type[Actor],
        /,
        *,
        name: str | None = None,
        mailbox_size: int | None = None,
        shutdown: Shutdown | None = None,
        **init_args: Any,
    ) -> ActorRef:
        """Start an unsupervised actor; return once its ``init(**init_args)`` has returned.

        ``name`` registers it (``whereis``); ``mailbox_size`` bounds its mailbox
        (default: ``config.runtime.mailbox_size``); ``shutdown`` bounds its
        ``terminate`` (default: ``config.runtime.shutdown`` seconds).

        Raises:
            StartError: ``init`` raised (chained as ``__cause__``), the name is
                taken, or the node is not running.
            TypeError: ``actor_class`` is not an :class:`Actor` subclass.
        """
        return await self._spawn(
            actor_class,
            init_args,
            name=name,
            mailbox_size=mailbox_size,
            shutdown=shutdown,
            parent=None,
            service="",
        )

    async def _spawn(
        self,
        actor_class: type[Actor],
        args: Mapping[str, Any],
        *,
        name: str | None,
        mailbox_size: int | None,
        shutdown: Shutdown | None,
        parent: Process | None,
        service: str,
    ) -> ActorRef:
        if not (isinstance(actor_class, type) and issubclass(actor_class, Actor)):
            raise TypeError(f"spawn needs an Actor subclass, got {actor_class!r}")
        label = name if name is not None else actor_class.__qualname__
        if self._state != UP:
            raise StartError(label, f"node {self.name} is not running")
        if name is not None:
            holder = self._names.get(name)
            if holder is not None:
                raise StartError(label, f"the name is already registered to {holder.ref!r}")
        if mailbox_size is None:
            mailbox_size = self.config.runtime.mailbox_size
        elif (
            isinstance(mailbox_size, bool) or not isinstance(mailbox_size, int) or mailbox_size < 1
        ):
            raise ValueError(f"mailbox_size must be an integer >= 1, got {mailbox_size!r}")
        if shutdown is None:
            shutdown = self.config.runtime.shutdown
        else:
            check_shutdown(shutdown, label)
        proc = Process(
            self, actor_class, next(self._ids), name, mailbox_size, shutdown, service, parent
        )
        actor = object.__new__(actor_class)
        actor._proc = proc
        proc.actor = actor
        self._procs[proc.ref.id] = proc
        if name is not None:
            self._names[name] = proc
        if actor_class.__aria_has_init__:
            try:
                await actor.init(**args)
            except StartError as exc:
                proc.finalize(ExitReason.from_exception(exc, detail="in init"))
                raise StartError(exc.child, exc.detail) from exc
            except Exception as exc:
                proc.finalize(ExitReason.from_exception(exc, detail="in init"))
                raise StartError(label, f"init raised {type(exc).__name__}: {exc}") from exc
            except BaseException:
                proc.finalize(KILLED)
                raise
        elif args:
            proc.finalize(ExitReason(kind="error", error_type="TypeError", detail="in init"))
            raise StartError(
                label,
                f"{actor_class.__qualname__} defines no init(), so it takes no arguments; "
                f"got {', '.join(sorted(args))}",
            )
        if proc.state == DEAD:
            raise StartError(label, f"it exited during init: {proc.exit_reason}")
        if parent is not None:
            if parent.state == DEAD:
                proc.kill(parent.exit_reason or KILLED, via=parent)
                raise StartError(label, f"its parent {parent.ref!r} exited during its init")
            parent.link(proc)
        proc.state = RUNNING
        if proc.stop_reason is not None:
            proc.begin_exit(proc.stop_reason)
        elif proc.scheduled:
            self.loop.call_soon(proc.drain, context=proc.context)
        return proc.ref

    async def start_supervisor(
        self, spec: SupervisorSpec | DynamicSupervisorSpec, *, name: str | None = None
    ) -> SupervisorRef:
        """Start an unsupervised supervisor running ``spec``; return its reference.

        Raises:
            StartError: a child failed to start (named, ``outer/inner`` for nested
                trees); every child already started has been stopped again.
        """
        ref = await self._spawn(
            supervisor_class(spec),
            {"spec": spec},
            name=name,
            mailbox_size=None,
            shutdown="infinity",
            parent=None,
            service="",
        )
        return cast(SupervisorRef, ref)

    def whereis(self, name: str) -> ActorRef | None:
        """The reference registered under ``name``, or ``None``."""
        proc = self._names.get(name)
        return proc.ref if proc is not None else None

    def registered(self) -> dict[str, ActorRef]:
        """All registered names and their references."""
        return {name: proc.ref for name, proc in self._names.items()}

    def actors(self) -> list[ActorRef]:
        """Every live actor, oldest first."""
        return [proc.ref for proc in self._procs.values()]

    def __len__(self) -> int:
        return len(self._procs)

    def supervisor_of(self, ref: ActorRef) -> tuple[SupervisorRef, str | ActorRef] | None:
        """``ref``'s supervisor and how it names the child (an id, or ``ref`` for a
        dynamic supervisor); ``None`` for an unsupervised actor."""
        proc = ref._proc
        parent = proc.parent
        if parent is None or not isinstance(parent.ref, SupervisorRef):
            return None
        child_id, _ = supervisor_record(proc)
        if child_id is None:
            return None
        if isinstance(parent.actor, DynamicSupervisor):
            return parent.ref, ref
        return parent.ref, child_id

    async def stop_actor(
        self, ref: ActorRef, reason: ExitKind | ExitReason = "shutdown"
    ) -> ExitReason:
        """Stop an actor as the node does at shutdown: let its handler finish, run
        ``terminate`` within its shutdown time, else cancel it. Its exit reason.

        A supervised actor is restarted by its supervisor according to its restart
        type; use the supervisor's ``terminate_child`` to keep it stopped.
        """
        proc = ref._proc
        return await proc.shutdown_with(as_exit_reason(reason), proc.shutdown)

    def find(self, actor_id: int) -> ActorRef | None:
        """The live actor with this id (the number in ``<actor aria.17 ...>``), or ``None``."""
        proc = self._procs.get(actor_id)
        return proc.ref if proc is not None else None

    # ======================================================================================
    # Introspection (reads records directly: no message is sent, nothing is changed)
    # ======================================================================================

    def info(self, ref: ActorRef) -> ActorInfo:
        """Everything the node knows about ``ref``'s actor (alive or not)."""
        return actor_info(ref._proc)

    def process_row(self, ref: ActorRef) -> ProcessRow:
        """``ref``'s line in a process listing."""
        return process_row(ref._proc)

    def inspect_state(self, ref: ActorRef) -> dict[str, str]:
        """The actor's state as its ``inspect_state`` shows it (secrets redacted).

        Raises:
            NoProcess: the actor has exited.
        """
        actor = ref._proc.actor
        if actor is None:
            raise NoProcess(ref)
        return actor.inspect_state()

    def message_types(self, ref: ActorRef) -> list[type[msgspec.Struct]]:
        """The message types ``ref``'s actor has handlers for."""
        return list(ref._proc.actor_class.__aria_handlers__)

    def tree(self) -> list[TreeNode]:
        """The supervision trees: services in boot order, then other top-level actors."""
        return supervision_tree(self)

    def trace(self, ref: ActorRef, enabled: bool) -> None:
        """Log every message ``ref``'s actor receives and sends (like ``sys:trace``).

        Each one gives a ``trace`` log event (``direction`` in or out, the message,
        the peer). Tracing ends by itself when the actor exits.
        """
        proc = ref._proc
        if proc.state == DEAD:
            raise NoProcess(ref)
        if enabled and proc.tracer is None:
            proc.tracer = True
            proc.context.run(CURRENT_PROCESS.set, proc)
            self.tracing += 1
        elif not enabled and proc.tracer is not None:
            proc.tracer = None
            self.tracing -= 1

    def apply_runtime_config(self, runtime: RuntimeConfig) -> list[str]:
        """Switch to new runtime settings while running; the keys that changed.

        New mailbox sizes and shutdown times apply to actors started from now on;
        the loop-lag probe and the dead-letter log rate change at once; the event
        loop cannot change (it is reported, not applied).
        """
        old = self.config.runtime
        changed = [
            field.name
            for field in msgspec.structs.fields(RuntimeConfig)
            if getattr(old, field.name) != getattr(runtime, field.name)
        ]
        live = [key for key in changed if key != "event_loop"]
        applied = msgspec.structs.replace(runtime, event_loop=old.event_loop)
        self.config = msgspec.structs.replace(self.config, runtime=applied)
        if "loop_lag_interval" in live:
            self.loop_lag.stop()
            self.loop_lag.interval = runtime.loop_lag_interval
            if self._state == UP:
                self.loop_lag.start(self.loop)
        if "dead_letter_logs_per_second" in live:
            self._dead_letter_log.per_second = runtime.dead_letter_logs_per_second
        return live

    # ======================================================================================
    # Services
    # ======================================================================================

    async def boot(
        self,
        services: Sequence[ServiceSpec],
        *,
        only: Iterable[str] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> list[str]:
        """Start ``services`` (or the ``only`` ones and what they require) in cold-boot order.

        Each service's top supervisor is registered under the service's name and
        started only after everything it requires is up. Returns the names in
        the order they were started. ``progress(name, index, total)`` is called
        before each service starts (the daemon turns it into systemd ``STATUS=``).

        Raises:
            BootError: a cycle, an unknown or duplicate name, or a service that is
                already running; raised before anything starts.
            StartError: a service failed to start (``service/child`` in ``child``);
                the services this call started are stopped again, newest first.
        """
        wanted = list(only) if only is not None else None  # an iterator is read once
        order = boot_order(services, wanted)
        if self._state != UP:
            raise StartError(order[0].name if order else "boot", f"node {self.name} is not running")
        asked = set(wanted) if wanted is not None else {spec.name for spec in services}
        to_start: list[ServiceSpec] = []
        for spec in order:
            if spec.name in self._services:
                if spec.name in asked:
                    raise BootError(f"service {spec.name!r} is already running on node {self.name}")
                continue  # a requirement that is already up, as OTP's ensure_all_started
            holder = self._names.get(spec.name)
            if holder is not None:
                raise BootError(
                    f"service {spec.name!r} cannot register its name: {holder.ref!r} holds it"
                )
            to_start.append(spec)
        started: list[str] = []
        for index, spec in enumerate(to_start, 1):
            logger.info("service_starting", node=self.name, service=spec.name)
            if progress is not None:
                progress(spec.name, index, len(to_start))
            try:
                ref = await self._spawn(
                    supervisor_class(spec.supervisor),
                    {"spec": spec.supervisor},
                    name=spec.name,
                    mailbox_size=None,
                    shutdown="infinity",
                    parent=None,
                    service=spec.name,
                )
            except StartError as exc:
                await self._undo_boot(started)
                if self._state != UP:
                    raise StartError(spec.name, "the node stopped during the boot") from exc
                logger.error(
                    "service_failed_to_start",
                    node=self.name,
                    service=spec.name,
                    child=exc.child,
                    error=exc.detail,
                )
                raise StartError(f"{spec.name}/{exc.child}", exc.detail) from exc
            if self._state != UP:  # stopped while this service was starting
                await ref._proc.shutdown_with(SHUTDOWN, "infinity")
                await self._undo_boot(started)
                raise StartError(spec.name, "the node stopped during the boot")
            proc = ref._proc
            self._services[spec.name] = RunningService(spec, proc)
            future = proc.exit_future = proc.exit_future or self.loop.create_future()
            future.add_done_callback(functools.partial(self._service_exited, spec))
            started.append(spec.name)
            self.boot_history.append(spec.name)
            logger.info("service_started", node=self.name, service=spec.name, supervisor=repr(ref))
        return started

    async def _undo_boot(self, started: list[str]) -> None:
        """Stop the services one boot call started, newest first (some may be gone already)."""
        for name in reversed(started):
            service = self._services.pop(name, None)
            if service is not None:
                await service.proc.shutdown_with(SHUTDOWN, "infinity")

    @property
    def services(self) -> list[str]:
        """The running services, in boot order."""
        return list(self._services)

    def service(self, name: str) -> tuple[ServiceSpec, SupervisorRef] | None:
        """A running service's spec and top supervisor, or ``None``."""
        running = self._services.get(name)
        if running is None:
            return None
        return running.spec, cast(SupervisorRef, running.proc.ref)

    def _service_exited(self, spec: ServiceSpec, future: asyncio.Future[ExitReason]) -> None:
        if self._state != UP or self._services.get(spec.name) is None:
            return  # stopped on purpose
        if self._services[spec.name].proc.state != DEAD:
            return
        reason = future.result()
        del self._services[spec.name]
        fatal = spec.restart == "permanent" or (
            spec.restart == "transient" and not reason.is_normal
        )
        logger.log(
            40 if fatal else 30,
            "service_exited",
            node=self.name,
            service=spec.name,
            restart=spec.restart,
            reason=str(reason),
            stops_node=fatal,
        )
        if fatal:
            self.exit_status = 1
            self._stop_task = self.loop.create_task(self.stop())

    # ======================================================================================
    # Runtime internals (called by processes and supervisors)
    # ======================================================================================

    def _forget(self, proc: Process) -> None:
        self._procs.pop(proc.ref.id, None)
        name = proc.ref.name
        if name is not None and self._names.get(name) is proc:
            del self._names[name]

    def _next_monitor_id(self) -> int:
        return next(self._monitor_ids)

    def _send_exit_signals(
        self, sender: Process, receivers: Iterable[Process], reason: ExitReason
    ) -> None:
        """Deliver exit signals iteratively, so long link chains cannot overflow the stack."""
        signals = self._signals
        for receiver in receivers:
            signals.append((receiver, sender, reason))
        if self._delivering:
            return
        self._delivering = True
        try:
            while signals:
                receiver, source, why = signals.popleft()
                receiver.exit_signal(source, why)
        finally:
            self._delivering = False

    def _report_exit(
        self, proc: Process, reason: ExitReason, current: object, via: Process | None
    ) -> None:
        crash_report(proc, reason, current, via)

    def _log_terminate_timeout(self, proc: Process, limit: float | None) -> None:
        logger.error("terminate_timeout", actor=repr(proc.ref), service=proc.service, limit=limit)

    def _dead_letter(self, ref: ActorRef, message: object, unhandled: bool = False) -> None:
        self.dead_letters += 1
        why = "no handler for its type" if unhandled else "the actor is not alive"
        self._dead_letter_log.record(repr(ref), message, why)

    def _dead_letters_on_exit(self, ref: ActorRef, count: int) -> None:
        self.dead_letters += count
        self._dead_letter_log.record(
            repr(ref), f"{count} queued message(s)", "the actor exited", count
        )

    def _count_restart(self, supervisor: Process, child_id: str) -> None:
        key = (supervisor.ref.name or repr(supervisor.ref), child_id)
        self.restart_counts[key] = self.restart_counts.get(key, 0) + 1

    def _trace_in(self, proc: Process, item: object) -> None:
        message = getattr(item, "message", item)
        kind = "call" if message is not item else "cast"
        logger.info(
            "trace",
            actor=repr(proc.ref),
            service=proc.service,
            direction="in",
            kind=kind,
            message=short_repr(message),
        )

    def _trace_out(self, target: ActorRef, message: object, kind: str) -> None:
        sender = CURRENT_PROCESS.get()
        if sender is None or sender.tracer is None:
            return
        logger.info(
            "trace",
            actor=repr(sender.ref),
            service=sender.service,
            direction="out",
            kind=kind,
            to=repr(target),
            message=short_repr(message),
        )
