"""Executors: how the acting engine's commands reach the world.

An executor is ``await executor(command, args, state) -> State | bool | None`` (see
:mod:`.acting`): the observed state, ``True`` (done as the action model predicts),
``False``/``None`` (the command reports failure), or it raises
:class:`~.acting_errors.CommandError` (failure) / :class:`~.acting_errors.UnknownCommand`
(nothing executes that command: a configuration bug).

- :class:`DomainCommandExecutor`: the domain's own ``c_<action>`` functions, in the
  loop, as GTPyhop's ``run_lazy_lookahead`` runs them;
- :class:`ActorExecutor`: calls to actors with :class:`~.acting_messages.RunCommand`,
  replies interpreted by :func:`apply_reply`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from ..._runtime.errors import UnhandledMessage
from ..._runtime.ref import ActorRef
from .acting_errors import CommandError, UnknownCommand
from .acting_messages import (
    CommandFailed,
    CommandSucceeded,
    ObservedState,
    RunCommand,
    apply_facts,
)
from .domain import Domain
from .errors import MalformedReturn
from .state import State

__all__ = ["ActorExecutor", "DomainCommandExecutor", "Route", "apply_reply"]


# ==========================================================================================


class DomainCommandExecutor:
    """Runs the domain's own commands, as GTPyhop does: ``c_<action>(state.copy(), *args)``.

    Falls back to the action itself when the domain declares no such command (as
    GTPyhop's ``run_lazy_lookahead``). A command returns the new State, or
    ``False``/``None`` on failure.

    Raises:
        UnknownCommand: neither the command nor its action is declared.
    """

    def __init__(self, domain: Domain) -> None:
        self.domain = domain

    async def __call__(self, command: str, args: tuple[Any, ...], state: State) -> State | bool:
        fn = self.domain.commands.get(command)
        if fn is None:
            fn = self.domain.actions.get(command.removeprefix("c_"))
        if fn is None:
            raise UnknownCommand(
                f"domain {self.domain.name!r} declares no command {command} and no action "
                f"{command.removeprefix('c_')}",
                command=command,
            )
        result = fn(state.copy(), *args)
        return result if isinstance(result, State) else False


Route: TypeAlias = ActorRef | tuple[ActorRef, object]
"""Where a command goes: an actor (sent :class:`RunCommand`), or an actor and the message."""


def apply_reply(command: str, args: tuple[Any, ...], state: State, reply: object) -> State | bool:
    """What a command actor's ``reply`` means for the state the engine believed.

    :class:`CommandSucceeded` applies its updates to a copy of ``state``;
    :class:`ObservedState` is the new state; a :class:`State` or a bool is returned as is.

    Raises:
        CommandError: the reply is :class:`CommandFailed` (with the observed state when
            it carries updates).
        MalformedReturn: any other reply.
    """
    if isinstance(reply, CommandSucceeded):
        return apply_facts(state, reply.updates)
    if isinstance(reply, ObservedState):
        return State("observed", **reply.variables)
    if isinstance(reply, CommandFailed):
        observed = apply_facts(state, reply.updates) if reply.updates else None
        raise CommandError(command, args, reply.reason, state=observed)
    if isinstance(reply, State | bool):
        return reply
    raise MalformedReturn(
        f"actor reply {reply!r:.80} to {command}{args!r} is no CommandSucceeded, "
        f"CommandFailed, ObservedState, State or bool",
        command,
        reply,
    )


class ActorExecutor:
    """Executes commands as calls to actors: ``await ref.call(message, timeout=...)``.

    ``routes`` maps a command name to an :class:`ActorRef` (which is sent
    ``RunCommand(command, args)``), or is a function ``(command, args) -> Route | None``
    choosing the actor and, optionally, the message. The reply is interpreted by
    :func:`apply_reply`.

    Failures (all seen by acting as a failed command, hence a replan): the actor's
    :class:`CommandFailed`, ``CallTimeout`` (a ``TimeoutError``: outcome ``timeout``),
    ``NoProcess``, ``ActorExited``.

    Raises:
        UnknownCommand: no route for the command, or the actor has no handler for the
            message (``UnhandledMessage``): configuration bugs, not retried.
    """

    def __init__(
        self,
        routes: Mapping[str, ActorRef] | Callable[[str, tuple[Any, ...]], Route | None],
        *,
        call_timeout: float = 5.0,
    ) -> None:
        self.routes = routes
        self.call_timeout = call_timeout

    def route(self, command: str, args: tuple[Any, ...]) -> tuple[ActorRef, object]:
        """The actor and message for ``command``; raises :class:`UnknownCommand`."""
        found = (
            self.routes.get(command)
            if isinstance(self.routes, Mapping)
            else self.routes(command, args)
        )
        if found is None:
            raise UnknownCommand(f"no actor executes command {command}", command=command)
        if isinstance(found, tuple):
            return found
        return found, RunCommand(command=command, args=args)

    async def __call__(self, command: str, args: tuple[Any, ...], state: State) -> State | bool:
        ref, message = self.route(command, args)
        try:
            reply = await ref.call(message, timeout=self.call_timeout)
        except UnhandledMessage as e:
            raise UnknownCommand(
                f"{ref!r} has no handler for {type(message).__name__} (command {command})",
                command=command,
            ) from e
        return apply_reply(command, args, state, reply)
