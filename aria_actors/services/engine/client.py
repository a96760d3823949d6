"""How other services and apps use aria_engine: ``Engine(node)``.

::

    engine = Engine(node)
    plan = await engine.plan("blocks", state, [("pos", "a", "table")])
    plan.actions                    # [("unstack", "a", "b"), ("putdown", "a")]
    await engine.domains()          # [DomainInfo(name="blocks", ...), ...]

    await engine.start_character("hero", "character", character.new_character("hero", "mage"))
    status = await engine.achieve("hero", [("published", "hero", True)])
    status = await engine.character("hero", spans=True)   # with the last run's spans

Characters are stored in aria_data (see :mod:`.character_actor`): their state and last
run survive a crash of their actor and a restart of the node, until
:meth:`Engine.stop_character` deletes them.

States may be given as :class:`~.state.State` objects or as wire data, to-do lists
with tuples and :class:`~.state.Multigoal` objects (see :mod:`.wire`). Every call has
a deadline: a plan's is its search ``timeout`` (the service's default when not
given) plus :data:`CALL_MARGIN`; when a call times out or the calling task is
cancelled, the search stops and its worker is free again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

from ..._runtime.errors import NoProcess
from ..._runtime.node import Node
from ..._runtime.ref import ActorRef
from .character_actor import character_actor_name
from .messages import (
    MAX_REPLY_SPANS,
    Achieve,
    CharacterStatus,
    DescribeDomain,
    DomainInfo,
    GetCharacter,
    ListCharacters,
    ListDomains,
    PlanRequest,
    PlanResult,
    PoolStats,
    PoolStatus,
    StartCharacter,
    StopCharacter,
)
from .settings import SERVICE, load_settings
from .state import State
from .wire import state_to_data, todo_to_data

__all__ = ["CALL_MARGIN", "Engine"]

PLANNER: Final = "aria_engine.planner"
DOMAINS: Final = "aria_engine.domains"
CHARACTERS: Final = "aria_engine.characters"
TIMEOUT: Final = 10.0
CALL_MARGIN: Final = 10.0
"""Seconds a call waits beyond the search timeout (the pool may be busy)."""

StateLike = State | Mapping[str, Any]


def _state(state: StateLike) -> Any:
    """Wire data for ``state`` (anything else goes as it is: the service says what is wrong)."""
    if isinstance(state, State):
        return state_to_data(state)
    return dict(state) if isinstance(state, Mapping) else state


class Engine:
    """A handle on aria_engine (cheap to make)."""

    def __init__(self, node: Node, timeout: float = TIMEOUT) -> None:
        self.node = node
        self.timeout = timeout

    def _ref(self, name: str) -> ActorRef:
        ref = self.node.whereis(name)
        if ref is None:
            raise NoProcess(name, "is the aria_engine service running?")
        return ref

    def _search_timeout(self, timeout: float | None) -> float:
        if timeout is not None:
            return timeout
        return load_settings(self.node.service_settings(SERVICE)).timeout

    # -- planning ------------------------------------------------------------------------

    async def plan(
        self,
        domain: str,
        state: StateLike,
        todo: Sequence[Any],
        *,
        strategy: str | None = None,
        max_expansions: int | None = None,
        timeout: float | None = None,
        verify_goals: bool = True,
        cost_bound: float | None = None,
        call_timeout: float | None = None,
    ) -> PlanResult:
        """A plan for ``todo`` from ``state`` in ``domain``.

        ``timeout`` bounds the search (capped by the service's); ``call_timeout`` the
        whole call (default: the search timeout plus :data:`CALL_MARGIN`).

        Raises:
            UnknownDomain, BadRequest: the domain is not loaded; malformed state,
                to-do list or options.
            PlanningFailed: no plan exists.
            BudgetExceeded: the expansion budget or the search timeout ran out.
            DomainError: the domain's code failed on this problem.
            EngineBusy: the pool has ``pool_size + max_waiting`` requests already.
            CallTimeout: no answer within ``call_timeout`` (the search is cancelled).
            NoProcess: aria_engine is not running.
        """
        request = PlanRequest(
            domain=domain,
            state=_state(state),
            todo=todo_to_data(todo),
            strategy=strategy,
            max_expansions=max_expansions,
            timeout=timeout,
            verify_goals=verify_goals,
            cost_bound=cost_bound,
        )
        if call_timeout is None:
            call_timeout = self._search_timeout(timeout) + CALL_MARGIN
        return cast(PlanResult, await self._ref(PLANNER).call(request, timeout=call_timeout))

    async def pool_stats(self) -> PoolStats:
        """The planner pool's :class:`PoolStats`."""
        return cast(PoolStats, await self._ref(PLANNER).call(PoolStatus(), timeout=self.timeout))

    # -- domains -------------------------------------------------------------------------

    async def domains(self) -> list[DomainInfo]:
        """Every loaded domain."""
        return cast(
            list[DomainInfo], await self._ref(DOMAINS).call(ListDomains(), timeout=self.timeout)
        )

    async def describe(self, domain: str) -> DomainInfo:
        """One domain's declarations.

        Raises:
            UnknownDomain: no such domain.
        """
        ref = self._ref(DOMAINS)
        return cast(DomainInfo, await ref.call(DescribeDomain(domain), timeout=self.timeout))

    # -- characters ----------------------------------------------------------------------

    async def start_character(
        self, character: str, domain: str, state: StateLike
    ) -> CharacterStatus:
        """Create ``character`` in ``domain`` with its world ``state``: store it in
        aria_data and start its acting actor.

        Raises:
            UnknownDomain: no such domain is loaded.
            BadRequest: it runs (or is stored) already, or the state is malformed.
            StartError: its actor could not start (nothing stays stored).
            DatabaseError: aria_data failed.
        """
        message = StartCharacter(character=character, domain=domain, state=_state(state))
        ref = self._ref(CHARACTERS)
        return cast(CharacterStatus, await ref.call(message, timeout=self.timeout))

    async def stop_character(self, character: str) -> None:
        """Stop ``character``'s actor and delete it from aria_data (nothing happens if
        there is no such character).

        Raises:
            DatabaseError: aria_data failed (the actor is stopped, the row may remain).
        """
        await self._ref(CHARACTERS).call(StopCharacter(character), timeout=self.timeout)

    async def characters(self) -> list[str]:
        """The characters whose actors run (every stored one once the service is up)."""
        ref = self._ref(CHARACTERS)
        return cast(list[str], await ref.call(ListCharacters(), timeout=self.timeout))

    async def character(
        self, character: str, *, spans: bool = False, max_spans: int = MAX_REPLY_SPANS
    ) -> CharacterStatus:
        """``character``'s status and world state; with ``spans``, also the newest
        ``max_spans`` spans of its last run (``spans_omitted``: how many more it holds).

        Raises:
            NoProcess: no such character is running.
            CorruptCharacter: its stored row cannot be used (the message says why).
            BadRequest: ``max_spans`` is not 1..:data:`~.messages.MAX_REPLY_SPANS`.
        """
        ref = self._ref(character_actor_name(character))
        message = GetCharacter(spans=spans, max_spans=max_spans)
        return cast(CharacterStatus, await ref.call(message, timeout=self.timeout))

    async def achieve(
        self,
        character: str,
        todo: Sequence[Any],
        *,
        strategy: str | None = None,
        max_expansions: int | None = None,
        timeout: float | None = None,
        call_timeout: float | None = None,
        spans: bool = False,
        max_spans: int = MAX_REPLY_SPANS,
    ) -> CharacterStatus:
        """Make ``character`` plan ``todo`` and act it; its status afterwards (with the
        run's spans when ``spans``, as :meth:`character`).

        Raises:
            as :meth:`plan`; CharacterBusy: it is already working on a request;
            PlanningFailed: also when it had to replan too often;
            CorruptCharacter: its stored row cannot be used;
            DatabaseError: its state could not be saved (the run did not start, or
            it ended but its result was not written).
        """
        message = Achieve(
            todo=todo_to_data(todo), strategy=strategy, max_expansions=max_expansions,
            timeout=timeout, spans=spans, max_spans=max_spans,
        )  # fmt: skip
        if call_timeout is None:
            call_timeout = 2 * (self._search_timeout(timeout) + CALL_MARGIN)
        ref = self._ref(character_actor_name(character))
        return cast(CharacterStatus, await ref.call(message, timeout=call_timeout))
