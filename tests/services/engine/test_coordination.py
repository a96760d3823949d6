"""Coordinating characters: same-step conflicts resolved by ordering, or by replanning."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from aria_actors.services.engine import Planner, State
from aria_actors.services.engine.acting_errors import CoordinationFailed
from aria_actors.services.engine.coordination import (
    WAIT,
    Claim,
    coordinate,
    detect_conflicts,
    order_by_priority,
    planner_replanner,
)

from .acting_domain import edge, make_domain

Plan = list[tuple[Any, ...]]


def resources(action: tuple[Any, ...]) -> Iterable[Claim]:
    """Entering a place occupies it for the step; picking up or dropping uses the object."""
    name = action[0]
    if name == "move":
        return {(action[3], "place")}
    if name in ("pickup", "drop"):
        return {(action[2], "object")}
    return set()


def house(keys: int = 3, **where: str) -> State:
    people = {"alice": "hall", "bob": "yard", "carol": "porch"} | where
    places = ("hall", "yard", "porch")
    return State(
        "house",
        loc=dict(people),
        holding=dict.fromkeys(people),
        at={f"key{i}": "shelf" for i in range(1, keys + 1)},
        kind={f"key{i}": "key" for i in range(1, keys + 1)},
        open={
            **{edge(p, "door"): True for p in places},
            **{edge(p, "shelf"): True for p in places},
            **{edge("door", r): True for r in ("kitchen", "garden", "cellar")},
        },
    )


def through_door(who: str, start: str, room: str) -> Plan:
    return [("move", who, start, "door"), ("move", who, "door", room)]


ALICE = through_door("alice", "hall", "kitchen")
BOB = through_door("bob", "yard", "garden")
CAROL = through_door("carol", "porch", "cellar")


def reserve(state: State, who: str, claims: frozenset[Claim]) -> None:
    state.reserved = {resource for resource, kind in claims if kind == "object"}


def fetch_plans(state: State, *who: str) -> tuple[dict[str, Plan], Any]:
    """Each character plans ("fetch", who, "key") alone, from the same state."""
    domain = make_domain()
    planner = Planner(domain)
    todos = {w: [("fetch", w, "key")] for w in who}
    plans = {w: list(planner.find_plan(state, todos[w]).actions) for w in who}
    return plans, (domain, planner_replanner(planner, state, todos, reserve))


def strip(timeline: tuple[tuple[Any, ...], ...]) -> list[tuple[Any, ...]]:
    return [a for a in timeline if a != WAIT]


# -- detection and ordering ---------------------------------------------------------------------


def test_two_characters_same_place_same_step() -> None:
    conflicts = detect_conflicts({"alice": ALICE, "bob": BOB}, resources)
    assert len(conflicts) == 1
    c = conflicts[0]
    assert (c.step, c.resource, c.kind, c.characters) == (0, "door", "place", ("alice", "bob"))
    assert c.actions == (ALICE[0], BOB[0])


def test_two_characters_resolved_by_ordering() -> None:
    schedule = coordinate({"alice": ALICE, "bob": BOB}, resources, world=(make_domain(), house()))
    assert schedule.timelines["alice"] == tuple(ALICE)
    assert schedule.timelines["bob"] == (WAIT, *BOB)
    assert schedule.waits("bob") == 1
    assert schedule.waits("alice") == 0
    assert detect_conflicts(schedule.timelines, resources) == []
    assert len(schedule.conflicts) == 1
    assert schedule.replanned == ()
    assert schedule.length == 3


def test_three_characters_resolved_by_ordering() -> None:
    plans = {"carol": CAROL, "bob": BOB, "alice": ALICE}
    schedule = coordinate(plans, resources, world=(make_domain(), house()))
    assert schedule.priority == ("alice", "bob", "carol")
    assert [schedule.waits(c) for c in schedule.priority] == [0, 1, 2]
    assert detect_conflicts(schedule.timelines, resources) == []
    for who, plan in plans.items():
        assert strip(schedule.timelines[who]) == plan  # each plan keeps its order
    # Three conflicts at step 0 (every pair meets at the door).
    assert [(c.step, c.characters) for c in schedule.conflicts] == [
        (0, ("alice", "bob")),
        (0, ("alice", "carol")),
        (0, ("bob", "carol")),
    ]
    assert schedule.steps()[1] == [("alice", ALICE[1]), ("bob", BOB[0])]


def test_priority_decides_who_waits() -> None:
    schedule = coordinate({"alice": ALICE, "bob": BOB}, resources, priority=["bob", "alice"])
    assert schedule.waits("alice") == 1
    assert schedule.waits("bob") == 0
    with pytest.raises(ValueError, match="alice"):
        coordinate({"alice": ALICE, "bob": BOB}, resources, priority=["bob"])


def test_ordering_is_deterministic() -> None:
    a = order_by_priority({"alice": ALICE, "bob": BOB, "carol": CAROL}, resources)
    b = order_by_priority({"carol": CAROL, "alice": ALICE, "bob": BOB}, resources)
    assert a == b
    assert list(a) == ["alice", "bob", "carol"]


def test_no_conflict_no_wait() -> None:
    bob_elsewhere = [("move", "bob", "yard", "shelf")]
    schedule = coordinate({"alice": ALICE, "bob": bob_elsewhere}, resources)
    assert schedule.conflicts == ()
    assert schedule.timelines == {"alice": tuple(ALICE), "bob": tuple(bob_elsewhere)}


# -- replanning ---------------------------------------------------------------------------------


def test_same_object_needs_replanning() -> None:
    state = house()
    plans, (domain, replan) = fetch_plans(state, "alice", "bob")
    assert plans["alice"][-1] == ("pickup", "alice", "key1")
    assert plans["bob"][-1] == ("pickup", "bob", "key1")  # both want the same key
    # Ordering alone cannot help: the key is gone when bob gets to it.
    with pytest.raises(CoordinationFailed, match="no replanner") as info:
        coordinate(plans, resources, world=(domain, state))
    assert info.value.character == "bob"
    assert info.value.action == ("pickup", "bob", "key1")

    schedule = coordinate(plans, resources, world=(domain, state), replan=replan)
    assert schedule.replanned == ("bob",)
    assert schedule.plans["bob"][-1] == ("pickup", "bob", "key2")
    assert schedule.plans["alice"] == tuple(plans["alice"])
    assert detect_conflicts(schedule.timelines, resources) == []


def test_three_characters_with_replanning() -> None:
    state = house(keys=3)
    plans, (domain, replan) = fetch_plans(state, "alice", "bob", "carol")
    schedule = coordinate(plans, resources, world=(domain, state), replan=replan)
    assert schedule.replanned == ("bob", "carol")
    got = {who: schedule.plans[who][-1][2] for who in schedule.priority}
    assert got == {"alice": "key1", "bob": "key2", "carol": "key3"}
    assert detect_conflicts(schedule.timelines, resources) == []
    # Run the schedule: every action applies, every character ends holding its key.
    world = state.copy()
    for step in schedule.steps():
        for _, action in step:
            world = domain.actions[action[0]](world.copy(), *action[1:])
            assert isinstance(world, State)
    assert world.holding == {"alice": "key1", "bob": "key2", "carol": "key3"}


def test_lower_priority_culprit_is_the_one_replanned() -> None:
    # bob stands at the shelf and takes key1 first; alice (higher) needs it later.
    state = house(bob="shelf")
    plans, (domain, replan) = fetch_plans(state, "alice", "bob")
    assert plans["bob"] == [("pickup", "bob", "key1")]
    schedule = coordinate(plans, resources, world=(domain, state), replan=replan)
    assert schedule.replanned == ("bob",)
    assert schedule.plans["bob"] == (("pickup", "bob", "key2"),)
    assert schedule.plans["alice"] == tuple(plans["alice"])


def test_replanning_that_finds_nothing_fails_clearly() -> None:
    state = house(keys=2)
    plans, (domain, replan) = fetch_plans(state, "alice", "bob", "carol")
    with pytest.raises(CoordinationFailed, match="no plan for carol") as info:
        coordinate(plans, resources, world=(domain, state), replan=replan)
    assert info.value.character == "carol"


def test_replan_limit_per_character() -> None:
    state = house()
    plans, (domain, _) = fetch_plans(state, "alice", "bob")
    calls: list[str] = []

    def stubborn(who: str, claims: frozenset[Claim]) -> Plan:
        calls.append(who)
        return plans[who]  # the same clashing plan again

    with pytest.raises(CoordinationFailed, match="max_replans=2"):
        coordinate(plans, resources, world=(domain, state), replan=stubborn, max_replans=2)
    assert calls == ["bob", "bob"]
