"""Characters: one acting actor per character, under a dynamic supervisor, stored in aria_data.

``aria_engine.characters`` (:class:`CharacterDirector`) creates, stops and lists the
characters. It applies the service's migrations (``sql/``, :mod:`.character_store`)
when it starts, then starts the actor of every stored character that is not running
(so a new node on the same database has every character back, and so do the
characters after their supervisor restarted). :class:`StartCharacter` checks the id,
the state and the domain (``BadRequest``, ``UnknownDomain``), stores the character
(``BadRequest`` if it is stored already) and starts its actor
(``aria_engine.character.<id>``, a :class:`CharacterActor`) under the
``aria_engine.character_sup`` dynamic supervisor (the row is deleted again if the actor
cannot start). :class:`StopCharacter` stops the actor and deletes the row.

A character actor is ``permanent`` and reads its row in ``init``: after a crash its
supervisor starts it again with the state, to-do list and last run's status as last
written. A run that was in progress when the actor stopped (a crash, the node stopping)
is ``failed`` afterwards, its ``error`` saying it was interrupted; its state is the
one after its last executed command. A row that cannot be used (undecodable or
malformed columns, a domain that is not loaded, a row deleted behind the actor's back)
does not crash anything: the actor starts *unusable*, logs the problem, counts it in
``aria_engine_character_load_errors_total`` and answers every request with
:class:`~.errors.CorruptCharacter` naming the character and the column; the row is
left as it is, but for its ``owner`` token (see :class:`~.errors.CorruptCharacter` for
the way out).

The actor holds its world state. :class:`Achieve` makes it act the to-do list with the
acting engine (:class:`~.acting.Acting`, lazy lookahead): plans come from
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

Write-through: the row is written when a run is accepted (its to-do list, trace id,
phase ``planning``), after every command that succeeded (the new state and what was
executed), and when the run ends (``done``/``failed``, error, replans). If the first
write fails, the run does not start and the call fails with aria_data's error. A
later write that fails is logged and counted (``aria_engine_character_save_errors``)
and the run goes on (every write is the whole row, so the next one catches up); if the
final write fails, the call fails with that error although the run ended. Each actor
instance claims the row when it starts (an ``owner`` token) and writes only while it
owns it, so a stale writer (another node running the same character, a write of a
killed actor's run still in flight) cannot overwrite what the restarted actor wrote. A
run is a task the actor owns (``start_task``): it is cancelled when the actor exits,
however it exits.

Every request is one trace of spans (see :mod:`.spans`: ``acting`` → ``plan`` /
``replan`` → the search's ``task``, ``method`` and ``action`` spans — the pool logs the
search and the spans are replayed here from its log — and executed ``command`` spans).
Each character keeps the newest :data:`SPAN_CAPACITY` spans in memory (never stored in
aria_data: a restarted actor has none) and hands every span to the service's export as
well (:mod:`.span_log`, JSON lines). A
:class:`~.messages.CharacterStatus` carries the last request's trace id, and its spans
only when :class:`~.messages.GetCharacter` or :class:`~.messages.Achieve` asked for
them (``spans=True``): the newest ``max_spans`` (at most
:data:`~.messages.MAX_REPLY_SPANS`) and how many were left out.

Commands are domain functions run on the actor's loop: they must be quick (a long
command belongs in its own actor or a worker).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any, Final

from ..._runtime.actor import Actor, DeferredReply, handles
from ..._runtime.errors import AriaError, ConfigError
from ..._runtime.messages import ExitReason
from ..._runtime.node import Node
from ..._runtime.specs import ChildSpec
from ..._runtime.supervisor_api import SupervisorRef
from ..data.client import Data
from .acting import Acting, DomainCommandExecutor
from .acting_errors import NoPlan, ReplanLimitExceeded
from .character_store import MIGRATIONS, CharacterStore, StoredCharacter
from .domain import Domain
from .errors import CorruptCharacter, EngineError, PlanningFailed
from .messages import (
    MAX_REPLY_SPANS,
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
from .metrics import EngineMetrics
from .planner import Plan
from .settings import SERVICE, load_settings
from .span_log import span_log_sink
from .spans import MemorySpanSink, SpanRecorder, SpanSink, TeeSpanSink
from .state import State
from .wire import (
    BadRequest,
    UnknownDomain,
    state_from_data,
    state_to_data,
    todo_from_data,
    todo_to_data,
)

__all__ = [
    "CHARACTER_SUPERVISOR",
    "INTERRUPTED",
    "SPAN_CAPACITY",
    "CharacterActor",
    "CharacterBusy",
    "CharacterDirector",
    "character_actor_name",
    "check_span_request",
]

CHARACTER_SUPERVISOR: Final = "aria_engine.character_sup"
DOMAINS_ACTOR: Final = "aria_engine.domains"
PLANNER_ACTOR: Final = "aria_engine.planner"
CALL_MARGIN: Final = 10.0
"""Seconds a character waits for the planner beyond the search's own timeout."""
SPAN_CAPACITY: Final = 2_000
"""Spans a character keeps (its newest requests'); older ones are evicted."""
INTERRUPTED: Final = (
    "interrupted: the character's actor stopped during the run (its state is the one "
    "after its last executed command)"
)
"""The ``error`` of a run that a crash or a stop cut short."""


class CharacterBusy(EngineError):
    """The character is already planning or acting a request."""


def character_actor_name(character: str) -> str:
    """The registered name of ``character``'s actor."""
    return f"aria_engine.character.{character}"


def running_characters(node: Node) -> int:
    """How many character actors run on ``node``."""
    prefix = character_actor_name("")
    return sum(1 for name in node.registered() if name.startswith(prefix))


def check_span_request(max_spans: int) -> None:
    """Check a request's bound on the spans of its reply (checked even when the request
    asks for no spans, so a bad value never goes unnoticed).

    Raises:
        BadRequest: ``max_spans`` is not 1..:data:`~.messages.MAX_REPLY_SPANS`.
    """
    if not 1 <= max_spans <= MAX_REPLY_SPANS:
        raise BadRequest(f"max_spans must be 1..{MAX_REPLY_SPANS}, not {max_spans}")


async def domain_of(node: Node, name: str) -> Domain:
    """The loaded domain ``name``, from ``aria_engine.domains``.

    Raises:
        UnknownDomain: no such domain is loaded.
        ConfigError: the domain registry is not running.
    """
    registry = node.whereis(DOMAINS_ACTOR)
    if registry is None:
        raise ConfigError(f"{DOMAINS_ACTOR} is not running")
    domain: Domain = await registry.call(GetDomain(name))
    return domain


class CharacterActor(Actor):
    """``aria_engine.character.<id>``; see the module documentation.

    Invariant: when ``unusable`` is set, only ``settings``, ``metrics``, ``character``,
    ``store``, ``owner``, ``task`` (``None``) and ``spans`` are; every request fails
    with it, and nothing of the row but the ``owner`` token it claimed is written.
    """

    domain: Domain
    domain_name: str
    commands: DomainCommandExecutor
    state: State
    todo: list[Any]
    phase: CharacterPhase
    executed: list[tuple[Any, ...]]
    replans: int
    error: str | None
    trace: str | None
    runs: int
    created_at: float

    async def init(self, character: str) -> None:
        self.settings = load_settings(self.node.service_settings(SERVICE))
        self.metrics = EngineMetrics(self.node)
        self.character = character
        self.store = CharacterStore(Data(self.node).database())
        self.unusable: CorruptCharacter | None = None
        self.terminating = False
        self.task: asyncio.Task[None] | None = None
        self.spans = MemorySpanSink(SPAN_CAPACITY)
        self.owner = f"{self.node.name}/{uuid.uuid4().hex}"
        try:
            if not await self.store.claim(character, self.owner):
                raise CorruptCharacter(character, "it has no row (deleted while it ran?)")
            record = await self.store.load(character)
            if record is None:
                raise CorruptCharacter(character, "its row was deleted as it started")
            try:
                self.domain = await domain_of(self.node, record.domain)
            except UnknownDomain as exc:
                raise CorruptCharacter(character, f"domain: {exc}") from None
        except CorruptCharacter as exc:
            self.unusable = exc
            self.metrics.load_errors.inc()
            self.log.error("character_unusable", character=character, problem=exc.problem)
            return
        self._restore(record)
        if record.phase in ("planning", "acting"):
            self.phase = "failed"
            self.error = INTERRUPTED
            await self._save()  # a failure here fails the start: the supervisor retries

    def _restore(self, record: StoredCharacter) -> None:
        self.domain_name = record.domain
        self.commands = DomainCommandExecutor(self.domain)
        self.state = state_from_data(record.state, self.character)
        self.todo = list(record.todo)
        self.phase = record.phase
        self.executed = list(record.executed)
        self.replans = record.replans
        self.error = record.error
        self.trace = record.trace
        self.runs = record.runs
        self.created_at = record.created_at

    async def terminate(self, reason: ExitReason) -> None:
        task = self.task
        if task is None:
            return
        self.terminating = True  # exiting, not yet exited: the last save may still run
        task.cancel()
        await asyncio.wait({task})
        self.phase = "failed"
        self.error = INTERRUPTED
        await self._save_quietly()

    def _span_sink(self) -> SpanSink:
        """The character's memory of spans, and the service's export when it is on."""
        export = span_log_sink(self.node)
        return self.spans if export is None else TeeSpanSink(self.spans, export)

    # -- storage -----------------------------------------------------------------------------

    def _record(self) -> StoredCharacter:
        return StoredCharacter(
            character=self.character,
            domain=self.domain_name,
            state=state_to_data(self.state),
            todo=self.todo,
            phase=self.phase,
            executed=self.executed,
            replans=self.replans,
            error=self.error,
            trace=self.trace,
            runs=self.runs,
            created_at=self.created_at,
            updated_at=time.time(),
        )

    async def _save(self) -> None:
        """Write the whole character over its row (errors propagate).

        Raises:
            asyncio.CancelledError: the actor is exiting, outside ``terminate`` (a run
                killed along with its actor writes nothing more, even before its
                cancellation arrives).
        """
        if not self.ref.is_alive() and not self.terminating:
            raise asyncio.CancelledError(f"{self.ref!r} has exited")
        await self.store.save(self._record(), self.owner)

    async def _save_quietly(self) -> AriaError | None:
        """Write the character; a failure is logged, counted and returned, not raised."""
        try:
            await self._save()
        except AriaError as exc:  # DatabaseError, the row gone, state not data
            self.metrics.save_errors.inc()
            self.log.warning("character_not_saved", character=self.character, error=str(exc))
            return exc
        return None

    # -- requests ----------------------------------------------------------------------------

    def status(self, spans: bool = False, max_spans: int = MAX_REPLY_SPANS) -> CharacterStatus:
        """The character now; the last run's newest ``max_spans`` spans if ``spans``."""
        held = self.spans.spans(self.trace) if spans and self.trace is not None else []
        kept = held[-max_spans:] if held else []
        return CharacterStatus(
            character=self.character,
            domain=self.domain_name,
            phase=self.phase,
            state=state_to_data(self.state),
            todo=list(self.todo),
            executed=list(self.executed),
            replans=self.replans,
            error=self.error,
            trace=self.trace,
            spans=kept,
            spans_omitted=len(held) - len(kept),
        )

    @handles(GetCharacter)
    def get(self, message: GetCharacter) -> None:
        reply = self.defer_reply()
        if self.unusable is not None:
            reply.fail(self.unusable)
            return
        try:
            check_span_request(message.max_spans)
        except BadRequest as exc:
            reply.fail(exc)
            return
        reply.reply(self.status(message.spans, message.max_spans))

    @handles(Achieve)
    def achieve(self, message: Achieve) -> None:
        reply = self.defer_reply()
        if self.unusable is not None:
            reply.fail(self.unusable)
            return
        if self.task is not None:
            reply.fail(CharacterBusy(f"character {self.character!r} is {self.phase}"))
            return
        try:
            check_span_request(message.max_spans)
            todo = todo_from_data(message.todo)
        except BadRequest as exc:
            reply.fail(exc)
            return
        self.runs += 1
        self.todo = todo_to_data(todo)
        self.executed = []
        self.replans = 0
        self.error = None
        self.phase = "planning"
        self.trace = f"character.{self.character}.{self.runs}"
        self.task = self.start_task(self._run(message, todo, reply), name=f"run {self.trace}")

    async def _run(self, message: Achieve, todo: list[Any], reply: DeferredReply) -> None:
        try:
            not_saved = await self._save_quietly()  # the run is accepted: store it first
            if not_saved is not None:
                self.phase = "failed"
                self.error = f"not started, the character could not be saved: {not_saved}"
                reply.fail(not_saved)
                return
            failure: BaseException | None = None
            try:
                await self._act(message, todo)
            except (AriaError, ValueError) as exc:  # planning failures, bad requests
                self.phase = "failed"
                self.error = f"{type(exc).__name__}: {exc}"
                failure = exc
            except Exception as exc:  # a bug: fail the call, then crash and restart clean
                reply.fail(exc)
                self.stop(ExitReason.from_exception(exc))
                return
            else:
                self.phase = "done"
            self.metrics.acting_runs.labels(outcome=self.phase).inc()
            not_saved = await self._save_quietly()
            if failure is not None:
                reply.fail(failure)
            elif not_saved is not None:
                reply.fail(not_saved)
            else:
                reply.reply(self.status(message.spans, message.max_spans))
        finally:
            self.task = None

    async def _act(self, message: Achieve, todo: list[Any]) -> None:
        """Act ``todo`` with :class:`Acting`; its errors as the planner's (see the module)."""
        assert self.trace is not None
        plans = 0

        async def plan(state: State, todo: Sequence[Any]) -> Plan:
            nonlocal plans
            self.replans = plans
            if plans:
                self.metrics.replans.inc()
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
            spans=SpanRecorder(self.trace, self._span_sink(), keep=SPAN_CAPACITY),
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
            trace=True,  # the search's spans come back with the plan
        )
        timeout = (message.timeout or self.settings.timeout) + CALL_MARGIN
        result: PlanResult = await planner.call(request, timeout=timeout)
        return Plan(
            actions=tuple(tuple(action) for action in result.actions),
            cost=result.cost,
            expansions=result.expansions,
            final_state=state_from_data(result.final_state, self.character),
            optimal=result.optimal,
            search=result.search,
        )

    async def _command(self, command: str, args: tuple[Any, ...], state: State) -> State | bool:
        """Run one domain command; the character's state follows what it observed, and
        is written through when the command succeeded."""
        self.phase = "acting"
        try:
            observed = await self.commands(command, args, state)
        except Exception:
            self.metrics.commands.labels(outcome="failed").inc()
            raise
        if isinstance(observed, State):
            self.metrics.commands.labels(outcome="ok").inc()
            self.state = observed
            self.executed.append((command.removeprefix("c_"), *args))
            await self._save_quietly()
        else:
            self.metrics.commands.labels(outcome="failed").inc()
            self.log.info("command_failed", command=command, args=args)
        return observed


def character_spec(character: str) -> ChildSpec:
    """The child spec of ``character``'s actor (it reads everything else from its row)."""
    return ChildSpec(
        id=f"character.{character}",
        start=CharacterActor,
        args={"character": character},
        name=character_actor_name(character),
        restart="permanent",
    )


class CharacterDirector(Actor):
    """``aria_engine.characters``: creates, restores, stops and lists the characters."""

    async def init(self, supervisor: str = CHARACTER_SUPERVISOR) -> None:
        ref = self.node.whereis(supervisor)
        if not isinstance(ref, SupervisorRef):
            raise ConfigError(
                f"{supervisor} is not a running supervisor; the characters start under it "
                "(see supervisors/aria_engine.toml)"
            )
        self.supervisor = ref
        node = self.node
        EngineMetrics(node).count_characters(lambda: running_characters(node))
        data = Data(node)
        await data.migrate(SERVICE, MIGRATIONS)
        self.store = CharacterStore(data.database())
        await self._restore()

    async def _restore(self) -> None:
        """Start the actor of every stored character that is not running."""
        started = []
        for character in await self.store.ids():
            if self.node.whereis(character_actor_name(character)) is None:
                await self.supervisor.start_child(character_spec(character))
                started.append(character)
        if started:
            self.log.info("characters_restored", characters=started)

    @handles(StartCharacter)
    async def start(self, message: StartCharacter) -> None:
        reply = self.defer_reply()
        try:
            reply.reply(await self._start(message))
        except AriaError as exc:  # BadRequest, UnknownDomain, StartError, DatabaseError
            reply.fail(exc)

    async def _start(self, message: StartCharacter) -> CharacterStatus:
        character = message.character
        if not character or not character.isprintable():
            raise BadRequest(f"{character!r} is no character id")
        if self.node.whereis(character_actor_name(character)) is not None:
            raise BadRequest(f"character {character!r} is already running")
        state = state_to_data(state_from_data(message.state, character))
        await domain_of(self.node, message.domain)
        now = time.time()
        record = StoredCharacter(
            character=character, domain=message.domain, state=state, todo=[], phase="idle",
            executed=[], replans=0, error=None, trace=None, runs=0, created_at=now,
            updated_at=now,
        )  # fmt: skip
        if not await self.store.create(record):
            raise BadRequest(
                f"character {character!r} is already stored, but its actor is not running "
                "here (another node on this database runs it, or it could not start): "
                "StopCharacter deletes it"
            )
        try:
            ref = await self.supervisor.start_child(character_spec(character))
        except Exception:
            await self.store.delete(character)  # ours, just created: nothing else lost
            raise
        status: CharacterStatus = await ref.call(GetCharacter())
        return status

    @handles(StopCharacter)
    async def stop_character(self, message: StopCharacter) -> None:
        reply = self.defer_reply()
        try:
            ref = self.node.whereis(character_actor_name(message.character))
            if ref is not None:
                await self.supervisor.terminate_child(ref)
            deleted = await self.store.delete(message.character)
        except AriaError as exc:  # DatabaseError
            reply.fail(exc)
            return
        if ref is not None or deleted:
            self.log.info("character_stopped", character=message.character, deleted=deleted)
        reply.reply(None)

    @handles(ListCharacters)
    def list_characters(self, message: ListCharacters) -> list[str]:
        prefix = character_actor_name("")
        return sorted(
            n.removeprefix(prefix) for n in self.node.registered() if n.startswith(prefix)
        )
