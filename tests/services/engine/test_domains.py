"""The shipped domains: plans are found for several problems, and replaying them
action by action from the start reaches the planner's final state and the goals."""

from __future__ import annotations

from typing import Any

import pytest

from aria_actors.services.engine import (
    Domain,
    Multigoal,
    Plan,
    PlanningFailed,
    State,
    find_plan,
)
from aria_actors.services.engine.domains import SHIPPED, blocks, character, logistics
from aria_actors.services.engine.registry import DomainSource, load_domains
from aria_actors.services.engine.wire import state_from_data, state_to_data


def replay(domain: Domain, start: State, plan: Plan, *, commands: bool = False) -> State:
    state = start.copy()
    for name, *args in plan.actions:
        fn = domain.commands[f"c_{name}"] if commands else domain.actions[name]
        result = fn(state.copy(), *args)
        assert isinstance(result, State), f"{name}{tuple(args)} is not applicable"
        state = result
    assert state == plan.final_state
    return state


def holds(state: State, goal: Multigoal) -> bool:
    return all(
        getattr(state, var)[arg] == value
        for var, wanted in goal.goals().items()
        for arg, value in wanted.items()
    )


STRATEGIES = ["iterative_dfs_backtracking", "recursive_dfs", "iterative_greedy"]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(("n", "seed"), [(1, 0), (3, 1), (5, 2), (10, 3), (25, 4), (60, 5)])
def test_blocks_random_problems(n: int, seed: int, strategy: str) -> None:
    start, goal = blocks.random_problem(n, seed)
    d = blocks.domain()
    plan = find_plan(d, start, [goal], strategy)  # type: ignore[arg-type]
    assert holds(replay(d, start, plan), goal)
    assert holds(replay(d, start, plan, commands=True), goal)
    assert plan.cost == len(plan)


def test_blocks_problems_are_deterministic_by_seed() -> None:
    assert state_to_data(blocks.random_problem(8, 7)[0]) == state_to_data(
        blocks.random_problem(8, 7)[0]
    )
    assert blocks.random_problem(8, 7)[1].goals() == blocks.random_problem(8, 7)[1].goals()
    assert blocks.random_problem(8, 7)[1].goals() != blocks.random_problem(8, 8)[1].goals()


def test_blocks_unigoals_and_tasks() -> None:
    start = blocks.state_of({"a": "b", "b": "c", "c": "table"})
    d = blocks.domain()
    plan = find_plan(d, start, [("pos", "c", "a")])
    final = replay(d, start, plan)
    assert final.pos["c"] == "a"
    plan = find_plan(d, start, [("clear", "c", True)])
    assert replay(d, start, plan).clear["c"] is True
    plan = find_plan(d, start, [("move_one", "a", "table")])
    assert plan.actions == (("unstack", "a", "b"), ("putdown", "a"))


@pytest.mark.parametrize("strategy", [*STRATEGIES, "branch_and_bound"])
@pytest.mark.parametrize(
    "problem",
    [
        {"seed": 0},
        {"seed": 1, "cities": 2, "packages": 2},
        {"seed": 2, "cities": 4, "planes": 3, "packages": 5},
        {"seed": 3, "cities": 1, "planes": 0, "packages": 3},
    ],
)
def test_logistics_random_problems(problem: dict[str, Any], strategy: str) -> None:
    start, goal = logistics.random_problem(**problem)
    d = logistics.domain()
    plan = find_plan(d, start, [goal], strategy, max_expansions=100_000)  # type: ignore[arg-type]
    assert holds(replay(d, start, plan), goal)
    assert holds(replay(d, start, plan, commands=True), goal)


def test_logistics_deliver_task_and_optimal_cost() -> None:
    start, _ = logistics.random_problem(5, cities=2, packages=1)
    d = logistics.domain()
    target = next(loc for loc in start.in_city if loc != start.at["pkg1"])
    first = find_plan(d, start, [("deliver", "pkg1", target)])
    best = find_plan(d, start, [("deliver", "pkg1", target)], "branch_and_bound")
    assert replay(d, start, best).at["pkg1"] == target
    assert best.optimal
    assert best.cost <= first.cost


@pytest.mark.parametrize(
    ("archetype", "options", "expected"),
    [
        ("warrior", {}, "fetch_library_mesh"),  # the library has a warrior mesh
        ("mage", {}, "generate_base_mesh"),  # no library mesh: the GPU farm
        ("mage", {"resources": ("scanner", "mocap")}, "scan_actor"),  # no GPU: scan
        ("rogue", {"budget": 12, "min_quality": 9}, None),  # backtracks to reach quality
    ],
)
def test_character_workflows(archetype: str, options: dict[str, Any], expected: str | None) -> None:
    start = character.new_character("hero", archetype, **options)
    d = character.domain()
    for strategy in ("iterative_dfs_backtracking", "branch_and_bound"):
        plan = find_plan(d, start, [("published", "hero", True)], strategy)  # type: ignore[arg-type]
        final = replay(d, start, plan)
        assert final.published["hero"] is True
        assert final.quality["hero"] >= final.min_quality["hero"]
        assert plan.actions[0] == ("choose_archetype", "hero")
        assert plan.actions[-2:] == (("review", "hero"), ("publish", "hero"))
        if expected is not None and strategy == "iterative_dfs_backtracking":
            assert plan.actions[1][0] == expected
    quick = find_plan(d, start, [("make_character", "hero")], "branch_and_bound")
    assert quick.optimal


def test_character_scan_needs_a_manual_rig_and_polish_is_an_alternative() -> None:
    start = character.new_character("hero", "mage", resources=("scanner",), min_quality=15)
    d = character.domain()
    plan = find_plan(d, start, [("published", "hero", True)])
    names = [a[0] for a in plan.actions]
    assert "scan_actor" in names
    assert "manual_rig" in names
    assert "auto_rig" not in names
    assert "polish" in names  # the best path reaches quality 14: polish once


@pytest.mark.parametrize(
    "options",
    [
        {"budget": 3},  # too poor for any path
        {"resources": ()},  # a mage with no library mesh, no GPU, no scanner
        {"min_quality": 40},  # no review can pass
    ],
)
def test_character_failure_paths(options: dict[str, Any]) -> None:
    start = character.new_character("hero", "mage", **options)
    with pytest.raises(PlanningFailed):
        find_plan(character.domain(), start, [("published", "hero", True)])


def test_character_unknown_archetype_fails() -> None:
    start = character.new_character("hero", "dragon")
    with pytest.raises(PlanningFailed):
        find_plan(character.domain(), start, [("make_character", "hero")])


def test_several_characters_in_one_studio() -> None:
    state = character.new_character("a", "warrior")
    character.new_character("b", "bard", state=state)
    d = character.domain()
    plan = find_plan(d, state, [("published", "a", True), ("published", "b", True)])
    final = replay(d, state, plan)
    assert final.published == {"a": True, "b": True}


def test_a_faulty_command_diverges_from_its_action() -> None:
    start = character.new_character("hero", "mage", fault="generate_textures")
    d = character.domain()
    plan = find_plan(d, start, [("published", "hero", True)])
    state = start.copy()
    for name, *args in plan.actions:
        predicted = d.actions[name](state.copy(), *args)
        observed = d.commands[f"c_{name}"](state.copy(), *args)
        if name == "generate_textures":
            assert observed.textures["hero"] is None
            assert predicted.textures["hero"]
            assert observed.faults["hero"] is None
            break
        state = observed
    else:
        pytest.fail("the plan generated no textures")


def test_shipped_domains_load_by_name_and_round_trip_through_the_wire() -> None:
    domains = load_domains([DomainSource("module", m) for m in SHIPPED])
    assert sorted(domains) == ["blocks", "character", "logistics"]
    for start in (
        blocks.random_problem(6, 1)[0],
        logistics.random_problem(1)[0],
        character.new_character("hero", "mage"),
    ):
        assert state_from_data(state_to_data(start)) == start
