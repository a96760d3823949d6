"""Messages: what may be sent, exit reasons, and the system messages ``Exit`` and ``Down``.

A message is an instance of a ``msgspec.Struct`` subclass declared ``frozen=True``.
Locally it is passed by reference, never copied: immutability is what makes that
safe. Declaring ``tag=True`` as well lets the node codec decode it inside a tagged
union when it crosses a process boundary.
"""

from __future__ import annotations

import traceback as _traceback
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

if TYPE_CHECKING:
    from .ref import ActorRef, MonitorRef

ExitKind = Literal["normal", "shutdown", "killed", "error", "noproc"]
"""The closed vocabulary of exit kinds.

- ``normal``: the actor stopped itself (``self.stop()``) or finished cleanly.
- ``shutdown``: it was asked to stop by its supervisor, its node or its parent.
- ``killed``: it was cancelled without running ``terminate`` (``brutal_kill``, or a
  shutdown deadline that passed).
- ``error``: an exception escaped ``init``, a handler or ``terminate``.
- ``noproc``: the actor did not exist (a monitor or link set on a dead actor).
"""

EXIT_KINDS: Final[frozenset[str]] = frozenset({"normal", "shutdown", "killed", "error", "noproc"})


class ExitReason(msgspec.Struct, frozen=True, tag=True):
    """Why an actor exited.

    ``error_type``, ``error_message`` and ``traceback`` are set when ``kind == "error"``;
    ``detail`` optionally qualifies any kind (for example a supervisor that gave up
    exits with ``kind="shutdown", detail="reached_max_restart_intensity"``).
    """

    kind: ExitKind
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    detail: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException, detail: str = "") -> ExitReason:
        """The ``error`` reason for an exception, with its formatted traceback."""
        tb = "".join(_traceback.format_exception(exc))
        return cls(
            kind="error",
            error_type=type(exc).__qualname__,
            error_message=str(exc),
            traceback=tb,
            detail=detail,
        )

    @property
    def is_normal(self) -> bool:
        """True for ``normal`` only: the one reason that does not kill linked actors."""
        return self.kind == "normal"

    @property
    def is_quiet(self) -> bool:
        """True for ``normal`` and ``shutdown``: no crash report, no transient restart."""
        return self.kind == "normal" or self.kind == "shutdown"

    def __str__(self) -> str:
        text: str = self.kind
        if self.kind == "error":
            text = (
                f"error: {self.error_type}: {self.error_message}"
                if self.error_message
                else (f"error: {self.error_type}")
            )
        return f"{text} ({self.detail})" if self.detail else text


NORMAL: Final = ExitReason(kind="normal")
SHUTDOWN: Final = ExitReason(kind="shutdown")
KILLED: Final = ExitReason(kind="killed")
NOPROC: Final = ExitReason(kind="noproc")


def as_exit_reason(reason: ExitKind | ExitReason) -> ExitReason:
    """Turn a kind name or a reason into an :class:`ExitReason`; reject anything else."""
    if isinstance(reason, ExitReason):
        return reason
    if reason == "normal":
        return NORMAL
    if reason == "shutdown":
        return SHUTDOWN
    if reason == "killed":
        return KILLED
    if reason == "noproc":
        return NOPROC
    raise ValueError(
        f"exit reason must be one of {sorted(EXIT_KINDS - {'error'})} or an ExitReason, "
        f"got {reason!r}; use ExitReason.from_exception(exc) for an error"
    )


class Exit(msgspec.Struct, frozen=True, tag=True):
    """An exit signal turned into a message, for an actor that traps exits.

    Delivered when a linked actor exits (with any reason, ``normal`` included).
    """

    actor: ActorRef
    reason: ExitReason


class Down(msgspec.Struct, frozen=True, tag=True):
    """Delivered exactly once to the owner of a monitor when the monitored actor exits.

    ``reason`` is ``noproc`` when the actor was already dead as the monitor was set.
    """

    monitor: MonitorRef
    actor: ActorRef
    reason: ExitReason


MESSAGE_TYPES: set[type[Any]] = set()
"""Types already checked to be frozen structs (the send path looks here first)."""


def check_message(message: object) -> None:
    """Raise ``TypeError`` unless ``message`` is an instance of a frozen ``msgspec.Struct``."""
    cls = type(message)
    if cls in MESSAGE_TYPES:
        return
    if isinstance(message, msgspec.Struct) and type(message).__struct_config__.frozen:
        MESSAGE_TYPES.add(cls)
        return
    if isinstance(message, msgspec.Struct):
        raise TypeError(
            f"message type {cls.__qualname__} is not immutable: declare it "
            f"'class {cls.__name__}(msgspec.Struct, frozen=True, tag=True)'"
        )
    raise TypeError(
        f"messages must be frozen msgspec.Struct instances, got {cls.__qualname__}: "
        "declare a 'class M(msgspec.Struct, frozen=True, tag=True)'"
    )
