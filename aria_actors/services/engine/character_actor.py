"""Characters: one acting actor per character, under a dynamic supervisor.

``aria_engine.characters`` (:class:`CharacterDirector`) starts and stops the actor of
each character (``aria_engine.character.<id>``, a :class:`CharacterActor`) under the
``aria_engine.character_sup`` dynamic supervisor, and lists them. A character actor is
``permanent``: when it crashes, the supervisor starts it again from the state it was
started with (state never survives a crash).

A character actor holds its world state. :class:`Achieve` makes it act the to-do list
with the acting engine (:class:`~.acting.Acting`, lazy lookahead): plans come from
``aria_engine.planner`` (the service's planner pool: a long search never runs here, and
cancelling the request cancels it there), and the plan's commands run here, one at a
time: the command ``c_<action>`` (or the action itself when the domain declares no
command) runs on a copy of the state and returns the state it observed
(:class:`~.acting.DomainCommandExecutor`). When a command fails (returns
``False``/``None``, or raises) or the world does not turn out as predicted and the rest
of the plan no longer applies, the actor replans from where it is, at most
``act_max_replans`` times; then the request fails with ``PlanningFailed``. Planning
errors come back as the planner pool raised them (``PlanningFailed``,
``BudgetExceeded``, ``DomainError``, ...).

Every request is one trace of spans (see :mod:`.spans`: ``acting`` → ``plan`` /
``replan`` → predicted ``action`` spans and executed ``command`` spans; no search spans,
the search runs in the pool). Each character keeps the newest :data:`SPAN_CAPACITY`
spans in a :class:`~.spans.MemorySpanSink`; :class:`~.messages.CharacterStatus` carries
the last request's trace id and spans (as far as they are still held).

Commands are domain functions run on the actor's loop: they must be quick (a long
command belongs in its own actor or a worker).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any, Final

from ..._runtime.actor import Actor, DeferredReply, handles
from ..._runtime.errors import AriaError, ConfigError
from ..._runtime.messages import ExitReason
from ..._runtime.specs import ChildSpec
from ..._runtime.supervisor_api import SupervisorRef
from .acting import Acting, DomainCommandExecutor
from .acting_errors import NoPlan, ReplanLimitExceeded
from .domain import Domain
from .errors import EngineError, PlanningFailed
from .messages import (
    Achieve,
    CharacterPhase,
    CharacterStatus,
    GetCharacter,
    GetDomain,
    ListCharacters,
    PlanRequest,
    PlanResult,
    StartCharacter,
    StopCharacter,
)
from .planner import Plan
from .settings import SERVICE, load_settings
from .spans import MemorySpanSink, SpanRecorder
from .state import State
from .wire import BadRequest, state_from_data, state_to_data, todo_from_data

__all__ = [
    "CHARACTER_SUPERVISOR",
    "SPAN_CAPACITY",
    "CharacterActor",
    "CharacterBusy",
    "CharacterDirector",
    "character_actor_name",
]

CHARACTER_SUPERVISOR: Final = "aria_engine.character_sup"
DOMAINS_ACTOR: Final = "aria_engine.domains"
PLANNER_ACTOR: Final = "aria_engine.planner"
CALL_MARGIN: Final = 10.0
"""Seconds a character waits for the planner beyond the search's own timeout."""
SPAN_CAPACITY: Final = 2_000
"""Spans a character keeps (its newest requests'); older ones are evicted."""


class CharacterBusy(EngineError):
    """The character is already planning or acting a request."""


def character_actor_name(character: str) -> str:
    """The registered name of ``character``'s actor."""
    return f"aria_engine.character.{character}"


class CharacterActor(Actor):
    """``aria_engine.character.<id>``; see the module documentation."""

    async def init(self, character: str, domain: str, state: dict[str, Any]) -> None:
        self.settings = load_settings(self.node.service_settings(SERVICE))
        self.character = character
        self.domain_name = domain
        registry = self.node.whereis(DOMAINS_ACTOR)
        if registry is None:
            raise ConfigError(f"{DOMAINS_ACTOR} is not running")
        self.domain: Domain = await registry.call(GetDomain(domain))
        self.commands = DomainCommandExecutor(self.domain)
        self.state: State = state_from_data(state, character)
        self.phase: CharacterPhase = "idle"
        self.executed: list[tuple[Any, ...]] = []
        self.replans = 0
        self.error: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.spans = MemorySpanSink(SPAN_CAPACITY)
        self.trace: str | None = None
        self._runs = itertools.count(1)

    async def terminate(self, reason: ExitReason) -> None:
        if self.task is not None:
            self.task.cancel()

    def status(self) -> CharacterStatus:
        return CharacterStatus(
            character=self.character,
            domain=self.domain_name,
            phase=self.phase,
            state=state_to_data(self.state),
            executed=list(self.executed),
            replans=self.replans,
            error=self.error,
            trace=self.trace,
            spans=self.spans.spans(self.trace) if self.trace is not None else [],
        )

    @handles(GetCharacter)
    def get(self, message: GetCharacter) -> CharacterStatus:
        return self.status()

    @handles(Achieve)
    def achieve(self, message: Achieve) -> None:
        reply = self.defer_reply()
        if self.task is not None:
            reply.fail(CharacterBusy(f"character {self.character!r} is {self.phase}"))
            return
        try:
            todo = todo_from_data(message.todo)
        except BadRequest as exc:
            reply.fail(exc)
            return
        self.executed = []
        self.replans = 0
        self.error = None
        self.trace = f"character.{self.character}.{next(self._runs)}"
        self.task = asyncio.get_running_loop().create_task(self._run(message, todo, reply))

    async def _run(self, message: Achieve, todo: list[Any], reply: DeferredReply) -> None:
        try:
            await self._act(message, todo)
        except (AriaError, ValueError) as exc:  # planning failures, bad requests
            self.phase = "failed"
            self.error = f"{type(exc).__name__}: {exc}"
            reply.fail(exc)
        except Exception as exc:  # a bug: fail the call, then crash and restart clean
            reply.fail(exc)
            self.stop(ExitReason.from_exception(exc))
        else:
            self.phase = "done"
            reply.reply(self.status())
        finally:
            self.task = None

    async def _act(self, message: Achieve, todo: list[Any]) -> None:
        """Act ``todo`` with :class:`Acting`; its errors as the planner's (see the module)."""
        assert self.trace is not None
        plans = 0

        async def plan(state: State, todo: Sequence[Any]) -> Plan:
            nonlocal plans
            self.replans = plans
            plans += 1
            self.phase = "planning"
            return await self._plan(message, state)

        async def observe() -> State:
            return self.state

        acting = Acting(
            self.domain,
            None,
            observe,
            todo,
            self._command,
            plan=plan,
            max_replans=self.settings.act_max_replans,
            command_timeout=None,  # commands run on this loop: a timeout cannot stop them
            spans=SpanRecorder(self.trace, self.spans, keep=SPAN_CAPACITY),
        )
        try:
            result = await acting.run()
        except NoPlan as exc:  # what the planner pool raised, as a PlanRequest would
            cause = exc.__cause__
            if isinstance(cause, EngineError):
                raise cause from None
            raise
        except ReplanLimitExceeded as exc:
            raise PlanningFailed(
                f"character {self.character!r}: the world kept diverging from the plan "
                f"after {exc.replans} replans: {exc}"
            ) from exc
        self.state = result.state
        self.replans = result.replans

    async def _plan(self, message: Achieve, state: State) -> Plan:
        """A plan from ``state``, by the planner pool (cancelled there if we are)."""
        planner = self.node.whereis(PLANNER_ACTOR)
        if planner is None:
            raise EngineError(f"{PLANNER_ACTOR} is not running")
        request = PlanRequest(
            domain=self.domain_name,
            state=state_to_data(state),
            todo=message.todo,
            strategy=message.strategy,
            max_expansions=message.max_expansions,
            timeout=message.timeout,
        )
        timeout = (message.timeout or self.settings.timeout) + CALL_MARGIN
        result: PlanResult = await planner.call(request, timeout=timeout)
        return Plan(
            actions=tuple(tuple(action) for action in result.actions),
            cost=result.cost,
            expansions=result.expansions,
            final_state=state_from_data(result.final_state, self.character),
            optimal=result.optimal,
        )

    async def _command(self, command: str, args: tuple[Any, ...], state: State) -> State | bool:
        """Run one domain command; the character's state follows what it observed."""
        self.phase = "acting"
        observed = await self.commands(command, args, state)
        if isinstance(observed, State):
            self.state = observed
            self.executed.append((command.removeprefix("c_"), *args))
        else:
            self.log.info("command_failed", command=command, args=args)
        return observed


class CharacterDirector(Actor):
    """``aria_engine.characters``: starts, stops and lists the character actors."""

    async def init(self, supervisor: str = CHARACTER_SUPERVISOR) -> None:
        ref = self.node.whereis(supervisor)
        if not isinstance(ref, SupervisorRef):
            raise ConfigError(
                f"{supervisor} is not a running supervisor; the characters start under it "
                "(see supervisors/aria_engine.toml)"
            )
        self.supervisor = ref

    @handles(StartCharacter)
    async def start(self, message: StartCharacter) -> None:
        reply = self.defer_reply()
        try:
            reply.reply(await self._start(message))
        except AriaError as exc:  # BadRequest, StartError (an unknown domain...)
            reply.fail(exc)

    async def _start(self, message: StartCharacter) -> CharacterStatus:
        name = character_actor_name(message.character)
        if not message.character or not message.character.isprintable():
            raise BadRequest(f"{message.character!r} is no character id")
        if self.node.whereis(name) is not None:
            raise BadRequest(f"character {message.character!r} is already running")
        state_from_data(message.state)
        spec = ChildSpec(
            id=f"character.{message.character}",
            start=CharacterActor,
            args={"character": message.character, "domain": message.domain,
                  "state": message.state},
            name=name,
            restart="permanent",
        )  # fmt: skip
        ref = await self.supervisor.start_child(spec)
        status: CharacterStatus = await ref.call(GetCharacter())
        return status

    @handles(StopCharacter)
    async def stop_character(self, message: StopCharacter) -> None:
        ref = self.node.whereis(character_actor_name(message.character))
        if ref is not None:
            await self.supervisor.terminate_child(ref)

    @handles(ListCharacters)
    def list_characters(self, message: ListCharacters) -> list[str]:
        prefix = character_actor_name("")
        return sorted(
            n.removeprefix(prefix) for n in self.node.registered() if n.startswith(prefix)
        )
