"""Characters: one acting actor per character, under a dynamic supervisor.

``aria_engine.characters`` (:class:`CharacterDirector`) starts and stops the actor of
each character (``aria_engine.character.<id>``, a :class:`CharacterActor`) under the
``aria_engine.character_sup`` dynamic supervisor, and lists them. A character actor is
``permanent``: when it crashes, the supervisor starts it again from the state it was
started with (state never survives a crash).

A character actor holds its world state. :class:`Achieve` plans from that state
through ``aria_engine.planner`` and then acts the plan here, one command at a time:
the command ``c_<action>`` (or the action itself when the domain declares no
command) runs on a copy of the state and returns the state it observed. When a
command fails (returns ``False``/``None``) or the world does not turn out as the
action predicted, the actor replans from where it is, at most ``act_max_replans``
times (GTPyhop's lazy lookahead, plus the check of the prediction).

Note: this is the minimal acting loop; ``acting.py`` (the acting engine with spans)
did not exist when it was written. Commands are domain functions run on the actor's
loop: they must be quick (a long command belongs in its own actor or a worker).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from ..._runtime.actor import Actor, DeferredReply, handles
from ..._runtime.errors import AriaError, ConfigError
from ..._runtime.messages import ExitReason
from ..._runtime.specs import ChildSpec
from ..._runtime.supervisor_api import SupervisorRef
from .domain import Domain
from .errors import DomainError, EngineError, PlanningFailed
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
from .settings import SERVICE, load_settings
from .state import State
from .wire import BadRequest, state_from_data, state_to_data, todo_from_data

__all__ = [
    "CHARACTER_SUPERVISOR",
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
        self.state: State = state_from_data(state, character)
        self.phase: CharacterPhase = "idle"
        self.executed: list[tuple[Any, ...]] = []
        self.replans = 0
        self.error: str | None = None
        self.task: asyncio.Task[None] | None = None

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
            todo_from_data(message.todo)
        except BadRequest as exc:
            reply.fail(exc)
            return
        self.executed = []
        self.replans = 0
        self.error = None
        self.task = asyncio.get_running_loop().create_task(self._run(message, reply))

    async def _run(self, message: Achieve, reply: DeferredReply) -> None:
        try:
            await self._plan_and_act(message)
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

    async def _plan(self, message: Achieve) -> PlanResult:
        planner = self.node.whereis(PLANNER_ACTOR)
        if planner is None:
            raise EngineError(f"{PLANNER_ACTOR} is not running")
        self.phase = "planning"
        request = PlanRequest(
            domain=self.domain_name,
            state=state_to_data(self.state),
            todo=message.todo,
            strategy=message.strategy,
            max_expansions=message.max_expansions,
            timeout=message.timeout,
        )
        timeout = (message.timeout or self.settings.timeout) + CALL_MARGIN
        result: PlanResult = await planner.call(request, timeout=timeout)
        return result

    async def _plan_and_act(self, message: Achieve) -> None:
        while True:
            plan = await self._plan(message)
            self.phase = "acting"
            if self._act(plan):
                return
            if self.replans >= self.settings.act_max_replans:
                raise PlanningFailed(
                    f"character {self.character!r}: the world kept diverging from the plan "
                    f"after {self.replans} replans"
                )
            self.replans += 1

    def _act(self, plan: PlanResult) -> bool:
        """Carry ``plan`` out; False when a command failed or surprised (replan)."""
        domain = self.domain
        for action in plan.actions:
            name, args = action[0], tuple(action[1:])
            if name not in domain.actions:
                raise DomainError(f"the plan names {name!r}, which {domain.name!r} lacks")
            predicted = domain.actions[name](self.state.copy(), *args)
            command = domain.commands.get(f"c_{name}", domain.actions[name])
            observed = command(self.state.copy(), *args)
            if not isinstance(observed, State):
                self.log.info("command_failed", command=name, args=args)
                return False
            self.state = observed
            self.executed.append(tuple(action))
            if not isinstance(predicted, State) or observed != predicted:
                self.log.info("world_diverged", command=name, args=args)
                return False
        return True


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
