"""The actor behaviour: what a subclass of :class:`Actor` writes, and what the runtime does with it.

Callbacks and how they are reached (as ``gen_server`` documents its callbacks):

``init(**args)``
    Runs on every start and restart, with the ``args`` of the spawn or the child
    spec, before any message is handled; ``node.spawn`` and the supervisor wait
    for it. Returning starts the actor. An exception fails the start: the caller
    gets :class:`StartError` naming the actor, and ``terminate`` does not run.
    Each (re)start builds a fresh instance: no state survives a crash.

handlers, declared with ``@handles(MessageType, ...)``
    ``ref.call(msg)`` → the handler for ``type(msg)`` → its return value is the
    reply. ``ref.cast(msg)`` → the same handler → the return value is dropped.
    Handlers may be plain functions or coroutines; messages are handled one at a
    time, in arrival order (a call to an idle actor whose handler is a plain
    function runs at once, in the caller's turn of the loop: nothing can come
    before it, so the order is the same). A handler that wants to answer a call later takes a
    :class:`DeferredReply` with ``self.defer_reply()`` (OTP's ``noreply`` followed
    by ``gen_server:reply``). No handler for the message's type: a call fails at
    the caller with :class:`UnhandledMessage`; a cast is dropped as a dead letter.
    Neither crashes the actor. An exception escaping a handler *crashes* the actor:
    ``terminate`` runs with an ``error`` reason, waiting callers get
    :class:`ActorExited`, links and monitors are told, the supervisor decides.

``terminate(reason)``
    Runs when the actor stops itself (``self.stop()``), crashes in a handler, or is
    shut down by its supervisor or node (whether or not it traps exits; OTP runs it
    only for trapping processes). Bounded by the actor's ``shutdown`` time: past it
    the actor is cancelled and its reason becomes ``killed``. It does *not* run
    after a failed ``init``, on ``brutal_kill``, or when a link kills an actor that
    does not trap exits (as in OTP: trap exits to clean up in that case). An
    exception in ``terminate`` turns the exit reason into that error.

Exit signals: when a linked actor exits abnormally (any kind but ``normal``), an
actor that does not trap exits dies at once with the same reason (its in-flight
handler is cancelled). With ``self.trap_exits = True`` it receives
:class:`Exit` messages instead, for normal exits too. An exit signal from the
actor's *parent* (the supervisor or actor that spawned it linked) makes even a
trapping actor stop with that reason, running ``terminate``.

Blocking or CPU-heavy work never runs on the event loop: use
:meth:`Actor.run_blocking` (a worker thread) or :meth:`Actor.run_in_process`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import msgspec
import structlog

from .blocking import run_blocking, run_in_process
from .messages import ExitKind, ExitReason, as_exit_reason, check_message
from .ref import ActorRef, Envelope, MonitorRef
from .reports import short_repr

if TYPE_CHECKING:
    import asyncio

    from .node import Node
    from .process import Process

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

HandlerEntry = tuple[Callable[[Any, Any], Any], bool]
"""A handler as the mailbox loop calls it: the function and whether it is a coroutine function."""


def handles(*message_types: type[msgspec.Struct]) -> Callable[[F], F]:
    """Declare the decorated method as the handler for ``message_types``.

    Raises:
        TypeError: no type given, or a type that is not a frozen ``msgspec.Struct``.
    """
    if not message_types:
        raise TypeError("@handles needs at least one message type")
    for message_type in message_types:
        if not (
            isinstance(message_type, type)
            and issubclass(message_type, msgspec.Struct)
            and message_type.__struct_config__.frozen
        ):
            raise TypeError(
                f"@handles({message_type!r}): message types must be frozen msgspec.Struct "
                "subclasses (class M(msgspec.Struct, frozen=True, tag=True))"
            )

    def mark(function: F) -> F:
        existing: tuple[type, ...] = getattr(function, "__aria_handles__", ())
        function.__aria_handles__ = existing + message_types  # type: ignore[attr-defined]
        return function

    return mark


class DeferredReply:
    """The promise to answer a call later, taken with ``self.defer_reply()``.

    Exactly one of :meth:`reply` or :meth:`fail` takes effect; later ones are
    ignored. If the actor exits first, the caller gets :class:`ActorExited`. For a
    message that arrived by ``cast`` there is nobody to answer and both are no-ops.
    """

    __slots__ = ("_envelope", "_proc")

    def __init__(self, proc: Process, envelope: Envelope | None) -> None:
        self._proc = proc
        self._envelope = envelope

    @property
    def done(self) -> bool:
        """True once answered (or if there was nobody to answer)."""
        return self._envelope is None or self._envelope.future.done()

    def reply(self, value: object) -> None:
        """Send ``value`` as the reply to the deferred call."""
        envelope = self._envelope
        if envelope is not None and not envelope.future.done():
            envelope.future.set_result(value)
        self._forget()

    def fail(self, error: BaseException) -> None:
        """Make the caller's ``call`` raise ``error``."""
        envelope = self._envelope
        if envelope is not None and not envelope.future.done():
            envelope.future.set_exception(error)
        self._forget()

    def _forget(self) -> None:
        deferred = self._proc.deferred
        if deferred is not None:
            deferred.discard(self)


class TimerRef:
    """A pending ``send_after`` timer; :meth:`cancel` it to stop the delivery."""

    __slots__ = ("_handle", "_proc", "message")

    def __init__(self, proc: Process, message: object) -> None:
        self._proc = proc
        self.message = message
        self._handle: asyncio.TimerHandle | None = None

    def cancel(self) -> bool:
        """Cancel the timer. True if it was still pending (the message will not arrive)."""
        handle = self._handle
        if handle is None:
            return False
        self._handle = None
        handle.cancel()
        timers = self._proc.timers
        if timers is not None:
            timers.discard(self)
        return True

    @property
    def pending(self) -> bool:
        """True until the message is delivered or the timer cancelled."""
        return self._handle is not None

    def _fire(self) -> None:
        self._handle = None
        proc = self._proc
        if proc.timers is not None:
            proc.timers.discard(self)
        if proc.state <= 1:
            proc.put_unbounded(self.message)


class Actor:
    """Base class of every actor; see the module documentation for the callbacks.

    Subclasses define ``async def init(self, **args)``, handlers marked with
    :func:`handles`, and optionally ``async def terminate(self, reason)``. They
    must not define ``__init__`` (``init`` is the constructor: it runs on every
    restart).
    """

    __slots__ = ("_proc",)

    __aria_handlers__: ClassVar[dict[type, HandlerEntry]] = {}
    __aria_has_init__: ClassVar[bool] = False
    __aria_has_terminate__: ClassVar[bool] = False
    ref_class: ClassVar[type[ActorRef]] = ActorRef
    """The reference type handed out for this actor (supervisors hand out ``SupervisorRef``)."""
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    """Attributes that :meth:`inspect_state` shows as ``<redacted>`` (keys, passwords)."""

    _proc: Process

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls):
            raise TypeError(
                f"{cls.__qualname__} defines __init__: actors are built by the runtime; "
                "put start-up code in 'async def init(self, ...)', which runs on every (re)start"
            )
        by_type: dict[type, str] = {}
        for klass in reversed(cls.__mro__):
            own: dict[type, str] = {}
            for attr_name, attr in vars(klass).items():
                for message_type in getattr(attr, "__aria_handles__", ()):
                    if message_type in own:
                        raise TypeError(
                            f"{klass.__qualname__}: both {own[message_type]}() and {attr_name}() "
                            f"handle {message_type.__qualname__}"
                        )
                    own[message_type] = attr_name
            by_type.update(own)
        handlers: dict[type, HandlerEntry] = {}
        for message_type, attr_name in by_type.items():
            function = getattr(cls, attr_name)
            handlers[message_type] = (function, inspect.iscoroutinefunction(function))
        cls.__aria_handlers__ = handlers
        cls.__aria_has_init__ = cls.init is not Actor.init
        cls.__aria_has_terminate__ = cls.terminate is not Actor.terminate

    # -- callbacks --------------------------------------------------------------------------

    async def init(self, *args: Any, **kwargs: Any) -> None:
        """Start-up, on every (re)start; receives the spawn's or child spec's ``args``."""

    async def terminate(self, reason: ExitReason) -> None:
        """Clean-up on stop, crash or shutdown; see the module documentation for when it runs."""

    def inspect_state(self) -> dict[str, str]:
        """The state the console's ``state`` command shows: attribute → short repr.

        Every instance attribute by default, those named in ``secret_fields`` as
        ``<redacted>``. Override it to show something else; it runs on the node's
        loop, between messages, and must be quick and must not raise.
        """
        attributes = getattr(self, "__dict__", {})
        return {
            key: "<redacted>" if key in self.secret_fields else short_repr(value)
            for key, value in attributes.items()
        }

    # -- identity ---------------------------------------------------------------------------

    @property
    def ref(self) -> ActorRef:
        """This actor's reference."""
        return self._proc.ref

    @property
    def node(self) -> Node:
        """The node this actor runs on."""
        return self._proc.node

    @property
    def service(self) -> str:
        """The service whose tree this actor belongs to (``""`` outside any service)."""
        return self._proc.service

    @property
    def log(self) -> Any:
        """A structlog logger bound to this actor (``actor=``, ``service=``)."""
        proc = self._proc
        logger = proc.logger
        if logger is None:
            # A lazy proxy: it follows structlog's configuration when that changes
            # (a reloaded log level reaches actors that logged before).
            logger = proc.logger = structlog.get_logger(
                "aria_actors.actor", actor=repr(proc.ref), service=proc.service
            )
        return logger

    @property
    def trap_exits(self) -> bool:
        """When True, exit signals from linked actors arrive as :class:`Exit` messages."""
        return self._proc.trap_exits

    @trap_exits.setter
    def trap_exits(self, value: bool) -> None:
        self._proc.trap_exits = bool(value)

    # -- links, monitors, timers ------------------------------------------------------------

    def link(self, other: ActorRef) -> None:
        """Link this actor with ``other`` (two-way).

        Raises:
            NoProcess: ``other`` is dead and this actor does not trap exits (a trapping
                actor receives ``Exit(reason=noproc)`` instead).
        """
        self._proc.link(other._proc)

    def unlink(self, other: ActorRef) -> None:
        """Remove the link with ``other``, if any. An ``Exit`` already queued stays queued."""
        self._proc.unlink(other._proc)

    def monitor(self, other: ActorRef) -> MonitorRef:
        """Monitor ``other``: one ``Down`` message arrives when it exits (``noproc`` if dead)."""
        return self._proc.monitor(other._proc)

    def demonitor(self, monitor: MonitorRef) -> bool:
        """Remove a monitor and any of its ``Down`` still queued. True if it was active."""
        return self._proc.demonitor(monitor)

    def send_after(self, seconds: float, message: object) -> TimerRef:
        """Deliver ``message`` to this actor after ``seconds``; cancel with ``TimerRef.cancel``.

        Timers are cancelled when the actor exits. A timer's message is never
        refused by a full mailbox.
        """
        check_message(message)
        proc = self._proc
        timer = TimerRef(proc, message)
        timer._handle = proc.loop.call_later(max(0.0, seconds), timer._fire)
        if proc.timers is None:
            proc.timers = set()
        proc.timers.add(timer)
        return timer

    def start_task(
        self, coroutine: Coroutine[Any, Any, T], *, name: str | None = None
    ) -> asyncio.Task[T]:
        """Run ``coroutine`` as a task this actor owns, beside its handlers.

        The task lives no longer than the actor: it is cancelled when the actor exits,
        however it exits (a stop, a crash, a supervisor's or the node's shutdown,
        ``brutal_kill``, a link), after ``terminate`` when that runs (which may still
        await it). An exception escaping the task crashes the actor as one escaping a
        handler does: after the handler in progress, ``terminate`` runs with the error
        and the supervisor sees a crash. The task runs in a copy of the actor's context
        (its logger fields, the ambient node; context variables it sets stay its own). A
        task created with ``asyncio`` directly is not the actor's: it outlives a killed
        actor.

        Raises:
            ActorExited: the actor is exiting or has exited (``coroutine`` is closed
                without running).
        """
        return self._proc.start_task(coroutine, name)

    # -- replies and stopping ---------------------------------------------------------------

    def defer_reply(self) -> DeferredReply:
        """Take over the reply to the message being handled (call it inside the handler).

        The handler's return value is then ignored; answer later with
        ``reply(value)`` or ``fail(error)``, from this actor or any other task.
        """
        proc = self._proc
        item = proc.current
        if type(item) is not Envelope:
            return DeferredReply(proc, None)
        item.deferred = True
        deferred = DeferredReply(proc, item)
        if proc.deferred is None:
            proc.deferred = set()
        proc.deferred.add(deferred)
        return deferred

    def stop(self, reason: ExitKind | ExitReason = "normal") -> None:
        """Stop this actor after the current handler returns; ``terminate(reason)`` runs."""
        self._proc.request_stop(as_exit_reason(reason))

    # -- children and blocking work ---------------------------------------------------------

    async def spawn_link(
        self,
        actor_class: type[Actor],
        /,
        *,
        name: str | None = None,
        mailbox_size: int | None = None,
        **init_args: Any,
    ) -> ActorRef:
        """Start an actor linked to this one, with this actor as its parent and service.

        Raises:
            StartError: its ``init`` failed or the name is taken.
        """
        proc = self._proc
        return await proc.node._spawn(
            actor_class,
            init_args,
            name=name,
            mailbox_size=mailbox_size,
            shutdown=None,
            parent=proc,
            service=proc.service,
        )

    async def run_blocking(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking ``function(*args)`` in a worker thread; see :func:`run_blocking`."""
        return await run_blocking(function, *args)

    async def run_in_process(self, function: Callable[..., T], *args: Any) -> T:
        """Run CPU-heavy ``function(*args)`` in a worker process; see :func:`run_in_process`."""
        return await run_in_process(function, *args)
