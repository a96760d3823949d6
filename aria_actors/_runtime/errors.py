"""The exceptions of the runtime, one tree rooted at :class:`AriaError`.

::

    AriaError
    ├── NoProcess            the actor is not alive (never was, or has exited)
    ├── CallTimeout          a call got no reply in time (also a TimeoutError)
    ├── ActorExited          the actor exited before replying; ``.reason`` says why
    ├── UnhandledMessage     the actor has no handler for the message's type
    ├── MailboxFull          ``cast_nowait`` found the bounded mailbox full
    ├── StartError           an actor, a child or a whole tree failed to start
    ├── BootError            the services' ``requires`` form a cycle or name an unknown service
    ├── SupervisorError      a supervisor request was refused (unknown child, still running, ...)
    └── ConfigError          a configuration or supervision-tree file is malformed

Every message says what failed and, where there is one, what to do about it.
Foreign exceptions are translated at the boundary; the original is chained as
``__cause__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .messages import ExitReason
    from .ref import ActorRef


class AriaError(Exception):
    """Base class of every error the runtime raises on purpose."""


class NoProcess(AriaError):
    """The target actor is not alive.

    Raised by ``call`` on a dead actor, by ``link`` on a dead actor from an actor
    that does not trap exits, and by supervisor operations on a dead supervisor.
    """

    def __init__(self, actor: ActorRef | str, detail: str = "") -> None:
        self.actor = actor
        text = f"no process: {actor} is not alive"
        super().__init__(f"{text} ({detail})" if detail else text)


class CallTimeout(AriaError, TimeoutError):
    """A call did not get its reply within its deadline.

    The request may still be handled later; its reply is then dropped.
    """

    def __init__(self, actor: ActorRef, message: object, timeout: float) -> None:
        self.actor = actor
        self.timeout = timeout
        super().__init__(
            f"call to {actor} with {type(message).__name__} got no reply within {timeout:g}s"
        )


class ActorExited(AriaError):
    """The actor exited before it replied to the call; ``reason`` is its :class:`ExitReason`."""

    def __init__(self, actor: ActorRef, reason: ExitReason) -> None:
        self.actor = actor
        self.reason = reason
        super().__init__(f"{actor} exited before replying: {reason}")


class UnhandledMessage(AriaError):
    """The actor has no handler for the message's type. The actor keeps running."""

    def __init__(self, actor: ActorRef, message: object) -> None:
        self.actor = actor
        self.message_type = type(message)
        super().__init__(
            f"{actor} has no handler for {type(message).__qualname__}; "
            f"declare one with @handles({type(message).__name__})"
        )


class MailboxFull(AriaError):
    """``cast_nowait`` found the actor's bounded mailbox full.

    Use ``await ref.cast(msg)`` to wait for room instead, or raise ``mailbox_size``.
    """

    def __init__(self, actor: ActorRef, size: int) -> None:
        self.actor = actor
        self.size = size
        super().__init__(f"mailbox of {actor} is full ({size} messages)")


class StartError(AriaError):
    """An actor, a supervisor child or a whole tree failed to start.

    ``child`` names what failed (a child id, a service name or an actor name);
    the original exception, if any, is chained as ``__cause__``. Anything that
    was already started for the failed tree has been stopped again.
    """

    def __init__(self, child: str, detail: str) -> None:
        self.child = child
        self.detail = detail
        super().__init__(f"{child} failed to start: {detail}")


class BootError(AriaError):
    """The services cannot be booted: a cycle in ``requires``, an unknown or a duplicate name.

    Raised before anything starts.
    """


SupervisorErrorKind = Literal[
    "not_found", "running", "restarting", "not_running", "already_present", "dynamic", "static"
]


class SupervisorError(AriaError):
    """A supervisor refused a request about one of its children.

    ``kind`` is one of ``not_found`` (no such child), ``running`` (delete or restart
    of a running child), ``already_present`` (a child with that id exists),
    ``not_running`` (the child is not running), ``dynamic``/``static`` (the request
    needs the other kind of supervisor).
    """

    def __init__(self, kind: SupervisorErrorKind, child: object, detail: str) -> None:
        self.kind: SupervisorErrorKind = kind
        self.child = child
        super().__init__(f"child {child!r}: {detail}")


class ConfigError(AriaError):
    """A configuration or supervision-tree file is malformed.

    The message names the file and the key (``supervisors/x.toml: children[1].restart: ...``).
    """
