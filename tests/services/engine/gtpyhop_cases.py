"""The bundled gtpyhop-examples problems, loaded both on real GTPyhop and on our facade.

A *case* is one problem of one example package that has ``get_problems()``: the same
package is imported twice, once normally (real ``gtpyhop``) and once through
:func:`load_gtpyhop_module` (our planner), so each side gets its own states and domain.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from aria_actors.services.engine import Multigoal, Plan, State, load_gtpyhop_module


def example_root() -> Path:
    spec = importlib.util.find_spec("gtpyhop.examples")
    assert spec is not None
    assert spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def packages_with_problems() -> list[str]:
    """Dotted names (relative to gtpyhop.examples) of the packages exposing get_problems()."""
    root = example_root()
    found = []
    for init in sorted(root.rglob("__init__.py")):
        if "get_problems" in init.read_text(encoding="utf-8", errors="replace"):
            rel = init.parent.relative_to(root)
            if rel.parts and rel.parts[0] != "audit":
                found.append(".".join(rel.parts))
    return found


def _quiet() -> contextlib.AbstractContextManager[Any]:
    return contextlib.redirect_stdout(io.StringIO())


@cache
def real_package(name: str) -> Any:
    with _quiet():
        return importlib.import_module(f"gtpyhop.examples.{name}")


@cache
def our_package(name: str) -> Any:
    with _quiet():
        return load_gtpyhop_module(example_root().joinpath(*name.split(".")))


def _todo(problem_id: str, goal: Any, multigoal_cls: type) -> list[Any]:
    if isinstance(goal, dict):  # the IPC packages: a goal dict becomes a Multigoal
        mg = multigoal_cls(f"goal_{problem_id}")
        if "served" in str(problem_id).lower() or any(str(k).startswith("child") for k in goal):
            mg.served = goal
        else:
            mg.on = goal
        return [mg]
    if isinstance(goal, list):
        return goal
    return [goal]


@dataclass
class Case:
    package: str
    problem: str

    @property
    def id(self) -> str:
        return f"{self.package}:{self.problem}"

    def real(self) -> tuple[Any, Any, list[Any]]:
        pkg = real_package(self.package)
        with _quiet():
            state, goal = pkg.get_problems()[self.problem][:2]
        import gtpyhop

        return pkg.the_domain, state, _todo(self.problem, goal, gtpyhop.Multigoal)

    def ours(self) -> tuple[Any, State, list[Any]]:
        loaded = our_package(self.package)
        with _quiet():
            state, goal = loaded.module.get_problems()[self.problem][:2]
        return loaded.domain, state, _todo(self.problem, goal, Multigoal)


@cache
def all_cases() -> list[Case]:
    cases = []
    for name in packages_with_problems():
        with _quiet():
            problems = our_package(name).module.get_problems()
        cases.extend(Case(name, pid) for pid in problems)
    return cases


def replay(domain: Any, state: State, plan: Plan) -> State:
    """Apply the plan's actions one by one from ``state``; fail if one does not apply."""
    for action in plan.actions:
        new = domain.actions[action[0]](state.copy(), *action[1:])
        assert isinstance(new, State), f"{action} does not apply on replay"
        state = new
    return state


def run_real(case: Case, strategy: str, timeout_ms: int) -> list[Any] | str | None:
    """GTPyhop's plan (a list), None when it finds none, 'timeout', or 'error: ...'."""
    import gtpyhop

    domain, state, todo = case.real()
    try:
        with _quiet(), gtpyhop.PlannerSession(domain=domain, strategy=strategy) as session:
            result = session.find_plan(state, todo, timeout_ms=timeout_ms)
    except Exception as e:  # GTPyhop's domain errors are bare Exceptions
        return f"error: {type(e).__name__}: {e}"
    if result.success:
        return list(result.plan)
    if result.error and "timeout" in str(result.error).lower():
        return "timeout"
    return None
