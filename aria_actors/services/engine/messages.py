"""aria_engine's messages: a tagged union of frozen structs (see :mod:`.wire` for data).

Planner pool (``aria_engine.planner``)::

    PlanRequest -> PlanResult       (or raises PlanningFailed, BudgetExceeded, Cancelled,
                                     DomainError, BadRequest, UnknownDomain, EngineBusy)
    PoolStatus  -> PoolStats

Domain registry (``aria_engine.domains``)::

    ListDomains    -> list[DomainInfo]
    DescribeDomain -> DomainInfo       (or raises UnknownDomain)
    GetDomain      -> Domain           (the object itself: local callers only)

Characters (``aria_engine.characters``, and one ``aria_engine.character.<id>`` each)::

    StartCharacter -> CharacterStatus  (stored in aria_data first; raises BadRequest,
                                        UnknownDomain)
    StopCharacter  -> None             (stops it and deletes its stored row)
    ListCharacters -> list[str]
    GetCharacter   -> CharacterStatus  (spans only when asked: ``spans=True``, at most
                                        ``max_spans``; raises CorruptCharacter)
    Achieve        -> CharacterStatus  (after planning and acting; raises as PlanRequest,
                                        CharacterBusy while it is already acting,
                                        CorruptCharacter)
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

from .spans import Span
from .wire import Goals

__all__ = [
    "MAX_REPLY_SPANS",
    "Achieve",
    "CharacterStatus",
    "DescribeDomain",
    "DomainInfo",
    "GetCharacter",
    "GetDomain",
    "Goals",
    "ListCharacters",
    "ListDomains",
    "PlanRequest",
    "PlanResult",
    "PoolStats",
    "PoolStatus",
    "StartCharacter",
    "StopCharacter",
]

MAX_REPLY_SPANS: Final = 1_000
"""The default and largest number of spans a :class:`CharacterStatus` carries."""


class PlanRequest(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """Find a plan for ``todo`` from ``state`` in ``domain``.

    ``strategy`` ``None``: the service's default. ``max_expansions`` and ``timeout``
    (seconds of search) default to the service's and are capped by them. ``trace``: log
    the search (every task, method choice and action tried) and send the log back in
    :attr:`PlanResult.search` (the search takes longer; a log of more than
    :data:`~.pool.SEARCH_EVENTS` events is not sent).
    """

    domain: str
    state: dict[str, Any]
    todo: list[Any]
    strategy: str | None = None
    max_expansions: int | None = None
    timeout: float | None = None
    verify_goals: bool = True
    cost_bound: float | None = None
    trace: bool = False


class PlanResult(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """A plan: its actions ``(name, *args)``, cost, statistics and predicted final state;
    ``search``: the search's log (:data:`~.planner_spans.SearchEvent` lists) when the
    request asked for ``trace`` and the log was not too long, else None."""

    domain: str
    strategy: str
    actions: list[tuple[Any, ...]]
    cost: float
    expansions: int
    optimal: bool
    final_state: dict[str, Any]
    search: list[list[Any]] | None = None


class PoolStatus(msgspec.Struct, frozen=True, tag=True):
    """Ask the planner pool for its :class:`PoolStats`."""


class PoolStats(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """The planner pool now, and counts since it started.

    Invariant: ``running <= size``; ``cancelled`` counts searches stopped because their
    caller gave up (timed out or was cancelled), before or while they ran.
    """

    kind: Literal["process", "thread"]
    size: int
    running: int
    waiting: int
    completed: int
    failed: int
    cancelled: int


class ListDomains(msgspec.Struct, frozen=True, tag=True):
    """List the loaded domains."""


class DescribeDomain(msgspec.Struct, frozen=True, tag=True):
    """Describe one domain."""

    name: str


class GetDomain(msgspec.Struct, frozen=True, tag=True):
    """The :class:`~.domain.Domain` object itself (for actors of this node)."""

    name: str


class DomainInfo(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """A domain's declarations: action costs (``None`` when computed from the state),
    commands, task and unigoal methods by name, multigoal methods, and GTPyhop's listing."""

    name: str
    actions: dict[str, float | None]
    commands: list[str]
    tasks: dict[str, list[str]]
    unigoals: dict[str, list[str]]
    multigoal_methods: list[str]
    text: str


class StartCharacter(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """Create ``character`` in ``domain`` with its world ``state``: store it in aria_data,
    then start its acting actor (which from then on writes its changes through)."""

    character: str
    domain: str
    state: dict[str, Any]


class StopCharacter(msgspec.Struct, frozen=True, tag=True):
    """Stop the acting actor of ``character`` and delete its stored row (the character
    is gone, also for the next node on the database)."""

    character: str


class ListCharacters(msgspec.Struct, frozen=True, tag=True):
    """The characters whose actors run (every stored one, once the service started)."""


class GetCharacter(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """A character's :class:`CharacterStatus` (sent to its own actor).

    The last run's spans come only with ``spans=True``: the newest ``max_spans``
    (1..:data:`MAX_REPLY_SPANS`; a value outside that is a ``BadRequest``), the
    number left out in ``spans_omitted``.
    """

    spans: bool = False
    max_spans: int = MAX_REPLY_SPANS


class Achieve(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """Plan ``todo`` from the character's state and act the plan, replanning when a
    command fails or the world does not turn out as predicted and the plan no longer
    applies.

    ``spans`` and ``max_spans`` choose whether the reply carries the run's spans, as
    for :class:`GetCharacter`.
    """

    todo: list[Any]
    strategy: str | None = None
    max_expansions: int | None = None
    timeout: float | None = None
    spans: bool = False
    max_spans: int = MAX_REPLY_SPANS


CharacterPhase = Literal["idle", "planning", "acting", "done", "failed"]


class CharacterStatus(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    """A character: its world state, what it is doing, what it did in its last request.

    ``todo`` is the to-do list of the current or last request, ``executed`` the
    commands carried out (as action tuples) in it, ``replans`` how often it had to plan
    again, ``error`` why it failed; all of these are stored and survive restarts (a
    run cut short by a restart is ``failed``, its error says so). ``trace`` is the last
    request's trace id; ``spans`` its spans (what acting did, see :mod:`.spans`), only
    when the request asked for them: the newest ``max_spans`` the character still holds
    in memory (none after a restart), ``spans_omitted`` how many more it holds.
    """

    character: str
    domain: str
    phase: CharacterPhase
    state: dict[str, Any]
    todo: list[Any] = msgspec.field(default_factory=list)
    executed: list[tuple[Any, ...]] = msgspec.field(default_factory=list)
    replans: int = 0
    error: str | None = None
    trace: str | None = None
    spans: list[Span] = msgspec.field(default_factory=list)
    spans_omitted: int = 0
