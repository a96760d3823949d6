"""Coordinating several characters' plans over shared resources (objects, places).

Each character has a plan (a sequence of action tuples); step ``t`` of every plan happens
at the same time. A per-domain function ``resources(action) -> iterable of (resource,
kind)`` says what an action occupies during its step — e.g. ``("key1", "object")`` for
picking up a key, ``("door", "place")`` for moving into the doorway. Two characters
**conflict** when their actions at the same step claim the same ``(resource, kind)``
(:func:`detect_conflicts`).

Policy (:func:`coordinate`), deterministic for the same input:

1. **Priority.** Characters are ranked by ``priority`` (first is highest); by default,
   by name. Ties cannot happen: the rank is a total order.
2. **Ordering** (:func:`order_by_priority`). Time advances one step at a time; at each
   step the characters, highest first, each try their next action: it is taken if none
   of its claims was made at this step by a higher-ranked character, otherwise the
   character waits (:data:`WAIT`, a no-op claiming nothing) and tries again at the next
   step. Each plan keeps its order; the highest-ranked character never waits, so
   every step someone advances and the schedule is finite (at most the sum of the
   plans' lengths). The result has no same-step conflict.
3. **Checking** (when a ``world`` — domain and shared state — is given). The schedule is
   simulated on a copy of the shared state, step by step, characters in rank order,
   with the domain's action models. Ordering cannot fix everything: when one character
   consumes an object another planned to use at a *later* step, an action of the
   schedule no longer applies.
4. **Replanning.** The broken action's claims are traced to the character that last
   used one of them before (the *culprit*); the lower-ranked of the two is replanned
   with ``replan(character, claims)``, ``claims`` being every ``(resource, kind)`` the
   other characters' plans use (the replanner decides which kinds constrain it — see
   :func:`planner_replanner`). Then back to 2. Each character is replanned at most
   ``max_replans`` times; past that, or when the replanner finds no plan,
   :class:`~.acting_errors.CoordinationFailed` names the character, step and action.

Limit: a waiting character claims nothing (it stays where it is); domains where
standing in a place must block others should make the *previous* action's claims
cover it, or encode occupancy in the state so that the check in 3. catches it.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from .acting_errors import CoordinationFailed
from .domain import Domain
from .errors import BudgetExceeded, PlanningFailed
from .planner import Planner
from .state import State

__all__ = [
    "WAIT",
    "Claim",
    "Conflict",
    "Replanner",
    "ResourceFunction",
    "Schedule",
    "coordinate",
    "detect_conflicts",
    "order_by_priority",
    "planner_replanner",
]

Action: TypeAlias = tuple[Any, ...]
Claim: TypeAlias = tuple[Hashable, str]
"""``(resource, kind)``: what an action occupies during its step (kind: "object", "place"...)."""
ResourceFunction: TypeAlias = Callable[[Action], Iterable[Claim]]
Replanner: TypeAlias = Callable[[str, frozenset[Claim]], Sequence[Action] | None]
"""``replan(character, claims)``: a new plan avoiding ``claims``, or ``None``."""

WAIT: Action = ("wait",)
"""The no-op inserted to delay a character by one step (claims nothing)."""


@dataclass(frozen=True)
class Conflict:
    """Two characters claim ``(resource, kind)`` at the same ``step`` (ranked order)."""

    step: int
    resource: Hashable
    kind: str
    characters: tuple[str, str]
    actions: tuple[Action, Action]


@dataclass(frozen=True)
class Schedule:
    """A conflict-free joint schedule.

    ``timelines[c][t]`` is character ``c``'s action at step ``t`` (:data:`WAIT` when
    delayed); ``priority`` is the rank order used; ``conflicts`` are the conflicts of
    the plans as given; ``replanned`` the characters replanned, in order; ``plans`` the
    plans finally scheduled (without waits).
    """

    timelines: dict[str, tuple[Action, ...]]
    priority: tuple[str, ...]
    conflicts: tuple[Conflict, ...]
    replanned: tuple[str, ...] = ()
    plans: dict[str, tuple[Action, ...]] = field(default_factory=dict)

    @property
    def length(self) -> int:
        """The number of steps until every character is done."""
        return max((len(t) for t in self.timelines.values()), default=0)

    def waits(self, character: str) -> int:
        """How many steps ``character`` was delayed."""
        return sum(1 for a in self.timelines[character] if a == WAIT)

    def steps(self) -> list[list[tuple[str, Action]]]:
        """Per step, the ``(character, action)`` pairs that act, in rank order (no waits)."""
        return [
            [
                (c, self.timelines[c][t])
                for c in self.priority
                if t < len(self.timelines[c]) and self.timelines[c][t] != WAIT
            ]
            for t in range(self.length)
        ]


def _rank(plans: Mapping[str, Sequence[Action]], priority: Sequence[str] | None) -> tuple[str, ...]:
    if priority is None:
        return tuple(sorted(plans))
    ranked = tuple(dict.fromkeys(priority))
    missing = sorted(set(plans) - set(ranked))
    if missing:
        raise ValueError(f"priority does not rank character(s) {', '.join(missing)}")
    return tuple(c for c in ranked if c in plans)


def detect_conflicts(
    timelines: Mapping[str, Sequence[Action]],
    resources: ResourceFunction,
    priority: Sequence[str] | None = None,
) -> list[Conflict]:
    """Every same-step conflict, by step, then rank pair, then claim (deterministic).

    :data:`WAIT` claims nothing. ``priority`` orders each pair (default: by name).
    """
    ranked = _rank(timelines, priority)
    length = max((len(p) for p in timelines.values()), default=0)
    out: list[Conflict] = []
    for t in range(length):
        acting = [
            (c, timelines[c][t])
            for c in ranked
            if t < len(timelines[c]) and timelines[c][t] != WAIT
        ]
        claims = {c: set(resources(a)) for c, a in acting}
        for i, (a, action_a) in enumerate(acting):
            for b, action_b in acting[i + 1 :]:
                for resource, kind in sorted(claims[a] & claims[b], key=repr):
                    out.append(Conflict(t, resource, kind, (a, b), (action_a, action_b)))
    return out


def order_by_priority(
    plans: Mapping[str, Sequence[Action]],
    resources: ResourceFunction,
    priority: Sequence[str] | None = None,
) -> dict[str, tuple[Action, ...]]:
    """Delay lower-ranked characters (with :data:`WAIT`) until no step has a conflict.

    See step 2 of the module docstring. Each timeline, without its waits, is its plan.
    """
    ranked = _rank(plans, priority)
    nxt = dict.fromkeys(ranked, 0)
    timelines: dict[str, list[Action]] = {c: [] for c in ranked}
    while any(nxt[c] < len(plans[c]) for c in ranked):
        claimed: set[Claim] = set()
        for c in ranked:
            if nxt[c] >= len(plans[c]):
                continue
            action = tuple(plans[c][nxt[c]])
            claims = set(resources(action))
            if claims & claimed:
                timelines[c].append(WAIT)
            else:
                timelines[c].append(action)
                claimed |= claims
                nxt[c] += 1
    return {c: tuple(t) for c, t in timelines.items()}


@dataclass(frozen=True)
class _Break:
    step: int
    character: str
    action: Action
    culprit: str | None


def _simulate(
    domain: Domain,
    state: State,
    timelines: Mapping[str, Sequence[Action]],
    ranked: Sequence[str],
    resources: ResourceFunction,
) -> _Break | None:
    """Run the schedule on a copy of ``state``; the first action that does not apply."""
    current = state.copy()
    last_user: dict[Claim, str] = {}
    length = max((len(t) for t in timelines.values()), default=0)
    for t in range(length):
        for c in ranked:
            line = timelines[c]
            if t >= len(line) or line[t] == WAIT:
                continue
            action = line[t]
            claims = sorted(set(resources(action)), key=repr)
            model = domain.actions.get(action[0])
            new = model(current.copy(), *action[1:]) if model is not None else None
            if not isinstance(new, State):
                culprits = [last_user[k] for k in claims if last_user.get(k, c) != c]
                return _Break(t, c, action, culprits[0] if culprits else None)
            current = new
            for k in claims:
                last_user[k] = c
    return None


def coordinate(
    plans: Mapping[str, Sequence[Action]],
    resources: ResourceFunction,
    *,
    priority: Sequence[str] | None = None,
    world: tuple[Domain, State] | None = None,
    replan: Replanner | None = None,
    max_replans: int = 1,
) -> Schedule:
    """A conflict-free schedule for ``plans`` (see the module docstring for the policy).

    Without ``world`` only same-step conflicts are resolved (by ordering). With it, the
    schedule is also checked by simulation and broken plans are replanned through
    ``replan`` (each character at most ``max_replans`` times).

    Raises:
        CoordinationFailed: a plan breaks and cannot be replanned (no ``replan``, no
            replans left for that character, or the replanner found no plan).
        ValueError: ``priority`` leaves a character out.
    """
    ranked = _rank(plans, priority)
    current = {c: tuple(tuple(a) for a in plans[c]) for c in ranked}
    conflicts = tuple(detect_conflicts(current, resources, ranked))
    replans: collections.Counter[str] = collections.Counter()
    replanned: list[str] = []
    while True:
        timelines = order_by_priority(current, resources, ranked)
        broken = None if world is None else _simulate(*world, timelines, ranked, resources)
        if broken is None:
            return Schedule(timelines, ranked, conflicts, tuple(replanned), dict(current))
        victim = broken.character
        if broken.culprit is not None and ranked.index(broken.culprit) > ranked.index(victim):
            victim = broken.culprit
        where = (
            f"{broken.character}'s {broken.action!r} at step {broken.step} no longer applies"
            + (f" after {broken.culprit} used its resources" if broken.culprit else "")
        )
        if replan is None or replans[victim] >= max_replans:
            raise CoordinationFailed(
                f"{where}; {victim} cannot be replanned "
                + ("(no replanner given)" if replan is None else f"(max_replans={max_replans})"),
                character=victim,
                step=broken.step,
                action=broken.action,
            )
        claims = frozenset(
            k for c in ranked if c != victim for a in current[c] for k in resources(a)
        )
        new_plan = replan(victim, claims)
        if new_plan is None:
            raise CoordinationFailed(
                f"{where}; no plan for {victim} avoids the others' claims "
                f"{sorted(claims, key=repr)}",
                character=victim,
                step=broken.step,
                action=broken.action,
            )
        replans[victim] += 1
        replanned.append(victim)
        current[victim] = tuple(tuple(a) for a in new_plan)


def planner_replanner(
    planner: Planner,
    state: State,
    todos: Mapping[str, Sequence[Any]],
    reserve: Callable[[State, str, frozenset[Claim]], None],
) -> Replanner:
    """A :data:`Replanner` planning ``todos[character]`` from ``state`` under claims.

    ``reserve(state_copy, character, claims)`` writes the claims the domain should
    respect into a copy of ``state`` (e.g. ``state.reserved = {objects}``, read by the
    domain's methods). The planner runs synchronously. ``PlanningFailed`` and
    ``BudgetExceeded`` mean "no plan" (``None``); other planner errors propagate.
    """

    def replan(character: str, claims: frozenset[Claim]) -> Sequence[Action] | None:
        constrained = state.copy()
        reserve(constrained, character, claims)
        try:
            return planner.find_plan(constrained, todos[character]).actions
        except (PlanningFailed, BudgetExceeded):
            return None

    return replan
